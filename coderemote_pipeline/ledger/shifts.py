"""A traffic shift in flight, kept in the instance's key-value store: where it stands (the weights it last set,
the step, the run), and what a person asked of it (promote now, abort). Written each time the target holds a new
weight. The target itself (the alias, the runtime) stays the truth of what serves: after a killed worker `traffic
ENV` reads the weights from it, and the next run of the shift resumes from there or the settling of the failed
run takes them back.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import dagster as dg

PROMOTE, ABORT = "promote", "abort"


def _state_key(env: str) -> str:
    return f"coderemote/shift/{env}"


def _control_key(env: str) -> str:
    return f"coderemote/shift-control/{env}"


@dataclass(frozen=True)
class ShiftState:
    run_id: str
    release: str
    version: str  # the new version
    previous_version: str
    previous_release: str
    weights: dict[str, int]  # version → percent, as last set
    step: int  # 0-based index of the weighted step; len(steps) once at 100 %
    phase: str  # "step", "bake", "done", "rolled_back"
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def new_weight(self) -> int:
        return self.weights.get(self.version, 0)

    @property
    def in_flight(self) -> bool:
        return self.phase in ("step", "bake")


@dataclass(frozen=True)
class Control:
    action: str
    by: str
    reason: str
    at: float


def read_state(instance: dg.DagsterInstance, env: str) -> ShiftState | None:
    raw = instance.run_storage.get_cursor_values({_state_key(env)}).get(_state_key(env))
    if not raw:
        return None
    try:
        return ShiftState(**json.loads(raw))
    except (TypeError, ValueError):
        return None


def write_state(instance: dg.DagsterInstance, env: str, state: ShiftState) -> None:
    body = {**asdict(state), "updated": time.time()}
    instance.run_storage.set_cursor_values({_state_key(env): json.dumps(body, sort_keys=True)})


def ask(instance: dg.DagsterInstance, env: str, action: str, by: str, reason: str = "") -> None:
    """A person's request to the env's shift in flight; the shift reads it at its next analysis tick."""
    if action not in (PROMOTE, ABORT):
        raise ValueError(f"unknown shift action {action!r}: use promote or abort")
    body = json.dumps({"action": action, "by": by, "reason": reason, "at": time.time()})
    instance.run_storage.set_cursor_values({_control_key(env): body})


def asked(instance: dg.DagsterInstance, env: str, since: float) -> Control | None:
    """The request made since `since` (the shift's start): an older one was meant for an earlier shift."""
    raw = instance.run_storage.get_cursor_values({_control_key(env)}).get(_control_key(env))
    if not raw:
        return None
    try:
        control = Control(**json.loads(raw))
    except (TypeError, ValueError):
        return None
    return control if control.at >= since else None


def finish(instance: dg.DagsterInstance, env: str, run_id: str, phase: str) -> None:
    """The shift of `run_id` is over (done or rolled_back); a later shift's record is left alone."""
    state = read_state(instance, env)
    if state is not None and state.run_id == run_id:
        write_state(instance, env, ShiftState(**{**asdict(state), "phase": phase}))
