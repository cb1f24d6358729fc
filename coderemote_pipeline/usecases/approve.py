"""Approving or rejecting a release, the way the UI records it: a run of `approval_job` (materializing
`release_approval` for ENV|RELEASE with config by/decision/reason) in the persistent instance, so both show up in
the same place; and the approval view: what waits, for what, and the latest decisions."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.ledger.approvals import (
    APPROVAL_ASSET,
    GATED,
    ApprovalError,
    Decision,
    decision_refusal,
    held_run_key,
    latest_decision,
    latest_hold,
)
from coderemote_pipeline.ledger.releases import register_release
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import RELEASE_DIMENSION, partition_key
from coderemote_pipeline.rules.release_keys import Release, ReleaseKind
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.approval_view import Waiting, approval_view
from coderemote_pipeline.usecases.deploy import app_source
from coderemote_pipeline.usecases.progress import QUIET, failure_text


def ensure_registered(instance: dg.DagsterInstance, settings: Settings, release: Release) -> None:
    """A decision needs the release partition; a version tag on the remote that no sensor saw yet is registered."""
    if instance.has_dynamic_partition(RELEASE_DIMENSION, release.key):
        return
    remote = app_source(settings).remote()
    if release.kind is not ReleaseKind.COMMIT and f"refs/tags/{release.key}" in remote.ls_remote():
        register_release(instance, release.key)
        return
    if release.kind is ReleaseKind.COMMIT:
        raise ApprovalError(
            f"release {release.key!r} is not registered in this Dagster instance: a commit's release is registered "
            "when it is first deployed or held (main_push_sensor, or `coderemote-pipeline deploy ENV main`); check "
            "the name with `coderemote-pipeline approvals` or `coderemote-pipeline history ENV`"
        )
    raise ApprovalError(
        f"release {release.key!r} is not registered in this Dagster instance and is not a tag on the app remote "
        f"{remote.url!r}: push the tag first (version_tag_sensor registers it), or check the name with "
        "`coderemote-pipeline approvals`"
    )


def record_decision(
    settings: Settings, instance: dg.DagsterInstance, env: str, release: Release, *, by: str, decision: str, reason: str
) -> Decision:
    """Run approval_job for ENV|RELEASE in this instance; returns the decision as recorded."""
    refusal = decision_refusal(load_policies(settings.infra_dir)[check_env(env)], release)
    if refusal:
        raise ApprovalError(refusal)
    if not by.strip():
        raise ApprovalError("say who decides: --by NAME must not be empty")
    ensure_registered(instance, settings, release)
    if latest_hold(instance, env, release.key) is None:
        # The run binds the decision to the commit the release names now, read from the mirror, or from the remote
        # when the mirror lacks it: a remote that cannot give it is refused here, not recorded as a failed run.
        app_source(settings).commit_of(release)
    config = {"by": by, "decision": decision, "reason": reason}
    result = (
        build_defs(settings)
        .resolve_job_def(names.APPROVAL_JOB)
        .execute_in_process(
            run_config={**QUIET, "ops": {APPROVAL_ASSET: {"config": config}}},
            instance=instance,
            partition_key=partition_key(env, release.key),
            tags={names.DECIDED_BY_TAG: by},
            raise_on_error=False,
        )
    )
    if not result.success:
        errors = [e.step_failure_data.error for e in result.get_step_failure_events()]
        raise ApprovalError("; ".join(failure_text(e) for e in errors) or "the approval run failed")
    recorded = latest_decision(instance, env, release.key)
    assert recorded is not None
    return recorded


def held_deploy(instance: dg.DagsterInstance, decision: Decision) -> dg.DagsterRun | None:
    """The deploy run the approved hold became, once approved_release_sensor launched it."""
    if decision.hold_id is None:
        return None
    run_key = held_run_key(decision.env, decision.release, decision.hold_id)
    runs = instance.get_runs(dg.RunsFilter(tags={names.RUN_KEY_TAG: run_key}), limit=1)
    return runs[0] if runs else None


__all__ = ["GATED", "Waiting", "approval_view", "held_deploy", "record_decision"]  # the view: approval_view.py
