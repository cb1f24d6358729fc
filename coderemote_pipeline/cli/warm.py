"""Handing a command to the warm process (cli/warm_server.py), from a command line that has loaded nothing else.

Loading Dagster, boto3, docker and the definitions' modules costs about 1.5-2 s of every command on this 2-core
machine, more than a dev deploy's own stages. `local up` keeps one process with all of it loaded; the command line
sends it its arguments, working directory, environment and its three standard streams (the descriptors themselves,
over a Unix socket), and the warm process forks a child that runs the command exactly as this process would have,
printing straight into this terminal. This process forwards the signals it gets (Ctrl-C) to that child and exits
with its status. With no warm process, or one whose code is older than the checkout, the command runs here.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

from coderemote_pipeline.rules.state_dir import short_socket_path, state_dir_from

# Commands a warm child runs; the stack's own (`local`, `demo`, `ui`) start or stop processes and run here.
COLD_COMMANDS = frozenset({"local", "demo", "ui"})
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Set to 0 to run every command in its own process (a debugger, a profile).
SWITCH = "CODEREMOTE_WARM"
MAX_SOCKET_PATH = 100


def socket_path(state_dir: Path) -> Path:
    """Where the warm process of `state_dir` takes commands (a socket only its user may connect to)."""
    return short_socket_path(state_dir / "local" / "run" / "commands.sock", "commands", MAX_SOCKET_PATH)


def _streams() -> list[int]:
    """Our stdin, stdout and stderr; one that is closed is handed over as /dev/null."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def run_warm(argv: list[str], command: str | None) -> int | None:
    """The command's exit status, run by a child of the warm process; None when there is none to run it."""
    switch = os.environ.get(SWITCH, "")
    if switch not in ("", "0", "1"):
        print(f"error: {SWITCH}={switch!r} is not 0 (each command in its own process) or 1 (the default: the warm "
              "process when one runs)", file=sys.stderr)  # fmt: skip
        return 2
    if command in COLD_COMMANDS or switch == "0":
        return None
    path = socket_path(state_dir_from(os.environ))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    request = {"argv": argv, "argv0": sys.argv[0], "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask}
    with conn, conn.makefile("rb") as replies:
        try:
            socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], _streams())
            first = json.loads(replies.readline() or b"{}")
        except (OSError, ValueError):
            return None
        if "pid" not in first:
            return None  # refused (its code changed: it reloads itself); this process runs the command
        child = int(first["pid"])
        for signum in FORWARDED:
            signal.signal(signum, lambda n, _frame: _forward(child, n))
        try:
            last = replies.readline()
        except OSError:
            last = b""
        if not last:
            if _reader_gone(1):  # it wrote into a closed pipe (`| head -1`) and died of it: as this process would
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGPIPE)
            print(f"error: the command's process (pid {child}) ended without an exit status: it was killed",
                  file=sys.stderr)  # fmt: skip
            return 1
        return int(json.loads(last)["exit"])


def _reader_gone(fd: int) -> bool:
    """`fd` is a pipe whose reader has closed it: polling its writing end says POLLERR."""
    try:
        polled = select.poll()
        polled.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in polled.poll(0))
    except (OSError, ValueError):
        return False


def _forward(child: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signum)
