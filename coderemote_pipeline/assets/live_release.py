"""The live state of each environment in the UI: what the pipeline made live, the delivery figures, and a check
that the target still serves what was recorded (someone moving the alias by hand shows up as drift)."""

import dagster as dg

from coderemote_pipeline.ledger.history import DELIVERY_METRICS
from coderemote_pipeline.ledger.live import LIVE_RELEASE, drift, env_outputs, recorded_live, target_state
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.rules.partitions import ENVIRONMENTS, env_partitions_def

delivery_metrics = dg.AssetSpec(
    DELIVERY_METRICS,
    partitions_def=env_partitions_def,
    group_name="live",
    owners=["team:platform"],
    description="Deploy frequency, lead time, change failure rate and time to restore per environment "
    "(recorded by `coderemote-pipeline history`).",
)


@dg.asset_check(asset=LIVE_RELEASE, description="The target serves what the pipeline last made live (no drift).")
def live_release_matches_target(
    context: dg.AssetCheckExecutionContext, aws: AwsResource, api_runtime: ApiRuntime
) -> dg.AssetCheckResult:
    found: dict[str, str] = {}
    for env in ENVIRONMENTS:
        recorded, outputs = recorded_live(context.instance, env), env_outputs(context.instance, env)
        if recorded is None or outputs is None:
            found[env] = "nothing deployed"
            continue
        target = target_state(aws.client("lambda"), aws.client("s3"), outputs, api_runtime.current(env))
        problems = drift(recorded, target)
        found[env] = "; ".join(problems) if problems else f"ok: {target.release} (version {target.version})"
    drifted = [env for env, text in found.items() if not text.startswith(("ok", "nothing"))]
    return dg.AssetCheckResult(
        passed=not drifted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"drift in {', '.join(drifted)}" if drifted else "every environment serves what was recorded",
        metadata={env: dg.MetadataValue.text(text) for env, text in found.items()},
    )
