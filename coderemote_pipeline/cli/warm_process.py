"""Starting, finding and stopping the warm process of a state dir (cli/warm_server.py): `local up` and `demo` start
it; it is recorded as a companion of the stack (local_stack/companions.py), so `LocalStack.down()` stops it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from coderemote_pipeline.cli.warm import socket_path
from coderemote_pipeline.local_stack import companions
from coderemote_pipeline.local_stack.processes import spawn, wait_until
from coderemote_pipeline.rules.state_dir import PROJECT_ROOT

NAME = "commands"
MODULE = "coderemote_pipeline.cli.warm_server"
PACKAGE = PROJECT_ROOT / "coderemote_pipeline"
READY_TIMEOUT_S = 60


def code_stamp() -> tuple[int, float]:
    """The package's Python files, by count and newest change: what a fork would run, compared with the checkout."""
    times = [p.stat().st_mtime for p in PACKAGE.rglob("*.py")]
    return len(times), max(times, default=0.0)


def running_pid(state_dir: Path) -> int | None:
    return companions.running(state_dir, NAME)


def answers(state_dir: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path(state_dir)))
        except OSError:
            return False
    return True


def ensure(state_dir: Path, *, wait: bool = False) -> int:
    """The warm process of `state_dir`, started if none runs; with `wait`, once it takes commands."""
    log = state_dir / "local" / "logs" / "commands.log"
    pid = running_pid(state_dir)
    if pid is None:
        pid = spawn([sys.executable, "-m", MODULE, str(state_dir)], log_path=log)
        companions.record(state_dir, NAME, pid, f"-m {MODULE}")
    if wait:
        wait_until(lambda: answers(state_dir), timeout=READY_TIMEOUT_S, what="the warm command process", pid=pid,
                   log_path=log)  # fmt: skip
    return pid


def stop(state_dir: Path) -> bool:
    stopped = companions.stop(state_dir, NAME)
    socket_path(state_dir).unlink(missing_ok=True)
    return stopped
