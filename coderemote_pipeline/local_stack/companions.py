"""Processes the layers above start beside the stack (the command line's warm process, cli/warm_process.py): each
records its pid and a fragment of its command line, and `LocalStack.down()` stops every one recorded, knowing
nothing else of them. Stopped by pid, and only while that pid still runs the recorded command."""

from __future__ import annotations

import json
from pathlib import Path

from coderemote_pipeline.local_stack.processes import pid_matches, stop_pid
from coderemote_pipeline.local_stack.stack_info import write_atomically

SUFFIX = ".companion"


def _record_file(state_dir: Path, name: str) -> Path:
    return state_dir / "local" / "run" / f"{name}{SUFFIX}"


def record(state_dir: Path, name: str, pid: int, fragment: str) -> None:
    write_atomically(_record_file(state_dir, name), json.dumps({"pid": pid, "fragment": fragment}))


def running(state_dir: Path, name: str) -> int | None:
    """The recorded pid of `name`, if it still runs what it was recorded running."""
    try:
        recorded = json.loads(_record_file(state_dir, name).read_text())
        pid, fragment = int(recorded["pid"]), str(recorded["fragment"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid_matches(pid, fragment) else None


def stop(state_dir: Path, name: str) -> bool:
    stopped = stop_pid(running(state_dir, name))
    _record_file(state_dir, name).unlink(missing_ok=True)
    return stopped


def stop_all(state_dir: Path) -> None:
    for found in sorted((state_dir / "local" / "run").glob(f"*{SUFFIX}")):
        stop(state_dir, found.name.removesuffix(SUFFIX))
