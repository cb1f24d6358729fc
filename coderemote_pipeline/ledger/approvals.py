"""Release approvals, durable in the Dagster instance: who decided what about which release, and when.

A decision is a materialization of the `release_approval` asset for the partition ENV|RELEASE (metadata: decision,
by, reason, commit), so the asset's page in the UI lists every decision with its time and run. A release held by a
sensor until someone decides is an observation of the same partition with status `pending`. Everything here only
reads the event log; the asset that writes decisions is `assets/release_approval.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from coderemote_pipeline.ledger.approval_lapse import Lapse, lapse_of, when
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import Approval, EnvironmentPolicy
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.partitions import partition_key, split_partition_key
from coderemote_pipeline.rules.release_keys import Release

APPROVAL_ASSET = names.RELEASE_APPROVAL
APPROVAL_KEY = names.key(names.RELEASE_APPROVAL)
# A hold's life, as observations of its partition: waiting for a decision, approved but waiting for the promotion
# gate, launched. The latest observation after the latest decision says what the release waits for.
PENDING, GATED, LAUNCHED = "pending", "gated", "launched"
APPROVE, REJECT = "approve", "reject"


class ApprovalError(UserError, ValueError):
    """A decision that cannot be recorded (wrong env, unknown release, no name); the message says what to do."""


@dataclass(frozen=True)
class Decision:
    env: str
    release: str
    decision: str
    by: str
    reason: str
    commit: str
    timestamp: float
    storage_id: int
    # The hold this decision answers (its event's storage id), when a sensor was holding the release.
    hold_id: int | None

    @property
    def approved(self) -> bool:
        return self.decision == APPROVE


@dataclass(frozen=True)
class Hold:
    """A release held until someone approves it (status pending), or approved and held by the promotion gate."""

    env: str
    release: str
    commit: str
    trigger: str
    timestamp: float
    storage_id: int
    status: str = PENDING
    # Why it still waits, when the gate holds it (with the command that opens it).
    waiting_for: str = ""
    # `deploy --force --reason` given while the release waited: the deploy carries it once approved.
    override: str = ""
    override_by: str = ""
    hold_id: int | None = None

    @property
    def override_tags(self) -> dict[str, str]:
        return {names.OVERRIDE_TAG: self.override, names.OVERRIDE_BY_TAG: self.override_by} if self.override else {}


def approve_command(env: str, release: str) -> str:
    return f"coderemote-pipeline approve {env} {release}"


def held_run_key(env: str, release: str, hold_id: int) -> str:
    """The run key of the deploy a hold turns into once approved: one hold, at most one deploy, whatever the number
    of approvals (approve twice, or reject then approve, launches it once)."""
    return f"{env}|{release}:hold-{hold_id}"


def decision_refusal(policy: EnvironmentPolicy, release: Release) -> str | None:
    """Why no decision can be recorded for this release in this env, or None."""
    if policy.approval is Approval.NONE:
        return (
            f"{policy.name} needs no approval (approval: none in infra/environments.yaml): "
            f"deploy it with `coderemote-pipeline deploy {policy.name} REF`"
        )
    return policy.refusal(release)


def _values(event: dg.AssetMaterialization | dg.AssetObservation) -> dict[str, Any]:
    return {key: value.value for key, value in event.metadata.items()}


def decision_from(record: dg.EventLogRecord) -> Decision:
    assert record.asset_materialization is not None and record.partition_key is not None
    env, release = split_partition_key(record.partition_key)
    meta = _values(record.asset_materialization)
    return Decision(
        env=env,
        release=release,
        decision=str(meta.get("decision", "")),
        by=str(meta.get("by", "")),
        reason=str(meta.get("reason", "")),
        commit=str(meta.get("commit", "")),
        timestamp=record.timestamp,
        storage_id=record.storage_id,
        hold_id=int(meta["hold_id"]) if meta.get("hold_id") is not None else None,
    )


def _hold(record: dg.EventLogRecord) -> Hold | None:
    if record.asset_observation is None or record.partition_key is None:
        return None
    meta = _values(record.asset_observation)
    env, release = split_partition_key(record.partition_key)
    return Hold(
        env=env,
        release=release,
        commit=str(meta.get("commit", "")),
        trigger=str(meta.get("trigger", "")),
        timestamp=record.timestamp,
        storage_id=record.storage_id,
        status=str(meta.get("status", PENDING)),
        waiting_for=str(meta.get("waiting_for", "")),
        override=str(meta.get("override", "")),
        override_by=str(meta.get("override_by", "")),
        hold_id=int(meta["hold_id"]) if meta.get("hold_id") is not None else None,
    )


def hold_event(env: str, release: str, commit: str, *, status: str, trigger: str, **metadata: object):
    """The observation that records a hold (or what became of it) for ENV|RELEASE."""
    return dg.AssetObservation(
        asset_key=APPROVAL_KEY,
        partition=partition_key(env, release),
        metadata={"status": status, "commit": commit, "trigger": trigger, **metadata},
    )


def latest_decision(instance: dg.DagsterInstance, env: str, release: str) -> Decision | None:
    """The last approve/reject for ENV|RELEASE: one indexed event-log query (stages call it on every run)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[partition_key(env, release)]), limit=1
    ).records
    return decision_from(records[0]) if records else None


def latest_hold(instance: dg.DagsterInstance, env: str, release: str) -> Hold | None:
    """The latest time ENV|RELEASE was held for approval (answered or not), if ever."""
    status = latest_status(instance, env, release)
    if status is None or status.status == PENDING:
        return status
    # A later "gated" or "launched" observation points back at the hold it continues.
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, storage_ids=[status.hold_id or 0]), limit=1
    ).records
    return _hold(records[0]) if records else None


def latest_status(instance: dg.DagsterInstance, env: str, release: str) -> Hold | None:
    """The latest observation of ENV|RELEASE: what its hold waits for now."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[partition_key(env, release)]), limit=1
    ).records
    return _hold(records[0]) if records else None


@dataclass(frozen=True)
class Clearance:
    """Whether ENV|RELEASE may deploy as far as approval goes: why not (None: it may), and whose approvals count."""

    reason: str | None
    approvers: tuple[str, ...] = ()

    def refusal(self, env: str, release: str) -> str | None:
        """The reason with how to approve, or None."""
        if self.reason is None:
            return None
        return (f"{self.reason}. An engineer approves it with `{approve_command(env, release)}` (or, in the Dagster "
                f"UI, materializes {APPROVAL_ASSET} for {env}|{release} with config by: NAME, decision: approve)")


def approval_refusal(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, release: str, commit: str | None = None,
    *, rollback: bool = False, at: float | None = None,
) -> str | None:
    """Why ENV|RELEASE may not deploy yet for lack of approval, or None (env needs none, or it is approved)."""
    return clearance(instance, policy, release, commit, rollback=rollback, at=at).refusal(policy.name, release)


def approval_reason(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, release: str, commit: str | None = None,
    *, rollback: bool = False, at: float | None = None,
) -> str | None:
    """approval_refusal's reason alone, without how to approve; None when nothing is missing."""
    return clearance(instance, policy, release, commit, rollback=rollback, at=at).reason


def clearance(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, release: str, commit: str | None = None,
    *, rollback: bool = False, at: float | None = None,
) -> Clearance:
    """ENV|RELEASE's approval as it stands. `at`: when the deploy started (default: now), which an expiry is
    measured at. A `rollback` puts back a release that served env with its approval: one that expired, or that a
    rollback voided, still stands (a rejection does not)."""
    env = policy.name
    if not policy.approval_required:
        return Clearance(None)
    if rollback and commit:
        return _rollback_clearance(instance, env, release, commit)
    decided = latest_decision(instance, env, release)
    if decided is None:
        return Clearance(f"{env} requires approval and {env}|{release} has not been approved")
    if not decided.approved:
        why = f" ({decided.reason})" if decided.reason else ""
        return Clearance(f"{env}|{release} was rejected by {decided.by}{why}. To deploy it after all, approve it again")
    if commit and decided.commit and commit != decided.commit:
        return Clearance(f"{env}|{release} was approved by {decided.by} at commit {decided.commit[:12]}, but this "
                         f"deploy is commit {commit[:12]} (the tag moved). Review the new commit, then approve it "
                         "again")  # fmt: skip
    approvals = approvals_of(instance, env, release, decided.commit)
    lapse = Lapse() if rollback else lapse_of(instance, policy, release, approvals, time.time() if at is None else at)
    if decided.timestamp <= lapse.cutoff:
        return Clearance(lapse.newest)
    standing = [approval for approval in approvals if approval.timestamp > lapse.cutoff]
    given = list(dict.fromkeys(approval.by for approval in standing))
    if missing := policy.approval_rule.missing(given):
        others = sorted(set(policy.approval_rule.approvers) - set(given))
        who = f" from {', '.join(others)}" if others else ""
        dropped = (f" (those before {when(lapse.cutoff)} no longer count: {lapse.cause})"
                   if len(standing) < len(approvals) else "")  # fmt: skip
        return Clearance(f"{env}|{release} has {len(given)} of the {policy.approval_rule.required} approvals {env} "
                         f"requires ({', '.join(sorted(given))}){dropped}; {missing} more needed{who}")  # fmt: skip
    return Clearance(None, tuple(sorted(given)))


def _rollback_clearance(instance, env: str, release: str, commit: str) -> Clearance:
    """A rollback puts back what served `env` at `commit`, cleared then: neither today's rule (more approvals, other
    approvers), nor an expiry, nor the tag's approval at the commit it was moved to since holds it. Only a rejection
    of that commit does, unless that commit was approved again after it (decisions of other commits do not count)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[partition_key(env, release)]), limit=100
    ).records
    of_it = next((d for d in map(decision_from, records) if d.commit in ("", commit)), None)
    if of_it is not None and not of_it.approved:
        why = f" ({of_it.reason})" if of_it.reason else ""
        return Clearance(f"{env}|{release} at commit {commit[:12]} was rejected by {of_it.by}{why}: roll back to "
                         f"another release (`coderemote-pipeline rollback {env} --to RELEASE`)")  # fmt: skip
    return Clearance(None, tuple(sorted({a.by for a in approvals_of(instance, env, release, commit)})))


def approvals_of(instance: dg.DagsterInstance, env: str, release: str, commit: str) -> list[Decision]:
    """The approvals of ENV|RELEASE at `commit` since its last rejection, newest first (a person's decisions are
    few: the partition's own records, read until that rejection)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[partition_key(env, release)]), limit=100
    ).records
    found: list[Decision] = []
    for decision in (decision_from(r) for r in records):
        if not decision.approved:
            break
        if decision.commit == commit:
            found.append(decision)
    return found


def decisions_after(instance: dg.DagsterInstance, storage_id: int, limit: int = 100) -> list[Decision]:
    """Decisions recorded after `storage_id`, oldest first (the approved-release sensor's cursor)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, after_storage_id=storage_id), limit=limit, ascending=True
    ).records
    return [decision_from(r) for r in records if r.partition_key]


def lapsed(instance: dg.DagsterInstance, policy: EnvironmentPolicy, decision: Decision) -> str:
    """Why an approval no longer stands (it expired, or a rollback fled its release since), or ""."""
    if not decision.approved or not policy.approval_required:
        return ""
    lapse = lapse_of(instance, policy, decision.release, [decision], time.time())
    return lapse.cause if decision.timestamp <= lapse.cutoff else ""
