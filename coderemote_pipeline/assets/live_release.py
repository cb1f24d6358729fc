"""The live state of each environment in the UI: what the pipeline made live, the delivery figures, and a check
that the target still serves what was recorded (someone moving the alias by hand, or an API that went down)."""

import warnings

import dagster as dg

from coderemote_pipeline.actions.target_state import drift, read_target
from coderemote_pipeline.assets.stage import OWNERS
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.env_names import ENVIRONMENTS
from coderemote_pipeline.rules.partitions import ENV_DIMENSION, env_partitions_def

with warnings.catch_warnings():
    # Beta in Dagster 1.13, and exactly the mapping this lineage is: every env|release smoke → that env's record.
    warnings.simplefilter("ignore", dg.BetaWarning)
    ENV_OF_DEPLOYMENT = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=ENV_DIMENSION)

live_release = dg.AssetSpec(
    names.key(names.LIVE_RELEASE),
    deps=[dg.AssetDep(names.key(names.SMOKE_RESULT), partition_mapping=ENV_OF_DEPLOYMENT)],
    partitions_def=env_partitions_def,
    group_name="live",
    kinds={"aws"},
    owners=OWNERS,
    description="The release live in each environment: recorded by every deploy whose smoke passed, every rollback "
    "and every automatic rollback, with its version, digest, site, run and reason.",
)

delivery_metrics = dg.AssetSpec(
    names.key(names.DELIVERY_METRICS),
    deps=[live_release],
    partitions_def=env_partitions_def,
    group_name="live",
    owners=OWNERS,
    description="DORA's five keys per environment over 30 days (deployment frequency, change lead time, change fail "
    "rate, failed deployment recovery time, deployment rework rate), materialized after every deploy and rollback.",
)


@dg.asset_check(asset=live_release.key, description="The target serves what the pipeline last made live (no drift).")
def live_release_matches_target(
    context: dg.AssetCheckExecutionContext, targets: EnvTargets, app_source: AppSource
) -> dg.AssetCheckResult:
    found: dict[str, str] = {}
    for env in ENVIRONMENTS:
        recorded = recorded_live(context.instance, env)
        if recorded is None or not recorded.stack_outputs:
            found[env] = "nothing deployed"
            continue
        layout = AppLayout.from_json(recorded.app_layout) if recorded.app_layout else app_source.layout
        target = targets.target(env, recorded.stack_outputs, layout)
        state = read_target(target)
        problems = drift(recorded, state)
        found[env] = "; ".join(problems) if problems else f"ok: {state.release} (version {state.version})"
    drifted = [env for env, text in found.items() if not text.startswith(("ok", "nothing"))]
    return dg.AssetCheckResult(
        passed=not drifted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"drift in {', '.join(drifted)}" if drifted else "every environment serves what was recorded",
        metadata={env: dg.MetadataValue.text(text) for env, text in found.items()},
    )
