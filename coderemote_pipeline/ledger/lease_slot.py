"""The row behind an environment's deploy lease: the one slot of its Dagster concurrency pool.

Each change is one conditional UPDATE, atomic in SQLite and Postgres alike, so two processes or machines sharing
the instance never both hold it. What the holder does with it (heartbeats, reclaiming a silent holder) is
ledger/leases.py. Who holds it, in words: describe_run.
"""

from __future__ import annotations

import time
import uuid

import dagster as dg
import sqlalchemy.exc
from sqlalchemy import text

from coderemote_pipeline.rules import names

STEP = "deploy"
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# Held by a process settling an ended run (actions/failure_report.py) under that run's id: no deploy of the env
# starts while it reads and restores what the env serves. Each settle adds its own token (settle_step): two settles
# of one run never share a (run, step) pair, so freeing a dead one cannot free the one that replaced it.
SETTLE = "settle"
POOL_TRIES = 5
POOL_RETRY_S = 0.5
# Pools this process has seen exist, per storage: every step of a run takes the lease, and asking the storage for
# its pools each time was a query per step for a row that is created once. A pool removed meanwhile is created
# again when a claim finds no row (Lease.acquire).
_KNOWN_POOLS: set[tuple[int, str]] = set()


def settle_step() -> str:
    return f"{SETTLE}:{uuid.uuid4().hex[:12]}"


def is_settle(step: str) -> bool:
    return step == SETTLE or step.startswith(f"{SETTLE}:")


class Slot:
    """The single slot of the concurrency pool `key`, in one event log storage."""

    def __init__(self, storage, key: str):
        self._storage, self.key = storage, key

    def ensure(self, *, again: bool = False) -> None:
        """Create the pool with its one slot unless this process knows it exists (`again`: look anyway)."""
        known = (id(self._storage), self.key)
        if known in _KNOWN_POOLS and not again:
            return
        for attempt in range(POOL_TRIES):
            if self.key in self._storage.get_concurrency_keys():
                break
            try:
                self._storage.set_concurrency_slots(self.key, 1)
                break
            except sqlalchemy.exc.DBAPIError:
                # The env's first deploys, started at the same moment, create its pool at once: one writes it, the
                # other is refused (SQLite: locked; Postgres: the key exists) and finds it on the next look.
                if attempt == POOL_TRIES - 1:
                    raise
                time.sleep(POOL_RETRY_S)
        _KNOWN_POOLS.add(known)

    def claim(self, run_id: str, step: str = STEP) -> bool:
        # A settle also takes over the lease its own ended run still holds: a failed run keeps it for Dagster's retry.
        own = " OR (run_id = :run AND COALESCE(step_key, '') = :deploy)" if is_settle(step) else ""
        with self._storage.index_connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE concurrency_slots SET run_id = :run, step_key = :step "
                    f"WHERE concurrency_key = :key AND deleted = :no AND (run_id IS NULL{own})"
                ),
                {"run": run_id, "step": step, "key": self.key, "no": False, "deploy": STEP},
            )
            return result.rowcount == 1

    def free(self, run_id: str, step: str | None = None) -> bool:
        """Free the slot if `run_id` holds it (for `step`, when given: a run's own release never frees the settle
        that holds the slot under its id)."""
        only = " AND step_key = :step" if step is not None else ""
        with self._storage.index_connection() as conn:
            result = conn.execute(
                text("UPDATE concurrency_slots SET run_id = NULL, step_key = NULL "
                     f"WHERE concurrency_key = :key AND run_id = :run{only}"),
                {"run": run_id, "key": self.key, "step": step},
            )  # fmt: skip
            return result.rowcount > 0

    def take_back(self, instance: dg.DagsterInstance, run_id: str, step: str) -> None:
        """A step at work whose slot was freed from outside (its run deleted from the UI) holds it again; not one
        whose run was marked ended (its lease reclaimed while it was frozen: resumed, it must not take it back), nor
        a settle, whose run is ended by definition, unless that run was deleted."""
        if self.holder() is not None:
            return
        run = instance.get_run_by_id(run_id)
        if run is None or (not is_settle(step) and run.status not in TERMINAL):
            self.claim(run_id, step)

    def holder(self) -> tuple[str, str] | None:
        """The holder's run id and what it holds the slot for (STEP, or a settle's step)."""
        with self._storage.index_connection() as conn:
            row = conn.execute(
                text("SELECT run_id, step_key FROM concurrency_slots "
                     "WHERE concurrency_key = :key AND run_id IS NOT NULL"),
                {"key": self.key},
            ).fetchone()  # fmt: skip
        return (str(row[0]), str(row[1] or STEP)) if row is not None else None


def describe_run(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id[:8]}"
    return (
        f"run {run_id[:8]} ({run.tags.get(names.ENV_TAG, '?')}|{run.tags.get(names.RELEASE_TAG, '?')}, "
        f"{run.tags.get(names.TRIGGER_TAG, run.job_name)})"
    )
