"""What a running local stack publishes (`StackInfo`) and where its files live under the state dir.

`stack.json` exists only while the stack is up: its presence is how resources and the CLI tell "up" from
"down". Ports live in a separate `ports.json` that survives `down`, so API URLs and endpoints stay the same
across up/down/up.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from coderemote_pipeline.local_stack.errors import UP_COMMAND, LocalStackError, LocalStackNotRunning


@dataclass(frozen=True)
class StackInfo:
    stack_id: str
    moto_endpoint: str
    moto_pid: int
    registry_host: str
    registry_pid: int
    docker_host: str
    dockerd_pid: int | None
    dockerd_managed: bool
    base_image: str
    base_image_id: str
    api_ports: dict[str, int] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # The edges: haproxy in front of the API containers (its admin socket, its slots' state), varnish in front of
    # the buckets (one port per environment: the stack's frontend URL).
    site_ports: dict[str, int] = field(default_factory=dict)
    edge_pid: int | None = None
    edge_socket: str = ""
    edge_state: str = ""
    site_pid: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        data: dict[str, Any] = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not the stack's record")
        known = {f.name: f for f in fields(cls)}
        if unknown := sorted(set(data) - set(known)):
            raise ValueError(f"unknown keys {', '.join(map(repr, unknown))[:200]}: not written by this version")
        needed = (n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING)
        if missing := [n for n in needed if n not in data]:
            raise ValueError(f"it lacks {', '.join(missing)}")
        for ports in ("api_ports", "site_ports"):
            value = data.get(ports, {})
            if not isinstance(value, dict) or not all(isinstance(p, int) for p in value.values()):
                raise ValueError(f"{ports} is not a map of environment to port number")
        return cls(**data)


@dataclass(frozen=True)
class StackPaths:
    """Every file of the local stack, under `<state_dir>/local/`."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "local"

    @property
    def info_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "stack.lock"

    @property
    def engine_dir(self) -> Path:
        return self.root / "docker"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry" / "config.yml"

    @property
    def registry_storage(self) -> Path:
        return self.root / "registry" / "storage"

    @property
    def memory(self) -> Path:
        # Exists only between a clean stop of the emulator and its next start (local_stack/emulator.py).
        return self.root / "emulator-memory.pickle"

    def log(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    def pidfile(self, part: str) -> Path:
        return self.root / "run" / f"{part}.pid"


def stack_id_for(state_dir: Path) -> str:
    """Stable per state dir, short enough for container labels and names."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]


def write_atomically(path: Path, text: str) -> None:
    # Readers (other processes, Dagster steps) must never see a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def load_stack_info(state_dir: Path) -> StackInfo:
    """The running stack's record; raises LocalStackNotRunning when the stack is not up."""
    info_file = StackPaths(Path(state_dir)).info_file
    try:
        text = info_file.read_text()
    except FileNotFoundError:
        raise LocalStackNotRunning(
            f"No local stack is running for state dir {state_dir} (no {info_file}): run `{UP_COMMAND}`"
        ) from None
    except OSError as error:  # a directory in its place, unreadable
        raise LocalStackError(f"{info_file} cannot be read ({error.strerror}): run `coderemote-pipeline local down`"
                              f" then `{UP_COMMAND}`") from None  # fmt: skip
    try:
        return StackInfo.from_json(text)
    except (ValueError, TypeError, AttributeError) as error:
        raise LocalStackError(
            f"{info_file} is unreadable ({error}): run `coderemote-pipeline local down` then `{UP_COMMAND}`"
        ) from error
