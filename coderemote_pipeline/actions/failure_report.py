"""After a deploy run fails: say in the run exactly what its environment serves now, and in an environment whose
policy rolls back automatically, put it back on the release recorded as live when the failure left anything else.

The two branches run in parallel, so a failure in one may leave the other's change live: an image push that fails
while the new site goes out, an upload that fails after the alias moved. Nothing in the run itself can look at the
end state (no step runs after a failed one), so this runs once the run is over: `deploy.launch` calls it for the
runs it executes, and `failed_deploy_sensor` for runs launched through the queue. Its verdict is an engine event in
the failed run's log (once per run), so the UI and `deploy` show the same sentence.
"""

# No `from __future__ import annotations`: Dagster reads failed_deploy_sensor's annotations to find its resources.
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import dagster as dg
import docker.errors

from coderemote_pipeline.actions.restore import restore
from coderemote_pipeline.assets.common import ENV_TAG
from coderemote_pipeline.ledger.live import TargetState, drift, env_outputs, record_live, recorded_live, target_state
from coderemote_pipeline.local_stack.errors import LocalStackError
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.rules.environments import policy_for

MARKER = "after this failure:"
DEPLOY_JOBS = ("deploy_job", "redeploy_job")
UNREADABLE = (LocalStackError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
              docker.errors.DockerException, OSError)  # fmt: skip


@dataclass(frozen=True)
class Settled:
    env: str
    text: str
    whole: bool | None  # None: what is live could not be read
    rolled_back: bool = False


def split_parts(target: TargetState) -> list[str]:
    """How the live parts disagree on the release (empty: one whole release)."""
    parts = []
    if target.frontend_release is not None and target.frontend_release != target.release:
        parts.append(f"the API serves {target.release or 'no release'} but the site serves {target.frontend_release}")
    served = (target.runtime or {}).get("version")
    if target.runtime is None:
        parts.append(f"nothing serves the API (no runtime runs alias version {target.version})")
    elif served not in (None, target.version):
        parts.append(f"the API runtime serves version {served}, the alias points to {target.version}")
    return parts


def _describe(env: str, run: dg.DagsterRun, target: TargetState) -> tuple[bool, str]:
    parts = split_parts(target)
    live = f"{target.release or 'no release'} (alias version {target.version}, site {target.frontend_release})"
    if not parts:
        return True, f"{env} serves {live} as one whole release"
    release = run.tags.get("coderemote/release", "the release")
    return False, (
        f"{env} is NOT one whole release: {'; '.join(parts)}. Re-execute this run from failure to finish {release} "
        f"(`coderemote-pipeline retry {run.run_id[:8]}`, or the UI), or roll back with "
        f"`coderemote-pipeline rollback {env}`"
    )


def already_settled(instance: dg.DagsterInstance, run_id: str) -> bool:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    return any((e.message or "").startswith(MARKER) for e in events)


def settle_failed_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, *, aws: Any, api_runtime: Any, app_source: Any
) -> Settled | None:
    """Read what the failed run's env serves, roll it back if policy says so, and write the verdict to the run."""
    env = run.tags.get(ENV_TAG)
    if not env or run.job_name not in DEPLOY_JOBS or already_settled(instance, run.run_id):
        return None
    settled = _settle(instance, run, env, aws=aws, api_runtime=api_runtime, app_source=app_source)
    instance.report_engine_event(f"{MARKER} {settled.text}", run)
    return settled


def _settle(instance, run, env: str, *, aws, api_runtime, app_source) -> Settled:
    outputs = env_outputs(instance, env)
    if outputs is None:
        return Settled(env, f"nothing was ever deployed to {env} from this instance: nothing of it is live", True)
    try:
        lam, s3 = aws.client("lambda"), aws.client("s3")
        target = target_state(lam, s3, outputs, api_runtime.current(env))
    except UNREADABLE as exc:
        return Settled(env, f"what {env} serves cannot be read now ({exc}); check it with "
                       f"`coderemote-pipeline status {env}` once that is fixed", None)  # fmt: skip
    whole, text = _describe(env, run, target)
    recorded = recorded_live(instance, env)
    if not policy_for(env).auto_rollback or recorded is None or not drift(recorded, target):
        return Settled(env, text, whole)
    try:
        restored = restore(
            lam=lam,
            s3=s3,
            cf=aws.client("cloudfront"),
            api_runtime=api_runtime,
            app_source=app_source,
            env=env,
            outputs=outputs,
            version=str(recorded["version"]),
            frontend_release=str(recorded.get("frontend_release") or "") or None,
            acl=aws.object_acl,
            caller_reference=f"after-failure-{run.run_id}",
        )
    except (*UNREADABLE, RuntimeError) as exc:
        return Settled(env, f"{text}. Automatic rollback to {recorded.get('release')} FAILED: {exc}. Roll back by "
                       f"hand: coderemote-pipeline rollback {env}", whole)  # fmt: skip
    reason = f"automatic rollback: run {run.run_id[:8]} failed and left {env} serving {target.release}"
    record_live(instance, env, reason=reason, run_id=run.run_id, release=restored.release, commit=restored.commit,
                version=int(restored.version), digest=restored.digest,
                frontend_release=restored.frontend_release or "")  # fmt: skip
    return Settled(
        env,
        f"rolled back automatically: {env} serves {restored.release} again (version {restored.version}, site "
        f"{restored.frontend_release}); deploy {run.tags.get('coderemote/release', 'the release')} again to retry",
        True,
        rolled_back=True,
    )


@dg.run_failure_sensor(
    name="failed_deploy_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a deploy or rollback run fails: writes what its environment serves into the run's log, and "
    "rolls back an auto_rollback environment the failure left on anything but its recorded live release.",
)
def failed_deploy_sensor(
    context: dg.RunFailureSensorContext, aws: AwsResource, api_runtime: ApiRuntime, app_source: AppSource
) -> None:
    settled = settle_failed_run(
        context.instance, context.dagster_run, aws=aws, api_runtime=api_runtime, app_source=app_source
    )
    if settled is not None:
        context.log.info(f"run {context.dagster_run.run_id[:8]}: {settled.text}")


def after_failure_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[failed_deploy_sensor])


def settle_after_failure(instance: dg.DagsterInstance, run_id: str, settings: Any) -> Settled | None:
    """`settle_failed_run` for a run this process executed, with the target's resources built from `settings`."""
    from coderemote_pipeline.resources.targets import resources_for

    run = instance.get_run_by_id(run_id)
    if run is None:
        return None
    resources = resources_for(settings)
    return settle_failed_run(
        instance, run, aws=resources["aws"], api_runtime=resources["api_runtime"], app_source=resources["app_source"]
    )
