"""traffic_shift: users move to the release as the environment's `delivery:` policy says — all at once, or in
canary or linear steps judged on the new version's live traffic — the API first, the site in one flip at 100 %.

Everything slow happened before, in parallel, while users still had the previous release: the image and the
published version (backend branch), the site's snapshot (frontend branch). A breach, an abort or a failure during
the steps takes the new version's weight back to 0 and records the automatic rollback; a failure of the final
switch puts the environment back (actions/switch.py) before the run fails. Every analysis interval is an
observation of this asset (weights, requests, error rate, p99), which the UI plots.
"""

import time
from dataclasses import replace

import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.notify import announce
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.shift import Halted, Watcher, WeightStuck, resume_from, steps
from coderemote_pipeline.actions.switch import Serving, SwitchFailed, is_release, serving, switch
from coderemote_pipeline.assets.frontend_bundle import frontend_bundle
from coderemote_pipeline.assets.lambda_version import lambda_version
from coderemote_pipeline.assets.stage import (
    STAGE_KWARGS,
    deploy_stage,
    deployment,
    lease_fence,
    require_cleared,
    require_on_main,
    upstream,
)
from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.live import record_live, recorded_live
from coderemote_pipeline.ledger.records import BundleRecord, ShiftRecord, StackRecord, VersionRecord
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.rollout import RolloutPlan


@dg.asset(
    name=names.TRAFFIC_SHIFT,
    deps=[lambda_version, frontend_bundle],
    kinds={"aws", "lambda"},
    group_name="release",
    **STAGE_KWARGS,
)
@deploy_stage
def traffic_shift(
    context: dg.AssetExecutionContext, targets: EnvTargets, app_source: AppSource, environments: Environments
) -> dg.MaterializeResult:
    """The release's version takes the policy's steps, then every request, with the runtime serving it healthy;
    then the live site flips to the release's snapshot. Metadata: the plan, each step's figures, what was before."""
    outputs = upstream(context, StackRecord).stack_outputs
    version, bundle = upstream(context, VersionRecord), upstream(context, BundleRecord)
    deploy = deployment(context, environments).at(version.commit)
    if bundle.commit != version.commit:
        raise dg.Failure(description=f"the image of {deploy.label} is of commit {version.commit[:12]} and its site of "
                         f"{bundle.commit[:12]} (its tag moved during the run): nothing switched; deploy it again",
                         allow_retries=False)  # fmt: skip
    approvers = require_cleared(context, deploy)
    require_on_main(context, deploy, app_source)
    if approvers:
        # The run's audit: whose approvals it switched users on, at the switch (a re-execution copies its parent's
        # tag, and approvals may have changed since).
        context.instance.add_run_tags(context.run.run_id, {names.APPROVED_BY_TAG: ", ".join(approvers)})
    target = targets.target(deploy.env, outputs, app_source.layout, lease_fence(context))
    wanted = Serving(str(version.version), deploy.release.key, version.commit, version.image_digest, bundle.release)
    before = serving(target)
    unjudged = _unjudged(context, deploy, before, wanted)
    plan = _plan(context, deploy, before, wanted, unjudged is not None)
    windows = _steps(context, deploy, target, plan, before, wanted) if plan.steps else []
    try:
        # Canary steps move weights: what served is read again after them; at once, it is what was just read.
        switched = switch(target, wanted, None if plan.steps else before)
    except SwitchFailed as exc:
        raise dg.Failure(description=f"the switch of {deploy.label} failed: {exc}", allow_retries=False) from exc
    changed = switched.changed_paths
    if unjudged is not None:
        # Users moved from the recorded release in an earlier attempt: the CDN may still hold its files.
        before = unjudged
        changed = store.changed_since(target.s3, outputs[out.FRONTEND_BUCKET], unjudged.site_release, bundle.release)
    _record_state(context, deploy, plan, before, wanted, "bake" if plan.bake_s else "done")
    context.log.info(
        f"{deploy.env} serves {deploy.release.key} ({plan.describe()}): version {before.version} → {version.version}, "
        f"site {before.site_release or 'none'} → {bundle.release}, {len(changed)} path(s) changed"
    )
    record = ShiftRecord(
        strategy=plan.describe(),
        version=version.version,
        previous_version=int(before.version) if before.version.isdigit() else 0,
        previous_release=before.release,
        previous_site=before.site_release or "",
        site_release=bundle.release,
        alias_moved=switched.alias_moved,
        api_url=outputs[out.API_URL],
        changed_paths=changed,
        cold_start_s=round(switched.api.cold_start_s or 0.0, 3),
        runtime=switched.api.detail,
        switched_at=time.time(),
        steps=windows,
        bake_s=plan.bake_s,
    )
    return dg.MaterializeResult(metadata={**record.to_metadata(), "seconds": round(switched.seconds, 3)})


def _unjudged(context, deploy: Deployment, before: Serving, wanted: Serving) -> Serving | None:
    """What the record names as live, where the env already serves `wanted` but the record does not: an earlier
    attempt switched and ended unjudged (killed before it recorded, or its smoke failed with auto_rollback off)."""
    if before.version != wanted.version or names.is_rollback_run(context.run):
        return None
    live = recorded_live(context.instance, deploy.env)
    if live is None or live.release == wanted.release or not is_release(live.release):
        return None
    return Serving(str(live.version), live.release, live.commit, live.digest, live.frontend_release or None)


def _plan(context: dg.AssetExecutionContext, deploy: Deployment, before: Serving, wanted: Serving,
          unjudged: bool) -> RolloutPlan:  # fmt: skip
    """The policy's plan, except where there is nothing to judge the release against or it must be quick: a
    rollback (users go back at once), the first release of an env, or the release already live. One that users
    already have but nothing judged yet takes no steps back down to a few percent, but still owes its bake."""
    plan = deploy.policy.rollout
    rollback = names.is_rollback_run(context.run)
    if rollback or not is_release(before.release):
        return RolloutPlan.at_once()
    if before.version == wanted.version:
        at_once = RolloutPlan.at_once()
        return replace(at_once, bake_s=plan.bake_s, analysis=plan.analysis) if unjudged else at_once
    return plan


def _steps(context, deploy: Deployment, target: EnvTarget, plan: RolloutPlan, before: Serving, wanted: Serving):
    """The weighted steps; on a halt the run fails naming why, after the new version's weight went back to 0."""
    state = _record_state(context, deploy, plan, before, wanted, "step", step=resume_from(target, plan,
                                                                                          wanted.version, before))
    windows: list[dict] = []

    def observe(window) -> None:
        windows.append(window.metadata())
        context.log_event(dg.AssetObservation(asset_key=names.key(names.TRAFFIC_SHIFT), partition=deploy.partition,
                                              metadata=window.metadata()))  # fmt: skip
        context.log.info(f"{deploy.env} {window.phase} {window.step + 1}/{len(plan.steps)} at {window.weight}%: "
                         f"{window.requests} requests, error rate {window.error_rate:.1%}, p99 {window.p99_ms:.0f} ms "
                         f"— {window.verdict}")  # fmt: skip

    watcher = Watcher(target, plan.analysis, lambda: shifts.asked(context.instance, deploy.env, state.started),
                      observe)  # fmt: skip
    try:
        outcome, _ = steps(watcher, plan, state, lambda s: shifts.write_state(context.instance, deploy.env, s))
    except Halted as exc:
        previous = recorded_live(context.instance, deploy.env)
        reason = f"automatic rollback: the {plan.strategy} of {deploy.release.key} halted ({exc})"
        if previous is not None:
            again = replace(previous, reason=reason, run_id=context.run.run_id, since=time.time())
            record_live(context.instance, deploy.env, again, context.log_event)
        event = nc.AUTOMATIC_ROLLBACK if exc.by == "analysis" else nc.SHIFT_ABORTED
        announce(context.instance, deploy, event, run_id=context.run.run_id, detail=str(exc), log=context.log.warning)
        raise dg.Failure(
            description=f"{deploy.label}: {exc}. The new version's weight is back to 0: {deploy.env} serves "
            f"{before.release} (version {before.version}) to every request",
            metadata={"halted_by": exc.by, "steps": dg.MetadataValue.json(windows)},
            allow_retries=False,
        ) from exc
    except WeightStuck as exc:
        raise dg.Failure(
            description=f"{deploy.label}: {exc}. {deploy.env} may still send {deploy.release.key} part of its "
            f"requests: the settle after this run puts {before.release} back whole; if it cannot, "
            f"`coderemote-pipeline rollback {deploy.env} --to {before.release}` does",
            metadata={"steps": dg.MetadataValue.json(windows)},
            allow_retries=False,
        ) from exc
    if outcome != "passed":
        context.log.warning(f"the {plan.strategy} of {deploy.release.key} was promoted to 100% by hand")
    return windows


def _record_state(context, deploy: Deployment, plan: RolloutPlan, before: Serving, wanted: Serving, phase: str,
                  step: int = 0) -> shifts.ShiftState:  # fmt: skip
    state = shifts.ShiftState(
        run_id=context.run.run_id, release=wanted.release, version=wanted.version, previous_version=before.version,
        previous_release=before.release, weights={wanted.version: 100} if phase != "step" else {}, step=step,
        phase=phase,
    )  # fmt: skip
    shifts.write_state(context.instance, deploy.env, state)
    return state
