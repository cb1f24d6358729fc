"""Release approvals, durable in the Dagster instance: who decided what about which release, and when.

A decision is a materialization of the `release_approval` asset for the partition ENV|RELEASE (metadata: decision,
by, reason, commit), so the asset's page in the UI lists every decision with its time and run. A release held by a
sensor until someone decides is an observation of the same partition with status `pending`. Everything here only
reads the event log; the asset that writes decisions is `assets/approval.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from coderemote_pipeline.rules.environments import Approval, EnvironmentPolicy, policy_for
from coderemote_pipeline.rules.partitions import deployment_key, parse_deployment_key
from coderemote_pipeline.rules.release_keys import Release

APPROVAL_ASSET = "release_approval"
APPROVAL_KEY = dg.AssetKey(APPROVAL_ASSET)
PENDING = "pending"
APPROVE, REJECT = "approve", "reject"
# How far back the `approvals` listing looks, per event type; older decisions stay in the UI.
BOARD_SCAN = 500


class ApprovalError(ValueError):
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
    """A release a sensor saw and is holding until someone approves or rejects it."""

    env: str
    release: str
    commit: str
    trigger: str
    timestamp: float
    storage_id: int


def approve_command(env: str, release: str) -> str:
    return f"coderemote-pipeline approve {env} {release} --by NAME"


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


def _decision(record: dg.EventLogRecord) -> Decision:
    assert record.asset_materialization is not None and record.partition_key is not None
    env, release = parse_deployment_key(record.partition_key)
    meta = _values(record.asset_materialization)
    return Decision(
        env=env,
        release=release.key,
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
    if meta.get("status") != PENDING:
        return None
    env, release = parse_deployment_key(record.partition_key)
    return Hold(
        env=env,
        release=release.key,
        commit=str(meta.get("commit", "")),
        trigger=str(meta.get("trigger", "")),
        timestamp=record.timestamp,
        storage_id=record.storage_id,
    )


def latest_decision(instance: dg.DagsterInstance, env: str, release: str) -> Decision | None:
    """The last approve/reject for ENV|RELEASE: one indexed event-log query (stages call it on every run)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[str(deployment_key(env, release))]), limit=1
    ).records
    return _decision(records[0]) if records else None


def latest_hold(instance: dg.DagsterInstance, env: str, release: str) -> Hold | None:
    """The latest time a sensor held ENV|RELEASE for approval (answered or not), if ever."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, asset_partitions=[str(deployment_key(env, release))]), limit=1
    ).records
    return _hold(records[0]) if records else None


def approval_refusal(
    instance: dg.DagsterInstance,
    env: str,
    release: str,
    commit: str | None = None,
    policy: EnvironmentPolicy | None = None,
) -> str | None:
    """Why ENV|RELEASE may not deploy yet for lack of approval, or None (env needs none, or it is approved)."""
    policy = policy or policy_for(env)
    if not policy.approval_required:
        return None
    how = (
        f"An engineer approves it with `{approve_command(env, release)}` (or, in the Dagster UI, materializes "
        f"{APPROVAL_ASSET} for {env}|{release} with config by: NAME, decision: approve)"
    )
    decided = latest_decision(instance, env, release)
    if decided is None:
        return f"{env} requires approval and {env}|{release} has not been approved. {how}"
    if not decided.approved:
        why = f" ({decided.reason})" if decided.reason else ""
        return f"{env}|{release} was rejected by {decided.by}{why}. To deploy it after all: {how}"
    if commit and decided.commit and commit != decided.commit:
        return (
            f"{env}|{release} was approved by {decided.by} at commit {decided.commit[:12]}, but this deploy is commit "
            f"{commit[:12]} (the tag moved). Review the new commit, then: {how}"
        )
    return None


def decisions_after(instance: dg.DagsterInstance, storage_id: int, limit: int = 100) -> list[Decision]:
    """Decisions recorded after `storage_id`, oldest first (the approved-release sensor's cursor)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=APPROVAL_KEY, after_storage_id=storage_id), limit=limit, ascending=True
    ).records
    return [_decision(r) for r in records if r.partition_key]


def approval_board(instance: dg.DagsterInstance) -> list[Hold | Decision]:
    """The latest hold or decision of every partition that has one, newest first."""
    latest: dict[str, Hold | Decision] = {}
    observations = instance.fetch_observations(APPROVAL_KEY, limit=BOARD_SCAN).records
    materializations = instance.fetch_materializations(APPROVAL_KEY, limit=BOARD_SCAN).records
    entries = [_hold(r) for r in observations] + [_decision(r) for r in materializations if r.partition_key]
    for entry in entries:
        if entry is None:
            continue
        key = f"{entry.env}|{entry.release}"
        if key not in latest or latest[key].storage_id < entry.storage_id:
            latest[key] = entry
    return sorted(latest.values(), key=lambda e: e.storage_id, reverse=True)
