"""smoke_result: the live API and the live site, checked over HTTP for this very release; the verdict makes the
release live in the record, or, where policy says so, takes the environment back to what was live before."""

import time

import dagster as dg

from coderemote_pipeline.actions.restore import restore_and_record
from coderemote_pipeline.actions.smoke import smoke_checks
from coderemote_pipeline.actions.switch import SwitchFailed
from coderemote_pipeline.assets.cloudfront_invalidation import cloudfront_invalidation
from coderemote_pipeline.assets.stage import STAGE_KWARGS, deploy_stage, deployment, upstream
from coderemote_pipeline.ledger.live import record_live, recorded_live
from coderemote_pipeline.ledger.records import (
    BundleRecord,
    LiveRecord,
    ShiftRecord,
    SmokeRecord,
    StackRecord,
    VersionRecord,
)
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.resources.targets import env_target
from coderemote_pipeline.rules import names
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
    aws: AwsResource,
    api_runtime: ApiRuntime,
    environments: Environments,
) -> dg.MaterializeResult:
    """Passed: the release is recorded as live. Failed: with `auto_rollback` (prod) the environment goes back to the
    release recorded as live before this run, and the failure says what was rolled back to and why."""
    started = time.monotonic()
    outputs = upstream(context, StackRecord).stack_outputs
    shift, bundle = upstream(context, ShiftRecord), upstream(context, BundleRecord)
    deploy = deployment(context, environments).at(bundle.commit)
    checks = smoke_checks(
        api_url=outputs[out.API_URL], health_path=app_source.health_path, frontend_url=outputs[out.FRONTEND_URL],
        env=deploy.env, release=deploy.release.key, commit=deploy.commit, index_sha256=bundle.index_sha256,
        runtime_config=bundle.build_mode == "runtime_config",
    )  # fmt: skip
    passed = all(c.ok for c in checks)
    record = SmokeRecord(passed, deploy.release.key, deploy.commit, [c.summary() for c in checks],
                         seconds=round(time.monotonic() - started, 3))  # fmt: skip
    timings = {f"{c.name}_latency_ms": c.latency_ms for c in checks} | {f"{c.name}_status": c.status for c in checks}
    if passed:
        _record_live(context, deploy, shift, outputs, app_source)
        return dg.MaterializeResult(metadata={**record.to_metadata(), **timings, "cold_start_s": shift.cold_start_s},
                                    data_version=SmokeRecord.data_version(True, deploy.commit))  # fmt: skip
    reason = f"smoke failed for {deploy.label}: " + "; ".join(
        f"{c.name} {c.url}: {c.detail} (after {c.attempts} tries, {c.seconds:.1f} s)" for c in checks if not c.ok
    )
    after = _after_failure(context, deploy, reason, outputs, aws, api_runtime, app_source)
    failed = SmokeRecord(False, deploy.release.key, deploy.commit, record.checks, bool(after[1]), after[1], after[0],
                         record.seconds)  # fmt: skip
    context.log_event(dg.AssetMaterialization(asset_key=names.key(names.SMOKE_RESULT), partition=deploy.partition,
                                              metadata={**failed.to_metadata(), **timings},
                                              tags={"dagster/data_version":
                                                    SmokeRecord.data_version(False, deploy.commit).value}))  # fmt: skip
    raise dg.Failure(description=f"{reason}. {after[0]}", metadata=failed.to_metadata(), allow_retries=False)


def _record_live(context, deploy: Deployment, shift: ShiftRecord, outputs: dict[str, str], app_source) -> None:
    """The release is live: recorded with how to reach the env and how the release was built (for rollbacks)."""
    live = LiveRecord(
        release=deploy.release.key, commit=deploy.commit, version=shift.version,
        digest=upstream(context, VersionRecord).image_digest, frontend_release=shift.site_release,
        reason=f"deployed {deploy.release.key}", run_id=context.run.run_id, since=time.time(),
        stack_outputs=outputs, app_remote=app_source.remote_url, app_layout=app_source.layout.to_json(),
    )  # fmt: skip
    record_live(context.instance, deploy.env, live, context.log_event)


def _after_failure(context, deploy: Deployment, reason: str, outputs, aws, api_runtime, app_source) -> tuple[str, str]:
    """(what the environment serves now, the release it was rolled back to or "")."""
    previous = recorded_live(context.instance, deploy.env)
    if not deploy.policy.auto_rollback:
        return f"{deploy.env} now serves this failed release: auto_rollback is off for {deploy.env}", ""
    if previous is None or previous.release == deploy.release.key:
        return f"no previous release of {deploy.env} to roll back to; {deploy.env} serves this failed release", ""
    target = env_target(deploy.env, outputs, aws=aws, api_runtime=api_runtime, app_source=app_source)
    try:
        restored = restore_and_record(context.instance, target, previous, reason=f"automatic rollback: {reason}",
                                      run_id=context.run.run_id, log_event=context.log_event)  # fmt: skip
    except (SwitchFailed, RuntimeError) as exc:
        return (f"automatic rollback to {previous.release} FAILED: {exc}. Roll back by hand: "
                f"coderemote-pipeline rollback {deploy.env}"), ""  # fmt: skip
    context.log.warning(f"rolled {deploy.env} back to {previous.release} in {restored.seconds:.1f}s")
    return (f"rolled back automatically: {deploy.env} serves {previous.release} again "
            f"(version {previous.version}, site {previous.frontend_release})"), previous.release  # fmt: skip
