"""Where a pid means a process, and whether that process still exists: the ledger records which process works
for a run or a step, and a record from this host, boot and pid namespace can be judged at once, without waiting
out a heartbeat or a reclaim time."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the local stack's processes judge pids here, and load no Dagster for it
    import dagster as dg


@functools.cache
def _boot_and_namespace() -> str:
    try:
        # A /proc mounted for another pid namespace (`unshare -p` without a fresh /proc) answers for other
        # processes than the pids this process sees: nothing here can be judged by it.
        if int(os.readlink("/proc/self")) != os.getpid():
            return ""
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except (OSError, ValueError):
        return ""
    return f"{boot}/{namespace}"


def process_place() -> str:
    """Where this process's pid means this process: the host, its boot (two machines may share a host name, and
    every host's own pid namespace has the same number), and the pid namespace (two containers of one host)."""
    here = _boot_and_namespace()
    return f"{socket.gethostname()}/{here}" if here else ""  # "": nowhere to tell, never judged from elsewhere


def process_exists(pid: int | None) -> bool:
    """`pid` names a process of this pid namespace that has not exited (a zombie has)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@functools.cache
def _boot_time() -> float | None:
    try:
        line = next(x for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime "))
        return float(line.split()[1])
    except (OSError, ValueError, StopIteration):
        return None


def _started(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), where /proc tells."""
    boot = _boot_time()
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return None if boot is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def alive_here(place: str, pid: int, seen_at: float) -> bool:
    """The process `pid` recorded at `place`, seen at `seen_at`, is known to still run: `place` is here, and a process
    `pid` exists that had started by then (a pid reused since, by a process started later, is not it)."""
    if not place or place != process_place() or not process_exists(pid):
        return False
    started = _started(pid)
    return started is None or started <= seen_at + 1.0  # its start is rounded to the clock's ticks


def gone_from_here(place: str, pid: int) -> bool:
    """The process `pid` recorded at `place` is known to have exited: `place` is here and no such process exists.
    A pid from elsewhere, or from before places were recorded, is never judged (False). A reused pid looks alive,
    which only leaves the judging to the heartbeat's age."""
    return bool(place) and place == process_place() and not process_exists(pid)


def process_gone(run: dg.DagsterRun) -> str | None:
    """Why `run`'s process is known gone, or None (another host's or container's process, or none recorded, is not
    judged: its pid means nothing here)."""
    from coderemote_pipeline.rules import names  # with Dagster: wanted only where runs are judged

    place, _, pid = run.tags.get(names.EXECUTED_BY_TAG, "").rpartition(":")
    if not pid.isdigit() or not gone_from_here(place, int(pid)):
        return None
    return f"run {run.run_id[:8]} was executed by process {pid} on this host, which is gone"
