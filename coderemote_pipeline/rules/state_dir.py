"""Where this installation keeps its state, without loading anything else: the command line finds its warm process
(cli/warm.py) from this before it imports Dagster."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path

from coderemote_pipeline.rules.errors import resolved

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A checkout keeps its state beside the code; an installed copy in the user's state directory.
_IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").exists()


def default_state_dir(environ: Mapping[str, str]) -> Path:
    if _IN_CHECKOUT:
        return PROJECT_ROOT / ".state"
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "coderemote-pipeline"


def state_dir_from(environ: Mapping[str, str]) -> Path:
    return resolved(environ.get("CODEREMOTE_STATE_DIR") or default_state_dir(environ), "the state dir")



def short_socket_path(path: Path, tag: str, limit: int) -> Path:
    """`path`, or where it overflows a Unix socket's address (`limit` bytes), a short name in the temp dir keyed by
    `path` itself: two state dirs never share it."""
    if len(str(path)) < limit:
        return path
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crp-{tag}-{digest}.sock"
