"""What waits for an approval decision, and the latest decisions: the `approvals` listing and the UI's view.

Read from the latest event per partition of the approval asset (see ledger/approvals.py for what the events are).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from coderemote_pipeline.ledger.approvals import (
    APPROVAL_KEY,
    GATED,
    PENDING,
    Decision,
    Hold,
    approval_reason,
    decision_from,
    latest_decision,
    latest_status,
)
from coderemote_pipeline.rules.environments import EnvironmentPolicy
from coderemote_pipeline.rules.partitions import partition_key, split_partition_key

# How many past decisions the `approvals` listing shows (every one stays in the UI); what waits is always complete.
RECENT_DECISIONS = 20


def partly_approved(instance: dg.DagsterInstance, policy: EnvironmentPolicy, hold: Hold) -> str | None:
    """Approved, yet by fewer than the env requires: who approved and how many more from whom; else None."""
    decided = latest_decision(instance, hold.env, hold.release)
    if decided is None or not decided.approved:
        return None
    return approval_reason(instance, policy, hold.release, hold.commit)


def approval_board(
    instance: dg.DagsterInstance, policies: Mapping[str, EnvironmentPolicy] | None = None
) -> tuple[list[Hold], list[Decision]]:
    """(every release that waits — for a decision, or approved and held by the gate —, the latest decisions).

    What waits is found from the latest event per partition of the approval asset (an indexed aggregate over the
    partitions ever held), so a release held months ago is still listed; decisions shown: the RECENT_DECISIONS
    newest (every one stays in the UI).
    """
    holds = instance.get_latest_storage_id_by_partition(APPROVAL_KEY, dg.DagsterEventType.ASSET_OBSERVATION)
    decided = instance.get_latest_storage_id_by_partition(APPROVAL_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION)
    # A hold answered since may still wait: approved, but by fewer people than its env requires (asked only of the
    # envs that require more than one approval: the others' answered holds are done).
    several = {env: policy for env, policy in (policies or {}).items() if policy.approval_rule.required > 1}
    asked = [key for key, hold_id in holds.items()
             if hold_id > decided.get(key, 0) or split_partition_key(key)[0] in several]  # fmt: skip
    statuses = [h for key in asked if (h := latest_status(instance, *split_partition_key(key))) is not None]
    waiting = [h for h in statuses if h.status == GATED or (h.status == PENDING and (
        h.storage_id > decided.get(partition_key(h.env, h.release), 0)
        or (h.env in several and partly_approved(instance, several[h.env], h))))]  # fmt: skip
    recent = instance.fetch_materializations(APPROVAL_KEY, limit=RECENT_DECISIONS).records
    decisions = [decision_from(r) for r in recent if r.partition_key]
    return sorted(waiting, key=lambda h: h.storage_id, reverse=True), decisions
