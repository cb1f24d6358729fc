"""Commands of the app (its frontend build, its host-side checks) run in a session of their own, ended with us.

`npm run` forks a shell that forks node: only the whole process group ends a build at its time limit. And a build or
check started ahead, beside the image build, may still be running when its run fails and the process exits; it is
ended then too (atexit, which the warm process's command children also run), so it never outlives the deploy that
started it or writes into a tree that is being removed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_RUNNING: set[subprocess.Popen] = set()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str  # empty when it was merged into stdout
    timed_out: bool


def run_in_session(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    merge_stderr: bool = False,
) -> Finished:
    """Run `argv` to its end or to `timeout` seconds, when its whole group is killed. Raises FileNotFoundError when
    the command does not exist."""
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    with _LOCK:
        _RUNNING.add(proc)
    timed_out = False
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _end_group(proc)
            out, err = proc.communicate()
    finally:
        with _LOCK:
            _RUNNING.discard(proc)
    return Finished(proc.returncode, out.decode(errors="replace"), (err or b"").decode(errors="replace"), timed_out)


def _end_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@atexit.register
def _end_running() -> None:
    with _LOCK:
        running = list(_RUNNING)
    for proc in running:
        _end_group(proc)
