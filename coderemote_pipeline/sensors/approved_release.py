"""Approved holds → deploys: when an engineer approves a held release, launch its deploy once, now or as soon as
the promotion gate opens.

The cursor is the storage id of the last decision read from the event log, and the approved holds the gate still
holds (their commit has not passed smoke in dev yet). Each tick re-checks those: the deploy launches by itself once
the commit passes there, with the one approval already given. The run key names the hold, so one hold becomes at
most one deploy: a daemon restart re-reading a decision, or a second approval, launches nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from coderemote_pipeline.ledger.approvals import (
    GATED,
    LAUNCHED,
    Decision,
    approval_refusal,
    decisions_after,
    held_run_key,
    hold_event,
    latest_hold,
)
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.readiness import TargetReadiness
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.sensors.tick import GATED as GATED_OUTCOME
from coderemote_pipeline.sensors.tick import WINDOW, Tick, load_cursor


def _latest_per_partition(decisions: list[Decision]) -> list[Decision]:
    # Approve-then-reject between two ticks: only the last word on a release counts.
    latest: dict[tuple[str, str], Decision] = {}
    for decision in decisions:
        latest[(decision.env, decision.release)] = decision
    return sorted(latest.values(), key=lambda d: d.storage_id)


def _launched(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags={names.RUN_KEY_TAG: run_key}), limit=1)
    return runs[0] if runs else None


def take_decision(decision: Decision, tick: Tick, instance: dg.DagsterInstance, policies) -> dict[str, Any] | None:
    """Log the decision; an approval of a hold not yet launched becomes a wait entry for the cursor."""
    label, why = f"{decision.env}|{decision.release}", f": {decision.reason}" if decision.reason else ""
    if not decision.approved:
        tick.note(f"{label} rejected by {decision.by}{why}; not deployed")
        return None
    short = approval_refusal(instance, policies[decision.env], decision.release, decision.commit)
    if short:
        tick.note(f"{label} approved by {decision.by}; not launched yet: {short}")
        return None
    if decision.hold_id is None:
        tick.note(f"{label} approved by {decision.by}; nothing was holding it, so nothing is launched "
                  f"(deploy it with `coderemote-pipeline deploy {decision.env} {decision.release}`)")  # fmt: skip
        return None
    launched = _launched(instance, held_run_key(decision.env, decision.release, decision.hold_id))
    if launched is not None:
        tick.note(f"{label} approved by {decision.by}; its held deploy was already launched (run {launched.run_id})")
        return None
    tick.note(f"{label} approved by {decision.by} (commit {decision.commit[:12]}){why}")
    return {"env": decision.env, "release": decision.release, "commit": decision.commit,
            "hold_id": decision.hold_id, "by": decision.by, "decided_at": decision.timestamp}  # fmt: skip


def launch_or_wait(wait: dict[str, Any], tick: Tick, instance: dg.DagsterInstance, policies,
                   commit_time: Callable[[str], float | None] = lambda _: None) -> bool:  # fmt: skip
    """Request the approved deploy if the gate is open; True while it must keep waiting. `commit_time`: when a
    commit was made (its run's tag: the start of its lead time)."""
    env, release, commit, hold_id = wait["env"], wait["release"], wait["commit"], int(wait["hold_id"])
    hold = latest_hold(instance, env, release)
    deploy = Deployment.of(env, release, policies, commit)
    extra = hold.override_tags if hold else None
    # While it waited (for the gate, a deploy window), its approval may have expired or a rollback voided it. Asked
    # once the window ends, not on each tick of it: until then nothing launches either way.
    lapsed = None if tick.closed_window(deploy, extra) else approval_refusal(instance, deploy.policy, release, commit)
    if lapsed:
        tick.note(f"{env}|{release}: the approval by {wait['by']} no longer stands, so it is held again: {lapsed}")
    outcome = tick.deploy_or_hold(deploy, trigger=names.TRIGGER_APPROVAL, run_key=held_run_key(env, release, hold_id),
                                  ref=f"hold {hold_id}", approved=not lapsed, extra_tags=extra,
                                  commit_time=lambda: commit_time(commit))  # fmt: skip
    common = {"trigger": names.TRIGGER_APPROVAL, "hold_id": hold_id, "approved_by": wait["by"]}
    if outcome == WINDOW:
        return True  # a deploy window holds it: asked again next tick, launched when the window ends
    if outcome == "held":
        return False  # a new hold: approving it again launches that one
    if outcome == GATED_OUTCOME:
        if not wait.get("announced"):
            source = deploy.policy.verified_in or "the source environment"
            fix = (f"approved by {wait['by']}; waits for the promotion gate: deploy commit {commit[:12]} to {source} "
                   f"(`coderemote-pipeline deploy {source} {commit[:12]}`) and it launches by itself once it passes "
                   f"there, on this approval while it stands; or `coderemote-pipeline deploy {env} {release} "
                   "--force --reason TEXT`")  # fmt: skip
            tick.events.append(hold_event(env, release, commit, status=GATED, waiting_for=fix, **common))
            wait["announced"] = True
        return True
    if outcome == "requested":
        tick.events.append(hold_event(env, release, commit, status=LAUNCHED, **common))
    return False


def approved_release_sensor_def(
    interval_s: int, jobs: Sequence[dg.UnresolvedAssetJobDefinition]
) -> dg.SensorDefinition:
    @dg.sensor(
        name="approved_release_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches the deploy of a held release once an engineer approves it (release_approval "
        "materialized with decision approve), or as soon as the promotion gate opens; one deploy per hold.",
    )
    def approved_release_sensor(
        context: dg.SensorEvaluationContext,
        app_source: AppSource,
        environments: Environments,
        readiness: TargetReadiness,
    ):
        cursor = load_cursor(context.cursor)
        after, waiting = int(cursor.get("after_storage_id", 0)), list(cursor.get("waiting", []))
        decisions = decisions_after(context.instance, after)
        if not decisions and not waiting:
            return dg.SkipReason("no new approval decisions")
        if (down := readiness.blocker()) is not None:
            return dg.SkipReason(f"approval decisions to act on once the target is back: {down}")
        tick = Tick(context, app_source)
        policies = environments.policies()
        for decision in _latest_per_partition(decisions):
            waiting = [w for w in waiting if (w["env"], w["release"]) != (decision.env, decision.release)]
            if (wait := take_decision(decision, tick, context.instance, policies)) is not None:
                waiting.append(wait)
        def made(commit: str) -> float | None:  # an approved deploy's lead time starts at its commit, as the tag's
            return app_source.remote().commit_time(commit)

        waiting = [w for w in waiting if launch_or_wait(w, tick, context.instance, policies, made)]
        last = decisions[-1].storage_id if decisions else after
        return tick.result({"after_storage_id": last, "waiting": waiting}, idle="no new approval decisions")

    return approved_release_sensor
