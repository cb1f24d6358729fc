"""The AWS API emulator: `moto` in server mode, one process answering every AWS service over HTTP."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from coderemote_pipeline.local_stack.processes import spawn, wait_until

START_TIMEOUT_SECONDS = 30.0
# What `stop_pid` looks for in /proc/<pid>/cmdline before signalling a recorded pid.
CMDLINE_FRAGMENT = "coderemote_pipeline.local_stack.emulator"
# What an emulator started before `emulator.py` existed runs as: `down` and `up` still stop it after an upgrade.
LEGACY_CMDLINE_FRAGMENT = "-m moto.server"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs and ECR registry hosts carry it
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def moto_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def moto_answers(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        # The dashboard route exists only on moto, so another server on a recycled port does not pass.
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _server_env() -> dict[str, str]:
    # The emulator must never see real credentials or a profile pointing at a real account; it accepts any
    # signature, so fixed dummies suffice. These apply to the child only, never to our own process.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(DUMMY_CREDENTIALS)
    env["AWS_DEFAULT_REGION"] = REGION
    # Without this moto accepts any ImageUri; with it Lambda resolves the URI against the emulated ECR, so a
    # missing image fails as on AWS and CodeSha256 is the pushed manifest's digest.
    env["MOTO_LAMBDA_STUB_ECR"] = "false"
    return env


def start_moto(port: int, *, log_path: Path, memory: Path) -> int:
    """Spawn moto on 127.0.0.1:`port` and return its pid without waiting (see `wait_for_moto`). It starts with what
    `memory` holds, if a clean stop left it, and leaves its memory there when it is stopped cleanly."""
    argv = [sys.executable, "-m", CMDLINE_FRAGMENT, "-H", "127.0.0.1", "-p", str(port), "--memory", str(memory)]
    return spawn(argv, log_path=log_path, env=_server_env())


def wait_for_moto(pid: int, port: int, *, log_path: Path) -> None:
    endpoint = moto_endpoint(port)
    wait_until(
        lambda: moto_answers(endpoint, timeout=1.0),
        timeout=START_TIMEOUT_SECONDS,
        what=f"AWS emulator (moto) at {endpoint} did not start",
        log_path=log_path,
        pid=pid,
    )
