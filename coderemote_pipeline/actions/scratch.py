"""Scratch directories of a deploy (a build context, an exported tree for the checks), under the state dir.

Each is named by the host and process that made it, and removed when done or when the process exits with one still
in use (a check started ahead for a run that failed first runs in a daemon thread). A deploy killed outright
(SIGKILL, the OOM killer, a CI runner cancelling the job) cannot remove its own, and a build context can weigh tens
of megabytes: the next scratch dir made here removes those of processes of this host that are gone. Another host's
(a container sharing the state dir) are left alone, since its pids mean nothing here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LIVE: set[Path] = set()  # this process's scratch dirs not yet removed
_LOCK = threading.Lock()


def make_scratch(root: Path, kind: str) -> Path:
    """A new empty directory under `root`, after removing those left by processes of this host that are gone."""
    root.mkdir(parents=True, exist_ok=True)
    host = _host()
    for entry in root.iterdir():
        owner_host, _, rest = entry.name.partition("@")
        pid = rest.split("-", 1)[0]
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{host}@{os.getpid()}-{kind}-", dir=root))
    with _LOCK:
        _LIVE.add(path)
    return path


@contextmanager
def scratch_dir(root: Path, kind: str) -> Iterator[Path]:
    path = make_scratch(root, kind)
    try:
        yield path
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _LOCK:
        _LIVE.discard(path)


@atexit.register
def _remove_left_in_use() -> None:
    with _LOCK:
        left = list(_LIVE)
    for path in left:
        _remove(path)


def _host() -> str:
    return socket.gethostname().replace("@", "_").replace("/", "_") or "host"


def _alive(pid: int) -> bool:
    # A zombie counts as alive: its parent has yet to reap it, and a scratch dir outliving it a little is harmless.
    return Path(f"/proc/{pid}").exists()
