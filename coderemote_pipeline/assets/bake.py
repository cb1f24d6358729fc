"""The bake window of smoke_result: the new version at 100 %, judged on its live traffic for the policy's `bake`
(the strategy's "monitor for errors 15-30 min" that a person used to do), before the release counts as live."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg

from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.shift import Halted, Watcher
from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.records import ShiftRecord
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment


@dataclass
class Baked:
    seconds: float
    outcome: str  # "passed", "promoted", or "halted"
    halted: str = ""
    windows: list[dict] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        return {"bake_s": round(self.seconds, 1), "bake_outcome": self.outcome,
                "bake_windows": dg.MetadataValue.json(self.windows)}  # fmt: skip


def controls_since(state: shifts.ShiftState | None, run_id: str, now: float) -> float:
    """From when a `traffic --promote` or `--abort` counts for this bake: this run's shift start, or, when the shift
    state is another run's (a retry, smoke_result materialized alone), the bake's own start. From 0, the last
    promote or abort ever asked would skip or fail it."""
    return state.started if state is not None and state.run_id == run_id else now


def bake(context: dg.AssetExecutionContext, deploy: Deployment, target: EnvTarget, shift: ShiftRecord) -> Baked:
    """Watch the release for `shift.bake_s`; a breach, too few requests, or an abort ends it `halted`."""
    baked = Baked(shift.bake_s, "passed")
    analysis = deploy.policy.rollout.analysis
    since = controls_since(shifts.read_state(context.instance, deploy.env), context.run.run_id, time.time())

    def observe(window) -> None:
        baked.windows.append(window.metadata())
        context.log_event(dg.AssetObservation(asset_key=names.key(names.SMOKE_RESULT), partition=deploy.partition,
                                              metadata=window.metadata()))  # fmt: skip
        context.log.info(f"{deploy.env} bake: {window.requests} requests, error rate {window.error_rate:.1%}, "
                         f"p99 {window.p99_ms:.0f} ms — {window.verdict}")  # fmt: skip

    watcher = Watcher(target, analysis, lambda: shifts.asked(context.instance, deploy.env, since), observe)
    context.log.info(f"{deploy.env}: baking {deploy.release.key} for {shift.bake_s:g} s on live traffic")
    try:
        baked.outcome = watcher.watch(str(shift.version), str(shift.previous_version), hold_s=shift.bake_s,
                                      phase="bake", step=len(shift.steps), weight=100)  # fmt: skip
    except Halted as exc:
        baked.outcome, baked.halted = "halted", str(exc)
    return baked
