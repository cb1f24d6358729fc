"""The warm process of a state dir (cli/warm_server.py), as a part of the stack: `local up` and `demo` start it,
`LocalStack.down()` stops it by its pid. It is started by its module's name: the stack runs the command line's
program as it runs the emulator's, without importing it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from coderemote_pipeline.local_stack.processes import pid_matches, spawn, stop_pid, wait_until
from coderemote_pipeline.rules.state_dir import PROJECT_ROOT, warm_pidfile, warm_socket

MODULE = "coderemote_pipeline.cli.warm_server"
CMDLINE_FRAGMENT = f"-m {MODULE}"
PACKAGE = PROJECT_ROOT / "coderemote_pipeline"
READY_TIMEOUT_S = 60


def code_stamp() -> tuple[int, float]:
    """The package's Python files, by count and newest change: what a fork would run, compared with the checkout."""
    times = [p.stat().st_mtime for p in PACKAGE.rglob("*.py")]
    return len(times), max(times, default=0.0)


def running_pid(state_dir: Path) -> int | None:
    try:
        pid = int(warm_pidfile(state_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_matches(pid, CMDLINE_FRAGMENT) else None


def answers(state_dir: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(warm_socket(state_dir)))
        except OSError:
            return False
    return True


def ensure(state_dir: Path, *, wait: bool = False) -> int:
    """The warm process of `state_dir`, started if none runs; with `wait`, once it takes commands."""
    pid = running_pid(state_dir)
    if pid is None:
        warm_pidfile(state_dir).parent.mkdir(parents=True, exist_ok=True)
        log = state_dir / "local" / "logs" / "commands.log"
        pid = spawn([sys.executable, "-m", MODULE, str(state_dir)], log_path=log)
        warm_pidfile(state_dir).write_text(f"{pid}\n")
    if wait:
        wait_until(lambda: answers(state_dir), timeout=READY_TIMEOUT_S, what="the warm command process", pid=pid,
                   log_path=state_dir / "local" / "logs" / "commands.log")  # fmt: skip
    return pid


def stop(state_dir: Path) -> bool:
    stopped = stop_pid(running_pid(state_dir), expect=CMDLINE_FRAGMENT)
    warm_pidfile(state_dir).unlink(missing_ok=True)
    warm_socket(state_dir).unlink(missing_ok=True)
    return stopped
