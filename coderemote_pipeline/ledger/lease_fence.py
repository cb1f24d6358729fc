"""The fence in front of every write that changes what users get: the writer still holds the environment's lease.

A step that holds the lease and then stops answering for longer than the reclaim time (its host paused, a VM
frozen, a laptop closed) cannot be told from a dead one by another host: the next deploy reclaims the lease,
marks the run failed and switches. Resumed, the frozen step would go on with its own switch beside that deploy's.
Its heartbeat thread resumes with it, so the step itself asks the storage, right before each write of the switch
(the alias, the runtime's weights, the site's pointer, the edge, retiring containers): one indexed read.

What is left is the moment between this read and the write it guards (milliseconds, against a freeze longer than
the reclaim time). Only the target itself could close that (a conditional write: Lambda's `RevisionId` on
UpdateAlias, S3's `If-Match`), which the emulator does not implement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg
import sqlalchemy.exc

from coderemote_pipeline.ledger.instance_problems import storage_problem
from coderemote_pipeline.ledger.lease_beat import ALIVE_S, HEARTBEAT_S, LeaseLost
from coderemote_pipeline.ledger.lease_slot import STEP, Slot
from coderemote_pipeline.ledger.leases import pool

BLIP_S = ALIVE_S - 2 * HEARTBEAT_S


def fence(instance: dg.DagsterInstance, env: str, run_id: str, step: str = STEP) -> Callable[[], None]:
    """A check that raises LeaseLost once `run_id`'s `step` no longer holds `env`'s lease. Made right after the step
    took it. While the storage does not answer, the lease counts as held for BLIP_S since the step last saw it held, so
    that a switch (or its put-back) is not left half-done by a blip of the database: a waiter on another host that
    judges the step's beats on its own clock (no offset measured yet) can take it over ALIVE_S after the step's last
    beat, which came at most HEARTBEAT_S before that sighting."""
    slot, confirmed = Slot(instance.event_log_storage, pool(env)), [time.monotonic()]

    def check() -> None:
        try:
            slot.take_back(instance, run_id, step)  # freed from outside while this step works: its beat's rule
            held = slot.holder()
        except Exception as exc:
            if not isinstance(exc, sqlalchemy.exc.DBAPIError) and storage_problem(exc) is None:
                raise
            unseen = time.monotonic() - confirmed[0]  # the storage does not answer (a full disk, Postgres restarting)
            if unseen < BLIP_S:
                return
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise LeaseLost(f"run {run_id[:8]} cannot tell whether it still holds {env}'s deploy lease: the "
                            f"instance's storage has not answered for {unseen:.0f} s ({first}), long enough for "
                            "another deploy to have taken it over; it changed nothing more") from exc  # fmt: skip
        if held != (run_id, step):
            raise LeaseLost(_lost(env, run_id, held))
        confirmed[0] = time.monotonic()

    return check


def _lost(env: str, run_id: str, held: tuple[str, str] | None) -> str:
    now = f"run {held[0][:8]} holds it now" if held is not None else "nobody holds it now"
    return (f"run {run_id[:8]} no longer holds {env}'s deploy lease ({now}: it was silent longer than the reclaim "
            f"time, its host paused or frozen): it changed nothing more, and put nothing back; `coderemote-pipeline "
            f"status {env}` shows what {env} serves")  # fmt: skip
