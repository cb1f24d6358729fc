"""The warm process: every module a command needs loaded once; each command a fork of it (see cli/warm.py).

Started by `local up` and `demo`, stopped by `local down` (cli/warm_process.py). A fork shares the loaded
modules instead of loading them: measured on this 2-core machine (2026-12), `status` went from about 2 s to
a few tenths, and a dev deploy's whole command lost the 1.5-2 s of start-up.

What each child gets is the command line's, not ours: its arguments, environment, working directory, umask and
standard streams. Nothing is opened before the fork (no Dagster instance, no AWS client, no thread), so no
connection or lock is shared between two commands. When the package's code changes under it, the warm process
refuses the next command (which then runs in its own process) and loads itself again.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.cli.warm import socket_path
from coderemote_pipeline.cli.warm_process import MODULE, code_stamp

RECEIVE_TIMEOUT_S = 5
PRELOAD = (
    "coderemote_pipeline.definitions",
    "coderemote_pipeline.usecases.deploy",
    "coderemote_pipeline.usecases.rollback",
    "coderemote_pipeline.usecases.promote",
    "coderemote_pipeline.usecases.retry",
    "coderemote_pipeline.usecases.status",
    "coderemote_pipeline.usecases.history",
    "coderemote_pipeline.usecases.approval_view",
    "coderemote_pipeline.usecases.approve",
    "coderemote_pipeline.usecases.infra",
    "coderemote_pipeline.usecases.traffic",
    "coderemote_pipeline.cli.summary",
    "boto3",
    "docker",
)


def _warm_up() -> None:
    """Open an instance and run a one-step job, on a throwaway home, and parse the AWS service models: the first
    open of the SQLite storage, the first run and the first clients are most of what a command waited for (about
    0.5 s before its run, 0.5-1 s of CPU during it). Nothing of it stays open."""
    import dagster as dg

    from coderemote_pipeline.ledger.instance import prepare_home
    from coderemote_pipeline.resources.aws import preload_service_models
    from coderemote_pipeline.usecases.progress import QUIET

    @dg.asset
    def warm_up() -> None:
        return None

    with (
        tempfile.TemporaryDirectory(prefix="coderemote-warm-up-") as home,
        dg.DagsterInstance.from_config(str(prepare_home(Path(home)))) as instance,
    ):
        dg.materialize([warm_up], instance=instance, run_config=QUIET)
    preload_service_models()
    if threading.active_count() != 1:
        print(f"warning: {threading.active_count() - 1} thread(s) left by the warm-up; a fork has only its own",
              flush=True)  # fmt: skip


def _listen(path: Path) -> socket.socket:
    """A socket only this user can connect to, bound under a temporary name and renamed into place: a client never
    finds a path that does not yet accept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent)) / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(staging))
    os.chmod(staging, 0o600)
    listener.listen(16)
    os.replace(staging, path)
    staging.parent.rmdir()
    return listener


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    try:
        while not data.endswith(b"\n"):
            more = conn.recv(1 << 16)
            if not more:
                break
            data += more
        request = json.loads(data)
        if len(fds) != 3:
            raise ValueError(f"{len(fds)} streams handed over, not 3")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _child(conn: socket.socket, listener: socket.socket, request: dict, fds: list[int]) -> None:
    """Become the command line's process, run its command, report the status. Never returns."""
    code = 1
    try:
        # A process group of its own, as the shell gives a command: `kill -- -PGID` of one deploy (what a person or
        # a supervisor uses to stop it with what it started) must not take the warm process and the other commands.
        os.setpgid(0, 0)
        listener.close()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # TMPDIR is the command line's
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        sys.argv = [request["argv0"], *request["argv"]]
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        threading.Thread(target=_hang_up_with, args=(conn,), daemon=True).start()
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


def _hang_up_with(conn: socket.socket) -> None:
    """The command line went away (its terminal closed, it was killed): the command gets the hang-up it would have
    got there. A read command ends; one that runs a deploy goes on to the run's end (cli/outlive.py)."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os.kill(os.getpid(), signal.SIGHUP)


def serve(state_dir: Path) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    _warm_up()
    stamp = code_stamp()
    path = socket_path(state_dir)
    listener = _listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children: each reports its own status
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # What is loaded now lives as long as the process: out of the collector's way, and shared with every fork.
    gc.collect()
    gc.freeze()
    print(f"warm process {os.getpid()} taking commands on {path} ({time.strftime('%H:%M:%S')})", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                # One command line at a time is received: one that connects and sends nothing (a probe, a hung
                # client) holds the others back for at most this long.
                conn.settimeout(RECEIVE_TIMEOUT_S)
                try:
                    request, fds = _receive(conn)
                except (OSError, ValueError):
                    continue
                conn.settimeout(None)
                if code_stamp() != stamp:
                    conn.sendall(b'{"refused": "code changed"}\n')
                    for fd in fds:
                        os.close(fd)
                    break
                child = os.fork()
                if child == 0:
                    _child(conn, listener, request, fds)
                # The command's name only: its arguments stay with the command line.
                command = request["argv"][0] if request["argv"] else "-"
                print(f"{time.strftime('%H:%M:%S')} {command}: pid {child}", flush=True)
                for fd in fds:
                    os.close(fd)
    finally:
        path.unlink(missing_ok=True)
        listener.close()
    # The code changed: load it again, under the same pid (the one `local down` stops).
    print("the package changed: loading it again", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", MODULE, str(state_dir)])


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
