"""How long a lease holder has been silent, judged so that another process's clock cannot make a holder that beats
look silent.

A beat is stamped with its writer's clock and judged on the reader's. A writer whose clock is behind the reader's
(another host of the team's instance, a clock stepped back, a process under faketime) looked silent while it beat
every two seconds: the next deploy reclaimed its lease mid-switch, and the two switched the env at once. So the
age of a beat on this host's clock counts only once this process has itself read that same beat for a while (a
step at work writes a new one every HEARTBEAT_S); until then, the silence is what this process has watched.
A holder that is gone is still reclaimed: after the watch when its beat is old, after the reclaim time of watching
when its clock is ahead.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from coderemote_pipeline.rules.settings import lease_reclaim_s

if TYPE_CHECKING:
    from coderemote_pipeline.ledger.lease_beat import Holder

# Longer than any pause between two steps of one run (the multiprocess executor starts a process per step);
# CODEREMOTE_LEASE_RECLAIM_S sets another, read when a waiter decides (tests use a few seconds).
RECLAIM_AFTER_S = 30.0
_FORGET_AFTER_S = 3600.0
# (pool, run, step) → (the holder's beat as this process last read it, when it first read that beat: monotonic)
_SEEN: dict[tuple[str, str, str], tuple[float | None, float]] = {}


def reclaim_after_s() -> float:
    set_to = lease_reclaim_s(os.environ)  # read when a waiter decides: tests change it between two waits
    return RECLAIM_AFTER_S if set_to is None else set_to


def watched(key: str, holder: Holder) -> float:
    """How long this process has read the same beat of `holder` (0 at the first read of a beat)."""
    now, work = time.monotonic(), (key, holder.run_id, holder.step)
    seen = _SEEN.get(work)
    if seen is not None and seen[0] == holder.beat:
        return now - seen[1]
    if len(_SEEN) > 1000:  # a long-lived process (the daemon's sensors) forgets holders it stopped reading
        for old in [w for w, (_, since) in _SEEN.items() if now - since > _FORGET_AFTER_S]:
            del _SEEN[old]
    _SEEN[work] = (holder.beat, now)
    return 0.0


def silence(key: str, holder: Holder, watch_s: float) -> float:
    """The holder's silence: its beat's age on this clock, once this process has read that same beat for `watch_s`
    (a step at work beats more often than that); before, how long it has read it."""
    seen = watched(key, holder)
    if seen < watch_s:
        return seen
    return max(time.time() - holder.beat if holder.beat is not None else 0.0, seen)


def aged(holder: Holder) -> float:
    """The age of the holder's beat on this clock alone: what a one-off look, watching nothing, goes by."""
    return time.time() - holder.beat if holder.beat is not None else 0.0
