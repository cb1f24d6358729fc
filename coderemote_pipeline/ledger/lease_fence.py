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

from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.lease_slot import STEP, Slot
from coderemote_pipeline.ledger.leases import TERMINAL, pool


def fence(instance: dg.DagsterInstance, env: str, run_id: str, step: str = STEP) -> Callable[[], None]:
    """A check that raises LeaseLost once `run_id`'s `step` no longer holds `env`'s lease."""
    slot = Slot(instance.event_log_storage, pool(env))

    def check() -> None:
        held = slot.holder()
        if held == (run_id, step):
            return
        if held is None:
            # Freed from outside while this step works (a run deleted from the UI): the heartbeat would take it back
            # within seconds; a write now takes it back first. A run marked ended has lost it for good.
            run = instance.get_run_by_id(run_id)
            if (run is None or run.status not in TERMINAL) and slot.claim(run_id, step):
                return
            held = slot.holder()
        raise LeaseLost(_lost(env, run_id, held))

    return check


def _lost(env: str, run_id: str, held: tuple[str, str] | None) -> str:
    now = f"run {held[0][:8]} holds it now" if held is not None else "nobody holds it now"
    return (f"run {run_id[:8]} no longer holds {env}'s deploy lease ({now}: it was silent longer than the reclaim "
            f"time, its host paused or frozen): it changed nothing more, and put nothing back; `coderemote-pipeline "
            f"status {env}` shows what {env} serves")  # fmt: skip
