"""infra_stack: the environment's Pulumi stack (or its emulator twin), the root of every deployment."""

import dagster as dg

from coderemote_pipeline.actions.notify import announce
from coderemote_pipeline.actions.release_tags import signature_refusal
from coderemote_pipeline.assets.stage import STAGE_KWARGS, commit_for, deploy_stage, deployment, require_cleared
from coderemote_pipeline.ledger.records import StackRecord
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.provisioner import InfraProvisioner
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules import stack_outputs as out


@dg.asset(name=names.INFRA_STACK, kinds={"pulumi", "aws"}, group_name="infra", **STAGE_KWARGS)
@deploy_stage
def infra_stack(
    context: dg.AssetExecutionContext, provisioner: InfraProvisioner, environments: Environments, app_source: AppSource
) -> dg.MaterializeResult:
    """The env's stack brought to its declared state: ECR repository, Lambda function and `live` alias, bucket, CDN."""
    deploy = deployment(context, environments)
    gated = deploy.policy.approval_required or deploy.policy.verified_in
    if not deploy.commit and (gated or names.is_deploy_run(context.run)):
        # Launched without its commit (the UI): pinned here, at the root, before the branches resolve the release
        # side by side (a tag moved between them would give the image one commit and the site another).
        deploy = commit_for(context, app_source, deploy)
    if gated:
        # Approval and the promotion gate bind a commit: prod's infrastructure changes only for a cleared release.
        require_cleared(context, deploy)
    if deploy.policy.allowed_signers is not None:
        # Whatever launched the run (a sensor, the CLI, the UI): an unsigned tag never changes this env.
        refusal = signature_refusal(app_source.remote(), deploy.release, deploy.policy.allowed_signers)
        if refusal:
            raise dg.Failure(description=refusal, allow_retries=False)
    announce(context.instance, deploy, nc.STARTED, run_id=context.run.run_id, log=context.log.warning)
    config = deploy.policy.stack
    result = provisioner.ensure(deploy.env, config, context.log.info)
    record = StackRecord(
        stack_outputs=result.outputs,
        changes=result.changes,
        change_count=result.resources_changed,
        region=config.region,
        seconds=round(result.seconds, 3),
    )
    return dg.MaterializeResult(
        metadata={
            **record.to_metadata(),
            "api_url": dg.MetadataValue.url(result.outputs[out.API_URL]),
            "frontend_url": dg.MetadataValue.url(result.outputs[out.FRONTEND_URL]),
        }
    )
