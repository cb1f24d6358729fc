"""Where this installation keeps its state, without loading anything else: the command line finds its warm process
(cli/warm.py) from this before it imports Dagster."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A checkout keeps its state beside the code; an installed copy in the user's state directory.
_IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").exists()


def default_state_dir(environ: Mapping[str, str]) -> Path:
    if _IN_CHECKOUT:
        return PROJECT_ROOT / ".state"
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "coderemote-pipeline"


def state_dir_from(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("CODEREMOTE_STATE_DIR") or default_state_dir(environ)).resolve()


MAX_SOCKET_PATH = 100


def warm_socket(state_dir: Path) -> Path:
    """Where the warm process of `state_dir` takes commands (cli/warm.py)."""
    path = state_dir / "local" / "run" / "commands.sock"
    if len(str(path)) < MAX_SOCKET_PATH:
        return path
    # Deep state dirs overflow sun_path: a short name keyed by the state dir, in a directory only we can enter.
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"crp-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / f"commands-{digest}.sock"


def warm_pidfile(state_dir: Path) -> Path:
    return state_dir / "local" / "run" / "commands.pid"
