"""Spawning, probing and stopping the long-running server processes of the local stack.

The servers must outlive the command that started them (`local up` returns while they keep serving), so each
gets its own session and writes to a log file instead of our terminal. Pids alone are not trusted when
stopping: a recorded pid may have been reused by an unrelated process after a reboot, so callers pass a
fragment of the command line they expect to find.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from coderemote_pipeline.ledger.process_place import process_exists
from coderemote_pipeline.local_stack.errors import PartDidNotStart

POLL_SECONDS = 0.1

# Servers spawned by this process, kept so they can be reaped: a dead child stays a zombie (and looks alive
# to kill(pid, 0)) until its parent waits for it.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reset_signals() -> None:
    # A process started from a non-interactive shell (`cmd &`, nohup, some CI runners) inherits SIGINT and
    # SIGTERM as *ignored*, and ignored dispositions survive exec: the server would then shrug off `down`.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start `argv` detached from us (new session, default signal handling), logging to `log_path`. The one way
    every server of the project is started (the local stack's, and the test kit's Postgres and Dagster ones)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            start_new_session=True,
            restore_signals=True,
            preexec_fn=_reset_signals,
            close_fds=True,
        )
    _CHILDREN[process.pid] = process
    return process.pid


def pid_alive(pid: int | None) -> bool:
    child = _CHILDREN.get(pid) if pid else None
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    return process_exists(pid)


def pid_matches(pid: int | None, fragment: str) -> bool:
    """True when `pid` is alive and its command line contains `fragment`."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return fragment in cmdline


def stop_pid(
    pid: int | None,
    *,
    timeout: float = 10.0,
    expect: str | None = None,
    stop_signal: int = signal.SIGTERM,
    group: bool = False,
) -> bool:
    """`stop_signal` to `pid`, wait, then SIGKILL its process group. Returns True if something was stopped.

    With `expect`, a pid whose command line lacks that fragment is left alone (it is not ours any more). With
    `group`, what the process forked and left behind in its session (a server's workers) is killed too.
    """
    if not pid_alive(pid) or (expect is not None and not pid_matches(pid, expect)):
        return False
    assert pid is not None
    stopped = _stop(pid, timeout, stop_signal)
    if group:
        # Our servers lead their own session: their group holds exactly what they forked.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return stopped


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether `pid` is gone (exited, or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _stop(pid: int, timeout: float, stop_signal: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if wait_gone(pid, timeout):
        return True
    # Our servers lead their own session, so the group holds exactly what they forked.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5.0)
    return True


def port_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` now (SO_REUSEADDR, as the servers themselves use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None, *, exclude: Sequence[int] = ()) -> int:
    """`preferred` if it is free (so addresses survive restarts), else a port the kernel hands out."""
    if preferred and preferred not in exclude and port_free(preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in exclude:
            return port


def log_tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None:
        return ""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log_path: Path | None = None,
    pid: int | None = None,
) -> None:
    """Poll `predicate` until true; fail early if `pid` dies. Errors end with the tail of the log."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        died = pid is not None and not pid_alive(pid)
        if died or time.monotonic() > deadline:
            reason = f"process {pid} exited" if died else f"no answer within {timeout:.0f} s"
            tail = log_tail(log_path)
            where = f"\n--- last lines of {log_path} ---\n{tail}" if tail else ""
            raise PartDidNotStart(f"{what}: {reason}{where}")
        time.sleep(POLL_SECONDS)
