"""The Docker engine: an engine that already answers, or a `dockerd` of our own under the state dir.

Our own engine must leave the host's network as it found it: Debian's dockerd would otherwise create the
docker0 bridge, switch the FORWARD policy to DROP and turn on ip_forward. Builds and API containers use host
networking instead, so no bridge is needed at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

from coderemote_pipeline.local_stack.processes import pid_alive, spawn, stop_pid, wait_until

DOCKERD_BINARY = "dockerd"
CMDLINE_FRAGMENT = "dockerd"
SYSTEM_DOCKER_HOST = "unix:///var/run/docker.sock"
START_TIMEOUT_SECONDS = 60.0
# dockerd waits up to 15 s for running containers before it gives up on them; we remove ours first.
STOP_TIMEOUT_SECONDS = 30.0
# sun_path holds 108 bytes; containerd puts `containerd.sock.ttrpc` under the exec root, the longest name.
MAX_SOCKET_PATH = 100
STACK_LABEL = "coderemote.stack"


@dataclass(frozen=True)
class EnginePaths:
    """Where our own engine keeps its socket, runtime state, images and pid."""

    run_dir: Path  # short: holds the sockets
    data_root: Path
    pidfile: Path

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def engine_paths(engine_dir: Path) -> EnginePaths:
    run_dir = engine_dir
    longest = run_dir / "exec" / "containerd" / "containerd.sock.ttrpc"
    if len(str(longest)) >= MAX_SOCKET_PATH:
        # Deep state dirs (pytest's tmp paths, nested checkouts) overflow sun_path; a short dir keyed by the
        # state dir keeps two stacks apart while images and pids still live in the state dir.
        digest = hashlib.sha256(str(engine_dir.resolve()).encode()).hexdigest()[:12]
        run_dir = Path(tempfile.gettempdir()) / f"crp-{digest}"
    return EnginePaths(run_dir=run_dir, data_root=engine_dir / "data", pidfile=engine_dir / "docker.pid")


def docker_client(docker_host: str, *, timeout: int = 120) -> docker.DockerClient:
    """A client for `docker_host`; raises DockerException when nothing answers there."""
    return docker.DockerClient(base_url=docker_host, timeout=timeout)


def engine_answers(docker_host: str, timeout: int = 3) -> bool:
    try:
        client = docker_client(docker_host, timeout=timeout)
    except (DockerException, OSError):
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError):
        return False
    finally:
        client.close()


def external_engine() -> str | None:
    """An engine someone else runs (DOCKER_HOST, then the system socket), if one answers."""
    candidates = [os.environ.get("DOCKER_HOST", ""), SYSTEM_DOCKER_HOST]
    return next((host for host in candidates if host and engine_answers(host)), None)


def read_pidfile(paths: EnginePaths) -> int | None:
    try:
        return int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def start_dockerd(paths: EnginePaths, *, log_path: Path) -> int:
    """Spawn our own dockerd and return its pid without waiting (see `wait_for_dockerd`)."""
    for directory in (paths.run_dir, paths.data_root, paths.exec_root):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = [
        DOCKERD_BINARY,
        "--host", paths.docker_host,
        "--data-root", str(paths.data_root),
        "--exec-root", str(paths.exec_root),
        "--pidfile", str(paths.pidfile),
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
    ]  # fmt: skip
    return spawn(argv, log_path=log_path)


def wait_for_dockerd(pid: int, paths: EnginePaths, *, log_path: Path) -> None:
    wait_until(
        lambda: engine_answers(paths.docker_host, timeout=2),
        timeout=START_TIMEOUT_SECONDS,
        what=f"Docker engine at {paths.docker_host} did not start",
        log_path=log_path,
        pid=pid,
    )


def remove_labelled_containers(docker_host: str, stack_id: str) -> int:
    """Force-remove every container labelled as belonging to this stack; returns how many."""
    if not engine_answers(docker_host):
        return 0
    client = docker_client(docker_host)
    try:
        containers = client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack_id}"})
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return len(containers)
    finally:
        client.close()


def _containerd_pid(paths: EnginePaths) -> int | None:
    try:
        return int((paths.exec_root / "containerd" / "containerd.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def stop_dockerd(pid: int | None, paths: EnginePaths) -> None:
    """Stop our engine and whatever it leaves behind when it cannot shut down cleanly."""
    containerd = _containerd_pid(paths)
    stop_pid(pid, timeout=STOP_TIMEOUT_SECONDS, expect=CMDLINE_FRAGMENT)
    # dockerd stops its containerd on a clean exit; after a SIGKILL it would be orphaned (own process group).
    if containerd and pid_alive(containerd):
        stop_pid(containerd, timeout=10.0, expect=str(paths.exec_root))
    # The default network namespace stays bind-mounted after dockerd exits, which would make the state dir
    # impossible to delete.
    netns = paths.exec_root / "netns" / "default"
    if os.path.ismount(netns):
        subprocess.run(["umount", str(netns)], check=False, capture_output=True)
    # The short run dir outside the state dir (see engine_paths) would otherwise stay in /tmp after every stop.
    if paths.run_dir != paths.data_root.parent and not os.path.ismount(netns):
        shutil.rmtree(paths.run_dir, ignore_errors=True)
