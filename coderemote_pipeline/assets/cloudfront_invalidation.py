"""cloudfront_invalidation: the CDN's cached copies of what the switch changed, invalidated and confirmed."""

import dagster as dg

from coderemote_pipeline.actions.cdn import invalidate
from coderemote_pipeline.assets.stage import STAGE_KWARGS, deploy_stage, deployment, upstream
from coderemote_pipeline.assets.traffic_shift import traffic_shift
from coderemote_pipeline.ledger.records import InvalidationRecord, ShiftRecord, StackRecord
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.site_edge import SiteEdge
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import stack_outputs as out


@dg.asset(
    name=names.CLOUDFRONT_INVALIDATION,
    deps=[traffic_shift],
    kinds={"aws", "cloudfront"},
    group_name="release",
    **STAGE_KWARGS,
)
@deploy_stage
def cloudfront_invalidation(
    context: dg.AssetExecutionContext, aws: AwsResource, site_edge: SiteEdge, environments: Environments
) -> dg.MaterializeResult:
    """Only paths a cache may hold stale bytes for (never new hashed names); waits until the CDN says Completed."""
    deployment(context, environments)
    outputs = upstream(context, StackRecord).stack_outputs
    paths = ff.invalidation_paths(list(upstream(context, ShiftRecord).changed_paths))
    distribution = outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
    if not paths:
        context.log.info("no cached path changed: nothing to invalidate")
        return dg.MaterializeResult(metadata=InvalidationRecord(distribution_id=distribution).to_metadata())
    # The same run retrying the step reuses its invalidation instead of creating another.
    done = invalidate(aws.client("cloudfront"), distribution, paths, f"{context.run.run_id}-{context.partition_key}")
    site_edge.forget(deployment(context, environments).env, paths)
    record = InvalidationRecord(
        invalidation_id=done.id,
        distribution_id=distribution,
        paths=paths,
        path_count=len(paths),
        status=done.status,
        seconds=round(done.seconds, 3),
    )
    return dg.MaterializeResult(metadata=record.to_metadata())
