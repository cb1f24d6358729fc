"""smoke_result: the live API and the live site, checked over HTTP for this very release; the verdict makes the
release live in the record, or, where policy says so, takes the environment back to what was live before."""

import time

import dagster as dg

from coderemote_pipeline.actions.notify import announce
from coderemote_pipeline.actions.restore import CdnNotCleared, restore_and_record
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.smoke import smoke_checks
from coderemote_pipeline.actions.switch import SwitchFailed
from coderemote_pipeline.assets.bake import Baked, bake
from coderemote_pipeline.assets.cloudfront_invalidation import cloudfront_invalidation
from coderemote_pipeline.assets.stage import STAGE_KWARGS, deploy_stage, deployment, lease_fence, upstream
from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.live import record_live, recorded_live
from coderemote_pipeline.ledger.records import (
    ROLLED_BACK_TO,
    BundleRecord,
    LiveRecord,
    ShiftRecord,
    SmokeRecord,
    StackRecord,
    VersionRecord,
)
from coderemote_pipeline.ledger.releases import fled_by_rollback_to
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.deployment import Deployment


@dg.asset(
    name=names.SMOKE_RESULT,
    deps=[cloudfront_invalidation],
    kinds={"python"},
    group_name="verification",
    **STAGE_KWARGS,
)
@deploy_stage
def smoke_result(
    context: dg.AssetExecutionContext,
    app_source: AppSource,
    targets: EnvTargets,
    environments: Environments,
) -> dg.MaterializeResult:
    """Passed, and through the policy's bake window on live traffic: the release is recorded as live. Failed: with
    `auto_rollback` (prod), or in a bake, the environment goes back to the release recorded as live before this
    run, and the failure says what was rolled back to and why."""
    started = time.monotonic()
    outputs = upstream(context, StackRecord).stack_outputs
    shift, bundle = upstream(context, ShiftRecord), upstream(context, BundleRecord)
    deploy = deployment(context, environments).at(bundle.commit)
    target = targets.target(deploy.env, outputs, app_source.layout, lease_fence(context))
    checks = smoke_checks(
        api_url=outputs[out.API_URL], health_path=app_source.health_path, frontend_url=outputs[out.FRONTEND_URL],
        env=deploy.env, release=deploy.release.key, commit=deploy.commit, index_sha256=bundle.index_sha256,
        runtime_config=bundle.build_mode == "runtime_config",
    )  # fmt: skip
    passed = all(c.ok for c in checks)
    timings = {f"{c.name}_latency_ms": c.latency_ms for c in checks} | {f"{c.name}_status": c.status for c in checks}
    reason = f"smoke failed for {deploy.label}: " + "; ".join(
        f"{c.name} {c.url}: {c.detail} (after {c.attempts} tries, {c.seconds:.1f} s)" for c in checks if not c.ok
    )
    baked = bake(context, deploy, target, shift) if passed and shift.bake_s > 0 else None
    if baked is not None and baked.halted:
        passed, reason = False, f"the bake window of {deploy.label} failed: {baked.halted}"
    record = SmokeRecord(passed, deploy.release.key, deploy.commit, [c.summary() for c in checks],
                         seconds=round(time.monotonic() - started, 3))  # fmt: skip
    timings |= baked.metadata() if baked is not None else {}
    if passed:
        target.fence()  # a run that lost its lease while it baked does not record over the deploy that took it
        _record_live(context, deploy, shift, outputs, app_source, baked)
        return dg.MaterializeResult(metadata={**record.to_metadata(), **timings, "cold_start_s": shift.cold_start_s},
                                    data_version=SmokeRecord.data_version(True, deploy.commit))  # fmt: skip
    if names.is_rollback_run(context.run):
        after = _rollback_failed(context, deploy, shift, outputs, app_source, reason)
    else:
        after = _after_failure(context, deploy, reason, target, bundle.release, force=baked is not None)
    failed = SmokeRecord(False, deploy.release.key, deploy.commit, record.checks, bool(after[1]), after[1], after[0],
                         record.seconds)  # fmt: skip
    context.log_event(dg.AssetMaterialization(asset_key=names.key(names.SMOKE_RESULT), partition=deploy.partition,
                                              metadata={**failed.to_metadata(), **timings},
                                              tags={"dagster/data_version":
                                                    SmokeRecord.data_version(False, deploy.commit).value}))  # fmt: skip
    raise dg.Failure(description=f"{reason}. {after[0]}", metadata=failed.to_metadata(), allow_retries=False)


def _record_live(context, deploy: Deployment, shift: ShiftRecord, outputs: dict[str, str], app_source,
                 baked: Baked | None, failed: str = "") -> None:  # fmt: skip
    """The release is live: recorded with how to reach the env and how the release was built (for rollbacks).
    `failed`: why a rollback's smoke failed, where the env stays on the release it went back to."""
    delivery = shift.strategy + (f": baked {baked.seconds:.0f} s on live traffic, {baked.outcome}" if baked else "")
    delivery += f"; its smoke failed: {failed}" if failed else ""
    note = " (its smoke failed)" if failed else ""
    rollback = names.is_rollback_run(context.run)
    live = LiveRecord(
        release=deploy.release.key, commit=deploy.commit, version=shift.version,
        digest=upstream(context, VersionRecord).image_digest, frontend_release=shift.site_release,
        reason=f"{ROLLED_BACK_TO if rollback else 'deployed'} {deploy.release.key}{note}", run_id=context.run.run_id,
        since=time.time(),
        stack_outputs=outputs, app_remote=app_source.remote_url, app_layout=app_source.layout.to_json(),
        delivery=delivery, fled=fled_by_rollback_to(context.instance, deploy.env, deploy.release.key) if rollback
        else [],
    )  # fmt: skip
    record_live(context.instance, deploy.env, live, context.log_event)
    shifts.finish(context.instance, deploy.env, context.run.run_id, "done")
    announce(context.instance, deploy, nc.ROLLED_BACK if rollback else nc.LIVE, run_id=context.run.run_id,
             detail=delivery, log=context.log.warning)  # fmt: skip


def _rollback_failed(context, deploy: Deployment, shift: ShiftRecord, outputs: dict[str, str], app_source,
                     reason: str) -> tuple[str, str]:  # fmt: skip
    """A rollback whose smoke failed stays where it went: going back to the recorded release would serve again
    what the rollback fled. It is recorded as live, so status shows no drift and no settle undoes it."""
    fled = recorded_live(context.instance, deploy.env)
    _record_live(context, deploy, shift, outputs, app_source, None, failed=reason)
    fled_key = fled.release if fled and fled.release != deploy.release.key else ""
    away = f", not back on {fled_key}, which the rollback fled" if fled_key else ""
    return (f"this was a rollback: {deploy.env} stays on {deploy.release.key}{away}. Find why its smoke failed, "
            f"then roll back further (`coderemote-pipeline rollback {deploy.env} --to RELEASE`) or deploy a fix"), ""


def _after_failure(context, deploy: Deployment, reason: str, target: EnvTarget, site: str,
                   force: bool) -> tuple[str, str]:  # fmt: skip
    """(what the environment serves now, the release it was rolled back to or ""). A failed bake always goes back:
    taking the new version's weight to 0 is what a bake is for."""
    previous = recorded_live(context.instance, deploy.env)
    if not (deploy.policy.auto_rollback or force):
        return f"{deploy.env} now serves this failed release: auto_rollback is off for {deploy.env}", ""
    if previous is None or previous.release == deploy.release.key:
        return f"no previous release of {deploy.env} to roll back to; {deploy.env} serves this failed release", ""
    started, cdn = time.monotonic(), ""
    try:
        restore_and_record(context.instance, target, previous, reason=f"automatic rollback: {reason}",
                           run_id=context.run.run_id, log_event=context.log_event, away_from=site)  # fmt: skip
    except CdnNotCleared as stale:
        cdn = f", {stale.hint()}"
    except LeaseLost:
        raise  # the env is the next deploy's now: nothing to put back by hand over it
    except (SwitchFailed, RuntimeError) as exc:
        return (f"automatic rollback to {previous.release} FAILED: {exc}. Put it back by hand: "
                f"coderemote-pipeline rollback {deploy.env} --to {previous.release}"), ""  # fmt: skip
    shifts.finish(context.instance, deploy.env, context.run.run_id, "rolled_back")
    context.log.warning(f"rolled {deploy.env} back to {previous.release} in {time.monotonic() - started:.1f}s{cdn}")
    announce(context.instance, deploy, nc.AUTOMATIC_ROLLBACK, run_id=context.run.run_id,
             detail=f"{reason}; {deploy.env} serves {previous.release} again{cdn}",
             log=context.log.warning)  # fmt: skip
    return (f"rolled back automatically: {deploy.env} serves {previous.release} again "
            f"(version {previous.version}, site {previous.frontend_release}){cdn}"), previous.release  # fmt: skip
