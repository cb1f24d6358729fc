"""Approved holds → deploys: when an engineer approves a release a sensor was holding, launch its deploy once.

The cursor is the storage id of the last decision read from the event log. The run key names the hold the approval
answers, so one hold becomes at most one deploy: a daemon restart re-reading a decision or a second approval
launches nothing more, while an approval that follows a rejection still launches the deploy the rejection stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from coderemote_pipeline.ledger.approvals import Decision, decisions_after, held_run_key
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.sensors.tick import Tick, load_cursor

APPROVAL_TRIGGER = "approval"
# The tag Dagster puts on every run a sensor launched with a run key.
RUN_KEY_TAG = "dagster/run_key"


def _latest_per_partition(decisions: list[Decision]) -> list[Decision]:
    # Approve-then-reject between two ticks: only the last word on a release counts.
    latest: dict[tuple[str, str], Decision] = {}
    for decision in decisions:
        latest[(decision.env, decision.release)] = decision
    return sorted(latest.values(), key=lambda d: d.storage_id)


def act_on(decision: Decision, tick: Tick, instance: dg.DagsterInstance) -> None:
    partition = f"{decision.env}|{decision.release}"
    why = f": {decision.reason}" if decision.reason else ""
    if not decision.approved:
        tick.note(f"{partition} rejected by {decision.by}{why}; not deployed")
        return
    if decision.hold_id is None:
        tick.note(
            f"{partition} approved by {decision.by}; no sensor was holding it, so nothing is launched "
            f"(deploy it with `coderemote-pipeline deploy {decision.env} {decision.release}`)"
        )
        return
    run_key = held_run_key(decision.env, decision.release, decision.hold_id)
    launched = instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    if launched:
        tick.note(
            f"{partition} approved by {decision.by}; its held deploy was already launched "
            f"(run {launched[0].dagster_run.run_id}), nothing more"
        )
        return
    tick.note(f"{partition} approved by {decision.by} (commit {decision.commit[:12]}){why}")
    tick.deploy_or_hold(
        policy_for(decision.env),
        decision.release,
        decision.commit,
        trigger=APPROVAL_TRIGGER,
        run_key=run_key,
        ref=f"hold {decision.hold_id}",
    )


def approved_release_sensor_def(
    interval_s: int, jobs: Sequence[dg.UnresolvedAssetJobDefinition]
) -> dg.SensorDefinition:
    @dg.sensor(
        name="approved_release_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches the deploy of a release a git sensor was holding for approval, once an engineer "
        "approves it (release_approval materialized with decision approve); one deploy per hold.",
    )
    def approved_release_sensor(context: dg.SensorEvaluationContext):
        after = int(load_cursor(context.cursor).get("after_storage_id", 0))
        decisions = decisions_after(context.instance, after)
        if not decisions:
            return dg.SkipReason("no new approval decisions")
        tick = Tick(context)
        for decision in _latest_per_partition(decisions):
            act_on(decision, tick, context.instance)
        return tick.result({"after_storage_id": decisions[-1].storage_id}, idle="no new approval decisions")

    return approved_release_sensor
