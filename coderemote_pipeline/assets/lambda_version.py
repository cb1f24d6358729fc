"""lambda_version: a published Lambda version running the release's image digest, ready for traffic_shift."""

import dagster as dg

from coderemote_pipeline.actions import lambda_versions as lv
from coderemote_pipeline.assets.api_image import api_image
from coderemote_pipeline.assets.stage import STAGE_KWARGS, Stopwatch, deploy_stage, deployment, upstream
from coderemote_pipeline.ledger.records import ImageRecord, StackRecord, VersionRecord
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import stack_outputs as out


@dg.asset(name=names.LAMBDA_VERSION, deps=[api_image], kinds={"aws", "lambda"}, group_name="backend", **STAGE_KWARGS)
@deploy_stage
def lambda_version(
    context: dg.AssetExecutionContext, aws: AwsResource, environments: Environments
) -> dg.MaterializeResult:
    """The function updated to the image digest and published as a version described with the release. The `live`
    alias does not move here: users switch in traffic_shift, once the site is ready too."""
    deploy = deployment(context, environments)
    outputs = upstream(context, StackRecord).stack_outputs
    image = upstream(context, ImageRecord)
    timer = Stopwatch()
    with timer.step("publish"):
        published = lv.publish(
            aws.client("lambda"),
            function=outputs[out.LAMBDA_FUNCTION_NAME],
            image=image.ref(),
            release=deploy.release.key,
            commit=image.commit,
            env=deploy.env,
        )
    context.log.info(f"{published.summary()} of {outputs[out.LAMBDA_FUNCTION_NAME]} for {deploy.release.key}")
    record = VersionRecord(
        function=outputs[out.LAMBDA_FUNCTION_NAME],
        version=int(published.version),
        alias=outputs[out.LAMBDA_ALIAS_NAME],
        image_digest=image.digest,
        release=deploy.release.key,
        commit=image.commit,
        version_reused=published.reused,
    )
    return dg.MaterializeResult(metadata={**record.to_metadata(), **published.seconds, **timer.metadata()})
