"""A year of deploys in a Dagster instance, in seconds: the history the ledger's tests and bench ask questions of.

Every deploy is a real run record (the run-tag queries read those) and the events its stages write: the stage
materializations with their typed records, the live record, approvals. Writing 10,000 events through the instance
API takes minutes here (each event is a separate SQL compile and commit), so `Seeder.flush` inserts the very rows
Dagster's own `store_event` would write — built by the storage's own row function — into the cross-run index in
one transaction. Test and bench code only: it leans on Dagster's storage schema, the package never does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
from dagster._core.events import AssetObservationData, DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from sqlalchemy import func, select

from coderemote_pipeline.ledger.records import (
    BundleRecord,
    ImageRecord,
    LiveRecord,
    Record,
    ShiftRecord,
    SmokeRecord,
    StackRecord,
    VersionRecord,
)
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import env_tags, partition_key
from coderemote_pipeline.rules.stack_outputs import ALL_KEYS

DATA_VERSION_TAG = "dagster/data_version"
INDEXED = ("dagster/partition/", DATA_VERSION_TAG)


def outputs_of(env: str) -> dict[str, str]:
    return {key: f"{env}-{key}" for key in ALL_KEYS}


@dataclass
class Seeder:
    instance: dg.DagsterInstance
    _pending: list[EventLogEntry] = field(default_factory=list)
    _runs: list[tuple[dg.DagsterRun, float]] = field(default_factory=list)
    _releases: set[str] = field(default_factory=set)
    clock: float = field(default_factory=lambda: time.time() - 3600)
    events: int = 0

    def _tick(self) -> float:
        self.clock += 0.01
        return self.clock

    def _entry(self, run_id: str, event: dg.AssetMaterialization | dg.AssetObservation) -> None:
        if isinstance(event, dg.AssetMaterialization):
            kind, data = DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(event)
        else:
            kind, data = DagsterEventType.ASSET_OBSERVATION, AssetObservationData(event)
        dagster_event = DagsterEvent(event_type_value=kind.value, job_name=names.DEPLOY_JOB, event_specific_data=data)
        self._pending.append(EventLogEntry(error_info=None, level=20, user_message="", run_id=run_id,
                                           timestamp=self._tick(), dagster_event=dagster_event))  # fmt: skip
        self.events += 1

    def record(self, run_id: str, env: str, release: str, record: Record, data_version: str | None = None) -> None:
        per_env = isinstance(record, LiveRecord)  # partitioned by env alone: no multi-partition tags
        tags = ({} if per_env else env_tags(env, release)) | ({DATA_VERSION_TAG: data_version} if data_version else {})
        partition = env if per_env else partition_key(env, release)
        self._entry(run_id, dg.AssetMaterialization(record.key(), partition=partition,
                                                    metadata=record.to_metadata(), tags=tags))  # fmt: skip

    def deploy(
        self, env: str, release: str, commit: str, *, passed: bool = True, trigger: str = "cli", live: bool = True
    ) -> str:
        """One deploy run of ENV|RELEASE and what its stages record; returns the run id."""
        deploy = Deployment.of(env, release, load_policies(), commit)
        status = dg.DagsterRunStatus.SUCCESS if passed else dg.DagsterRunStatus.FAILURE
        tags = {**deploy.tags(trigger), names.COMMIT_TIME_TAG: f"{self.clock - 600:.0f}"}
        run = dg.DagsterRun(job_name=names.DEPLOY_JOB, run_id=str(uuid.uuid4()), tags=tags, status=status)
        self._runs.append((run, self._tick()))
        self._releases.add(release)
        digest = f"sha256:{commit[:8]:0<64}"
        self.record(run.run_id, env, release, StackRecord(stack_outputs=outputs_of(env)))
        self.record(run.run_id, env, release, ImageRecord("built", f"repo@{digest}", digest, f"code-remote-{env}-api",
                                                          "uri", 1, commit), digest)  # fmt: skip
        self.record(run.run_id, env, release, VersionRecord("fn", 2, "live", digest, release, commit))
        self.record(run.run_id, env, release, BundleRecord("built", "runtime_config", "k", commit[:12], "i",
                                                           release, commit, "bucket"), commit[:12])  # fmt: skip
        self.record(run.run_id, env, release, ShiftRecord("all_at_once", 2, 1, "", "", release, True))
        self.record(run.run_id, env, release, SmokeRecord(passed, release, commit),
                    SmokeRecord.data_version(passed, commit).value)  # fmt: skip
        if passed and live:
            self.record(run.run_id, env, release, LiveRecord(release, commit, 2, digest, release,
                                                             f"deployed {release}", run.run_id, self.clock,
                                                             outputs_of(env)))  # fmt: skip
        return run.run_id

    def hold(self, env: str, release: str, commit: str, **metadata) -> None:
        self._entry("", dg.AssetObservation(names.key(names.RELEASE_APPROVAL), partition=partition_key(env, release),
                                            metadata={"status": "pending", "commit": commit, "trigger": "stable_tag",
                                                      **metadata}))  # fmt: skip

    def decide(self, env: str, release: str, commit: str, decision: str = "approve", by: str = "alice") -> None:
        self._entry("", dg.AssetMaterialization(names.key(names.RELEASE_APPROVAL),
                                                partition=partition_key(env, release),
                                                metadata={"decision": decision, "by": by, "reason": "",
                                                          "commit": commit}))  # fmt: skip

    def _flush_runs(self) -> None:
        """Insert the pending runs as the run storage's add_run would, with their start and end times."""
        runs = self.instance.run_storage
        rows, tags = [], []
        for run, at in self._runs:
            row = runs._get_run_insertion_values(run, datetime.fromtimestamp(at, UTC))
            rows.append({**row, "start_time": at, "end_time": at + 1.0,
                         "update_timestamp": datetime.fromtimestamp(at + 1.0, UTC)})  # fmt: skip
            tags += [{"run_id": run.run_id, "key": k, "value": v} for k, v in run.tags_for_storage().items()]
        if rows:
            with runs.connect() as conn:
                conn.execute(RunsTable.insert(), rows)
                conn.execute(RunTagsTable.insert(), tags)
        self._runs.clear()

    def flush(self) -> None:
        """Insert the pending events as Dagster's store_event would, in one transaction of the cross-run index."""
        self._flush_runs()
        if self._releases:
            self.instance.add_dynamic_partitions("release", sorted(self._releases))  # one call for all
            self._releases.clear()
        storage = self.instance.event_log_storage
        rows = [storage._event_to_row(entry) for entry in self._pending]
        with storage.index_connection() as conn:
            first = (conn.execute(select(func.max(SqlEventLogStorageTable.c.id))).scalar() or 0) + 1
            for offset, row in enumerate(rows):
                row["id"] = first + offset
            conn.execute(SqlEventLogStorageTable.insert(), rows)
            tag_rows = [
                {"event_id": row["id"], "asset_key": row["asset_key"], "key": key, "value": value,
                 "event_timestamp": row["timestamp"]}
                for row, entry in zip(rows, self._pending, strict=True)
                for key, value in _tags(entry).items()
                if key.startswith(INDEXED)
            ]  # fmt: skip
            if tag_rows:
                conn.execute(AssetEventTagsTable.insert(), tag_rows)
        self._pending.clear()


def _tags(entry: EventLogEntry) -> dict[str, str]:
    event = entry.get_dagster_event()
    if event.event_type is DagsterEventType.ASSET_MATERIALIZATION:
        return dict(event.step_materialization_data.materialization.tags or {})
    return dict(event.asset_observation_data.asset_observation.tags or {})


A, B, C, D, E = ("a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40)


def seed_scenario(instance: dg.DagsterInstance, *, deploys: int) -> int:
    """Prod with two passed releases (v1.0.0 then v1.1.0, approved), commit C verified in dev, commit D failed
    there, v2.0.0 held for approval; then `deploys` more deploys of dev and staging over as many releases, none of
    which changes an answer about prod. Returns the number of events written."""
    seed = Seeder(instance)
    seed.deploy("dev", "main-aaaaaaa", A)
    seed.deploy("prod", "v1.0.0", A)
    seed.hold("prod", "v1.1.0", B)
    seed.decide("prod", "v1.1.0", B, by="alice")
    seed.deploy("prod", "v1.1.0", B)
    seed.deploy("dev", "main-ccccccc", C)
    seed.deploy("dev", "main-ddddddd", D, passed=False)
    seed.hold("prod", "v2.0.0", C)
    seed.deploy("staging", "main-ccccccc", C)
    for i in range(deploys):
        seed.deploy("dev" if i % 4 else "staging", f"main-{i:07x}", f"{i:040x}", passed=i % 9 != 0)
        if len(seed._pending) > 2000:
            seed.flush()
    seed.flush()
    return seed.events


def questions() -> dict[str, Callable[[dg.DagsterInstance], object]]:
    """Every question the pipeline asks of its ledger, about the scenario's prod (and dev for the gate)."""
    from coderemote_pipeline.ledger.approval_board import approval_board
    from coderemote_pipeline.ledger.approvals import latest_decision
    from coderemote_pipeline.ledger.figures import figures
    from coderemote_pipeline.ledger.gate import gate_refusal
    from coderemote_pipeline.ledger.live import env_outputs, recorded_live
    from coderemote_pipeline.ledger.releases import passed, verification
    from coderemote_pipeline.usecases.rollback import rollback_target

    prod = load_policies()["prod"]

    def history(instance):
        deploys, found = figures(instance, "prod")
        counts = {k: found[k] for k in ("deploys", "failed_deploys", "change_failure_rate", "rework_rate")}
        return [(d.release, d.outcome, d.trigger) for d in deploys], counts

    return {
        "rollback_target": lambda i: rollback_target(i, "prod", None)[:2],
        "rollback_to": lambda i: rollback_target(i, "prod", "v1.0.0")[:2],
        "passed_in_prod": lambda i: passed(i, "prod", "v1.1.0").commit,
        "verified_in_dev": lambda i: verification(i, "dev", C).release,
        "gate_verified": lambda i: gate_refusal(i, prod, C),
        "gate_failed_in_dev": lambda i: gate_refusal(i, prod, D).split(" (run ")[0],
        "gate_never_in_dev": lambda i: gate_refusal(i, prod, E),
        "stack_outputs": lambda i: env_outputs(i, "prod"),
        "approvals": lambda i: ([h.release for h in approval_board(i)[0]], latest_decision(i, "prod", "v1.1.0").by),
        "history_and_figures": history,
        "live_record": lambda i: recorded_live(i, "prod").release,
    }
