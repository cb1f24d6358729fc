"""`traffic ENV`: how the environment's API requests are split now (read from the target: the alias's routing and
the runtime's weights), what each version answered in the last minute, and the shift in flight; and a person's
promote-now or abort of that shift, which the shift takes at its next check (about a second)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

from coderemote_pipeline.actions import lambda_versions as lv
from coderemote_pipeline.actions.target_state import present
from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.history import running_but_gone
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.rules.traffic import Traffic

WINDOW_S = 60.0


class NoShift(UserError):
    """promote or abort asked of an environment with no shift in flight."""


@dataclass(frozen=True)
class Split:
    env: str
    weights: dict[str, int]  # version → percent, from the alias
    runtime_weights: str  # what the runtime (haproxy locally) holds, "version:percent,…"
    releases: dict[str, str]  # version → release, where the records know it
    figures: dict[str, Traffic]  # version → the last WINDOW_S of its requests
    shift: shifts.ShiftState | None
    shift_run: str = ""  # how the shift's run stands: "started", "failure", "gone" (killed, no one marked it), …

    @property
    def shift_interrupted(self) -> bool:
        """The shift was left part-way by its run's end (killed, stopped): its weights stay until a run moves them."""
        return self.shift is not None and self.shift.in_flight and self.shift_run not in ("started", "starting")


def split(settings: Settings, instance: dg.DagsterInstance, env: str) -> Split | None:
    """None when nothing was ever deployed to `env`."""
    live = recorded_live(instance, check_env(env))
    if live is None or not live.stack_outputs:
        return None
    layout = AppLayout.from_json(live.app_layout) if live.app_layout else settings.app_layout
    target = resources_for(settings)["targets"].target(env, live.stack_outputs, layout)
    state = shifts.read_state(instance, env)
    releases = {str(live.version): live.release}
    if state is not None:
        releases.update({state.version: state.release, state.previous_version: state.previous_release})
    with present(target):  # an emulator restarted empty: one line with the fix, as `status` says it
        weights = lv.alias_weights(target.lam, target.outputs)
    current = target.runtime.current(env) or {}
    figures = target.runtime.traffic(env, since=time.time() - WINDOW_S)
    return Split(env, weights, current.get("weights", ""), releases, figures, state, _run_stands(instance, state))


def _run_stands(instance: dg.DagsterInstance, state: shifts.ShiftState | None) -> str:
    if state is None:
        return ""
    run = instance.get_run_by_id(state.run_id)
    if run is None:
        return "deleted"
    return "gone" if running_but_gone(run) else run.status.value.lower()


def control(instance: dg.DagsterInstance, env: str, action: str, by: str, reason: str) -> shifts.ShiftState:
    """Ask the shift in flight in `env` to promote now or to abort; refused when there is none."""
    state = shifts.read_state(instance, check_env(env))
    if state is None or not state.in_flight:
        raise NoShift(f"no traffic shift is in flight in {env}: nothing to {action} "
                      f"(see `coderemote-pipeline traffic {env}`)")  # fmt: skip
    shifts.ask(instance, env, action, by, reason)
    return state
