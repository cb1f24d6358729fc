"""The promotion gate: an environment may require that the release's commit passed smoke in another one first.

Build once, promote the same bytes: the check is on the commit, so `v1.0.0` tagged on a commit that dev ran as
`main-3f9c2ab` is verified by that dev run. A commit never deployed there, or whose latest deploy there failed,
is held; an override (`--force --reason`) is carried by the run's tags and so stays in its history.
"""

import time
from collections.abc import Mapping

import dagster as dg

from coderemote_pipeline.assets.common import COMMIT_TAG, ENV_TAG
from coderemote_pipeline.ledger.live import Passed, passed_releases
from coderemote_pipeline.rules.environments import EnvironmentPolicy

OVERRIDE_TAG = "coderemote/override"
OVERRIDE_BY_TAG = "coderemote/override_by"
SCAN = 500


def verification(instance: dg.DagsterInstance, env: str, commit: str) -> Passed | None:
    """The latest passed smoke of `commit` in `env` (whatever release key it ran under there)."""
    return next((p for p in passed_releases(instance, env) if p.commit == commit), None)


def _latest_failure(instance: dg.DagsterInstance, env: str, commit: str) -> dg.RunRecord | None:
    records = instance.get_run_records(dg.RunsFilter(tags={ENV_TAG: env, COMMIT_TAG: commit}), limit=1)
    if records and records[0].dagster_run.status is dg.DagsterRunStatus.FAILURE:
        return records[0]
    return None


def gate_refusal(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, commit: str, tags: Mapping[str, str] | None = None
) -> str | None:
    """Why `commit` may not go to the policy's env yet, or None (no gate, verified, or overridden with a reason)."""
    source = policy.verified_in
    if source is None or (tags or {}).get(OVERRIDE_TAG, "").strip():
        return None
    if verification(instance, policy.name, commit) is not None:
        return None  # it already passed smoke in this very env: going back to it (a rollback) needs no new proof
    failed = _latest_failure(instance, source, commit)
    if failed is not None:
        return (
            f"{policy.name} is held: the latest {source} deploy of commit {commit[:12]} failed "
            f"(run {failed.dagster_run.run_id[:8]}). Fix it in {source} first, or override with "
            "--force --reason TEXT"
        )
    if verification(instance, source, commit) is None:
        return (
            f"{policy.name} is held: commit {commit[:12]} has not passed smoke in {source}. Deploy it to {source} "
            "first (the strategy's 'tested in dev' checklist), or override with --force --reason TEXT"
        )
    return None


def require_verified(context: dg.AssetExecutionContext, policy: EnvironmentPolicy, commit: str) -> None:
    """The gate inside the stages that change what users get, so a run launched from the UI is held too."""
    refusal = gate_refusal(context.instance, policy, commit, context.run.tags)
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)


def deployed_elsewhere(
    instance: dg.DagsterInstance, asset: str, key: str, value: str, env: str
) -> tuple[str, str] | None:
    """(env, run id) of the latest materialization of `asset` in another env whose metadata `key` equals `value`:
    where the very same bytes were deployed before, so the UI can say "promoted from dev (run …)"."""
    for record in instance.fetch_materializations(dg.AssetKey(asset), limit=SCAN).records:
        mat = record.asset_materialization
        other = str(mat.partition or "").split("|", 1)[0] if mat else ""
        if mat and other and other != env and getattr(mat.metadata.get(key), "value", None) == value:
            return other, record.run_id
    return None


def gate_status(instance: dg.DagsterInstance, policy: EnvironmentPolicy, commit: str) -> str:
    """One line for the approval view: where and by which run the commit was verified, or why it is held."""
    if policy.verified_in is None:
        return ""
    refusal = gate_refusal(instance, policy, commit)
    if refusal:
        return refusal
    proof = verification(instance, policy.verified_in, commit) or verification(instance, policy.name, commit)
    if proof is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(proof.at))
    return f"verified in {proof.env} as {proof.release} by run {proof.run_id[:8]} at {when}"
