"""traffic_shift: users move to the release, the API first, the site right after, only once both are ready.

Everything slow happened before, in parallel, while users still had the previous release: the image and the
published version (backend branch), the site's snapshot (frontend branch). This stage is the switch itself, so a
failure in either branch leaves the environment wholly on its previous release; a failure during the switch puts
it back (actions/switch.py) before the run fails.
"""

import time

import dagster as dg

from coderemote_pipeline.actions.switch import Serving, SwitchFailed, switch
from coderemote_pipeline.assets.frontend_bundle import frontend_bundle
from coderemote_pipeline.assets.lambda_version import lambda_version
from coderemote_pipeline.assets.stage import STAGE_KWARGS, deploy_stage, deployment, require_cleared, upstream
from coderemote_pipeline.ledger.records import BundleRecord, ShiftRecord, StackRecord, VersionRecord
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.resources.targets import env_target
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import stack_outputs as out

ALL_AT_ONCE = "all_at_once"


@dg.asset(
    name=names.TRAFFIC_SHIFT,
    deps=[lambda_version, frontend_bundle],
    kinds={"aws", "lambda"},
    group_name="release",
    **STAGE_KWARGS,
)
@deploy_stage
def traffic_shift(
    context: dg.AssetExecutionContext,
    aws: AwsResource,
    api_runtime: ApiRuntime,
    app_source: AppSource,
    environments: Environments,
) -> dg.MaterializeResult:
    """The `live` alias on the release's version with the runtime serving it healthy, then the live site on the
    release's snapshot. Metadata: what was live before (what an automatic rollback returns to) and what changed."""
    outputs = upstream(context, StackRecord).stack_outputs
    version, bundle = upstream(context, VersionRecord), upstream(context, BundleRecord)
    deploy = deployment(context, environments).at(version.commit)
    require_cleared(context, deploy)
    target = env_target(deploy.env, outputs, aws=aws, api_runtime=api_runtime, app_source=app_source)
    wanted = Serving(str(version.version), deploy.release.key, version.commit, version.image_digest, bundle.release)
    try:
        switched = switch(target, wanted)
    except SwitchFailed as exc:
        raise dg.Failure(description=f"the switch of {deploy.label} failed: {exc}", allow_retries=False) from exc
    before = switched.before
    context.log.info(
        f"{deploy.env} serves {deploy.release.key}: version {before.version} → {version.version}, site "
        f"{before.site_release or 'none'} → {bundle.release}, {len(switched.changed_paths)} path(s) changed"
    )
    record = ShiftRecord(
        strategy=ALL_AT_ONCE,
        version=version.version,
        previous_version=int(before.version) if before.version.isdigit() else 0,
        previous_release=before.release,
        previous_site=before.site_release or "",
        site_release=bundle.release,
        alias_moved=switched.alias_moved,
        api_url=outputs[out.API_URL],
        changed_paths=switched.changed_paths,
        cold_start_s=round(switched.api.cold_start_s or 0.0, 3),
        runtime=switched.api.detail,
        switched_at=time.time(),
    )
    return dg.MaterializeResult(metadata={**record.to_metadata(), "seconds": round(switched.seconds, 3)})
