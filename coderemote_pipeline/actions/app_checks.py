"""The app's own checks (its tests and linters), run against what ships, once per commit and build inputs.

A backend check runs in a container of the built image (the exact artifact's interpreter and libraries) over the
backend tree exported from the commit, with no network; a frontend check runs the host's tools over the exported
frontend tree, in a network namespace of its own where the host allows it (`unshare --net`). Each has a time limit;
its output is captured, and its tail is what a failure quotes. The key of a run (`check_key`) is the check, its
command and what it ran against, so a commit checked for dev is not checked again for staging or prod.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from coderemote_pipeline.actions.session_commands import run_in_session
from coderemote_pipeline.rules.app_layout import CheckSpec

TAIL_LINES = 30
TAIL_CHARS = 4000


@dataclass(frozen=True)
class CheckRun:
    name: str
    key: str
    passed: bool
    exit_code: int | None  # None: it did not finish (timed out)
    seconds: float
    output_tail: str
    detail: str
    reused_from_run: str = ""
    isolated: bool = True  # ran without network
    side_by_side: bool = False  # ran at the same time as its side's other checks
    ahead: bool = False  # started beside the image build, collected by its step (actions/checks_ahead.py)
    waited_s: float = 0.0  # what its step waited for it, when it ran ahead

    def metadata(self) -> dict[str, Any]:
        return {"check_key": self.key, "exit_code": -1 if self.exit_code is None else self.exit_code,
                "seconds": round(self.seconds, 3), "reused_from_run": self.reused_from_run,
                "ran": not self.reused_from_run, "network_isolated": self.isolated,
                "side_by_side": self.side_by_side, "ran_ahead": self.ahead,
                "waited_s": round(self.waited_s, 3)}  # fmt: skip


def check_key(spec: CheckSpec, tree: str, artifact: str = "") -> str:
    """Identity of one check run: the check, its command and limit, the source tree and the artifact it ran on."""
    inputs = {"name": spec.name, "command": spec.command, "timeout_s": spec.timeout_s, "tree": tree,
              "artifact": artifact}  # fmt: skip
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def _tail(output: str) -> str:
    lines = output.rstrip().splitlines()[-TAIL_LINES:]
    return "\n".join(lines)[-TAIL_CHARS:]


def _verdict(spec: CheckSpec, key: str, code: int | None, seconds: float, output: str, isolated: bool) -> CheckRun:
    tail = _tail(output)
    if code is None:
        detail = f"check {spec.name} (`{spec.command}`) was stopped at its limit of {spec.timeout_s:g} s"
    elif code:
        detail = f"check {spec.name} (`{spec.command}`) exited {code}"
    else:
        detail = f"check {spec.name} passed in {seconds:.1f} s"
    return CheckRun(spec.name, key, code == 0, code, seconds, tail, detail, isolated=isolated)


def _tree_archive(tree: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(tree, arcname="src")
    return buffer.getvalue()


# Containers of checks running in this process: a check started ahead for a run that failed first runs in a daemon
# thread, which the process's exit stops wherever it is; its container goes with the process, not after it.
_IN_FLIGHT: dict[str, Any] = {}
_IN_FLIGHT_LOCK = threading.Lock()


@atexit.register
def _remove_in_flight() -> None:
    with _IN_FLIGHT_LOCK:
        left = list(_IN_FLIGHT.values())
    for container in left:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def run_in_image(client: Any, image: str, tree: Path, spec: CheckSpec, key: str,
                 labels: dict[str, str] | None = None) -> CheckRun:  # fmt: skip
    """`spec.command` in a container of `image` over a copy of the exported tree at /src, no network. `labels`: its
    owner's (the local stack's, whose `local down` removes what a killed engine or process left behind)."""
    started = time.monotonic()
    # Copied in, not bind-mounted: the engine may not see this process's files (a run launched in a container).
    create = functools.partial(
        client.containers.create,
        image,
        command=shlex.split(spec.command),
        working_dir="/src",
        network_mode="none",
        environment={"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", "CI": "true"},
        labels={**(labels or {}), "coderemote.check": spec.name},
    )
    try:
        container = create()
    except docker.errors.ImageNotFound:
        # An image promoted from another env's repository (or built on another engine) is in the registry under
        # this name, not yet in this engine: its layers are, mostly, so the pull is short.
        client.images.pull(image)
        container = create()
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT[container.id] = container
    try:
        container.put_archive("/", _tree_archive(tree))
        container.start()
        try:
            code: int | None = int(container.wait(timeout=spec.timeout_s)["StatusCode"])
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            code = None
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.pop(container.id, None)
    return _verdict(spec, key, code, time.monotonic() - started, output, isolated=True)


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """`unshare --net --` where this host lets us make a network namespace (root, or user namespaces), else ()."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "--net", "--"), (unshare, "--net", "--map-root-user", "--")):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def run_on_host(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
    """`spec.command` in the exported frontend tree with the host's tools, without network when possible."""
    prefix = _netns_prefix()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tree), "CI": "true"}
    started = time.monotonic()
    try:
        proc = run_in_session([*prefix, *shlex.split(spec.command)], cwd=tree, env=env, timeout=spec.timeout_s,
                              merge_stderr=True)  # fmt: skip
    except FileNotFoundError:
        return _verdict(spec, key, 127, 0.0, f"command not found: {shlex.split(spec.command)[0]}", bool(prefix))
    code = None if proc.timed_out else proc.returncode
    return _verdict(spec, key, code, time.monotonic() - started, proc.stdout, bool(prefix))
