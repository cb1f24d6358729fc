"""The approval gate as an asset: approving or rejecting ENV|RELEASE is materializing `release_approval` for it.

From the UI: materialize the partition (e.g. `prod|v1.2.3`) with config `by`, `decision`, `reason`. From a terminal:
`coderemote-pipeline approve prod v1.2.3` runs `approval_job` with that same config against the same
instance. Either way the decision is an event in the instance with who, when and which release and commit: the
stages refuse to deploy to an env that requires approval until the latest decision is "approve"
(`assets/common.py`), and `approved_release_sensor` launches the deploy that a sensor was holding.
"""

# No `from __future__ import annotations` here: Dagster reads ApprovalConfig's annotations when the asset is defined.
import time
from typing import Literal

import dagster as dg
from pydantic import Field

from coderemote_pipeline.actions.release_tags import creator
from coderemote_pipeline.assets.stage import OWNERS
from coderemote_pipeline.ledger.approvals import APPROVAL_ASSET, decision_refusal, latest_hold
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules.errors import config_text_refusal
from coderemote_pipeline.rules.partitions import deployment_partitions_def


class ApprovalConfig(dg.Config):
    by: str = Field(description="Who decides: a name or handle, recorded with the decision.")
    decision: Literal["approve", "reject"] = Field(default="approve", description="approve or reject")
    reason: str = Field(default="", description="Why (shown with the decision; most useful for a rejection).")


@dg.asset(
    name=APPROVAL_ASSET,
    partitions_def=deployment_partitions_def,
    group_name="approvals",
    kinds={"approval"},
    owners=OWNERS,
    description="An engineer's decision on deploying a release to an environment that requires approval. "
    "Materialize a partition with config {by, decision: approve|reject, reason} to decide; observations with "
    "status 'pending' are releases held for a decision, 'gated' approved ones the promotion gate still holds.",
)
def release_approval(
    context: dg.AssetExecutionContext, config: ApprovalConfig, app_source: AppSource, environments: Environments
):
    deploy = environments.deployment(context.partition_key)
    env, release = deploy.env, deploy.release
    refusal = decision_refusal(deploy.policy, release)
    if not refusal and not config.by.strip():
        refusal = "say who decides: config `by` (or `--by NAME` on the command line) must not be empty"
    refusal = refusal or config_text_refusal(config.by, config.reason)
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)
    # The decision binds a commit: the one the sensor held when there is a hold (what the approver was shown),
    # else what the release names now. A tag moved later no longer matches, and the stages refuse it.
    hold = latest_hold(context.instance, env, release.key)
    commit = hold.commit if hold else app_source.commit_of(release)
    by = config.by.strip()
    made_by = creator(app_source.remote(), release, commit)
    refusal = deploy.policy.approval_rule.refusal(by, made_by, approving=config.decision == "approve")
    if refusal:
        raise dg.Failure(description=f"{env}|{release.key}: {refusal}", allow_retries=False)
    context.log.info(
        f"{config.decision} {env}|{release.key} (commit {commit[:12]}) by {by}"
        + (f": {config.reason}" if config.reason else "")
    )
    metadata: dict[str, object] = {
        "decision": config.decision,
        "by": by,
        "reason": config.reason,
        "commit": commit,
        "created_by": made_by.describe() if made_by else "unknown",
        "decided_at": dg.MetadataValue.timestamp(time.time()),
    }
    if hold is not None:
        # Only a held release is launched by approved_release_sensor, once per hold (its run key names the hold):
        # approving a release nobody held, or approving it again, launches nothing more.
        metadata["hold_id"] = hold.storage_id
        metadata["held_since"] = dg.MetadataValue.timestamp(hold.timestamp)
    return dg.MaterializeResult(metadata=metadata)
