"""infra_stack: the environment's Pulumi stack (or its emulator twin), the root of every deployment."""

import dagster as dg

from coderemote_pipeline.assets.common import STAGE_KWARGS, deployment
from coderemote_pipeline.assets.retries import permanent_failures_fail_fast
from coderemote_pipeline.resources.provisioner import InfraProvisioner
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.environments import policy_for


@dg.asset(kinds={"pulumi", "aws"}, group_name="infra", **STAGE_KWARGS)
@permanent_failures_fail_fast
def infra_stack(context: dg.AssetExecutionContext, provisioner: InfraProvisioner) -> dg.MaterializeResult:
    """The env's stack brought to its declared state: ECR repository, Lambda function and `live` alias, bucket, CDN."""
    env, _ = deployment(context)
    config = policy_for(env).stack
    result = provisioner.ensure(env, config, context.log.info)
    outputs = result.outputs
    return dg.MaterializeResult(
        metadata={
            "stack_outputs": dg.MetadataValue.json(outputs),
            "changes": dg.MetadataValue.json(result.changes),
            "change_count": result.resources_changed,
            "api_url": dg.MetadataValue.url(outputs[out.API_URL]),
            "frontend_url": dg.MetadataValue.url(outputs[out.FRONTEND_URL]),
            "region": config.region,
            "seconds": round(result.seconds, 3),
        }
    )
