"""The latest record of a stage for one deployment, and where else a commit's artifacts were deployed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import dagster as dg

from coderemote_pipeline.ledger.records import Record
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.partitions import split_partition_key

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Found(Generic[R]):
    record: R
    run_id: str
    timestamp: float
    storage_id: int
    partition: str


def _found(kind: type[R], event: dg.EventLogRecord) -> Found[R] | None:
    mat = event.asset_materialization
    if mat is None:
        return None
    return Found(kind.from_metadata(mat.metadata), event.run_id, event.timestamp, event.storage_id,
                 str(event.partition_key or ""))  # fmt: skip


def latest(instance: dg.DagsterInstance, kind: type[R], partition: str) -> Found[R] | None:
    """The latest materialization of `kind`'s asset for one partition: one indexed query."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=kind.key(), asset_partitions=[partition]), limit=1
    ).records
    return _found(kind, records[0]) if records else None


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict | None:
    """Plain metadata values of an asset's latest materialization for one partition (assets without a record)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=names.key(asset), asset_partitions=[partition]), limit=1
    ).records
    mat = records[0].asset_materialization if records else None
    return {k: v.value for k, v in mat.metadata.items()} if mat else None


def history(instance: dg.DagsterInstance, kind: type[R], partition: str, *, page: int = 50):
    """Every materialization of `kind` for one partition, newest first, fetched a page at a time."""
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=kind.key(), asset_partitions=[partition]), limit=page, cursor=cursor
        )
        for event in result.records:
            found = _found(kind, event)
            if found is not None:
                yield found
        if not result.has_more:
            return
        cursor = result.cursor


def in_run(instance: dg.DagsterInstance, kind: type[R], run: dg.DagsterRun) -> Found[R] | None:
    """The record `run` wrote for its own partition, if it got that far."""
    partition = run.tags.get(names.PARTITION_TAG, "")
    found = latest(instance, kind, partition) if partition else None
    if found is not None and found.run_id == run.run_id:
        return found
    for event in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        mat = event.event_log_entry.asset_materialization
        if mat is not None and mat.asset_key == kind.key():
            return Found(kind.from_metadata(mat.metadata), run.run_id, event.event_log_entry.timestamp,
                         event.storage_id, str(mat.partition or ""))  # fmt: skip
    return None


def successful_runs_of_commit(instance: dg.DagsterInstance, commit: str, *, limit: int = 20) -> list[dg.DagsterRun]:
    """Deploy runs of `commit` (any environment) that succeeded, newest first: an indexed run-tag query."""
    return list(
        instance.get_runs(
            dg.RunsFilter(tags={names.COMMIT_TAG: commit}, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=limit
        )
    )


def deployed_elsewhere(
    instance: dg.DagsterInstance, kind: type[R], commit: str, env: str, same: str, value: str
) -> tuple[str, str] | None:
    """(env, run id) of the newest successful deploy of `commit` in another env whose `kind` record has
    `same` == `value`: where the very bytes were deployed before ("promoted from dev (run 1a2b3c4d)")."""
    for run in successful_runs_of_commit(instance, commit):
        other = run.tags.get(names.ENV_TAG, "")
        if not other or other == env:
            continue
        found = in_run(instance, kind, run)
        if found is not None and getattr(found.record, same) == value:
            return other, run.run_id
    return None


def env_of(partition: str) -> str:
    return split_partition_key(partition)[0]
