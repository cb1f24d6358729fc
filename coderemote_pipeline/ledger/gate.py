"""The promotion gate: an environment may require that the release's commit passed smoke in another one first.

Build once, promote the same bytes: the check is on the commit, so `v1.0.0` tagged on a commit that dev ran as
`main-3f9c2ab` is verified by that dev run. A commit never deployed there, or whose latest deploy there failed,
is held; an override (`--force --reason`) is carried by the run's tags and so stays in its history.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import dagster as dg

from coderemote_pipeline.ledger.releases import latest_failed_deploy, verification
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import EnvironmentPolicy


def overridden(tags: Mapping[str, str] | None) -> bool:
    return bool((tags or {}).get(names.OVERRIDE_TAG, "").strip())


def gate_refusal(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, commit: str, tags: Mapping[str, str] | None = None
) -> str | None:
    """Why `commit` may not go to the policy's env yet, or None (no gate, verified, or overridden with a reason)."""
    source = policy.verified_in
    if source is None or overridden(tags):
        return None
    if verification(instance, policy.name, commit) is not None:
        return None  # it already passed smoke in this very env: going back to it (a rollback) needs no new proof
    fix = (
        f"Deploy it to {source} first (`coderemote-pipeline deploy {source} {commit[:12]}`), or override with "
        "--force --reason TEXT"
    )
    failed = latest_failed_deploy(instance, source, commit)
    if failed is not None:
        return (
            f"{policy.name} is held: the latest {source} deploy of commit {commit[:12]} failed "
            f"(run {failed.run_id[:8]}). Fix it in {source} and deploy it there again, or override with "
            "--force --reason TEXT"
        )
    if verification(instance, source, commit) is None:
        return f"{policy.name} is held: commit {commit[:12]} has not passed smoke in {source}. {fix}"
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
