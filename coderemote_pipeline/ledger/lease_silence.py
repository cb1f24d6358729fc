"""How long a lease holder has been silent, judged so that another process's clock cannot make a holder that beats
look silent.

A beat is stamped with its writer's clock and judged on the reader's. A writer whose clock is behind the reader's
(another host of the team's instance, a clock stepped back, a process under faketime) looked silent while it beat
every two seconds: the next deploy reclaimed its lease mid-switch, and the two switched the env at once. So the
age of a beat on this host's clock counts only once this process has itself read that same beat for a while (a
step at work writes a new one every HEARTBEAT_S); until then, the silence is what this process has watched.
Better still, a waiter that sees a new beat appear knows it is new whatever its stamp says, and counts its age on its
own monotonic clock from there: a holder 45 s behind that pauses 8 s between two steps is 8 s silent, not 53 s, and
no clock step of either host moves that. A holder
that is gone is still reclaimed: after the watch when its beat is old, after the reclaim time of watching when its
clock is ahead.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from coderemote_pipeline.ledger.lease_beat import LeaseBusy
from coderemote_pipeline.rules.settings import lease_reclaim_s

if TYPE_CHECKING:
    from coderemote_pipeline.ledger.lease_beat import Holder

# Longer than any pause between two steps of one run (the multiprocess executor starts a process per step);
# CODEREMOTE_LEASE_RECLAIM_S sets another, read when a waiter decides (tests use a few seconds).
RECLAIM_AFTER_S = 30.0
_FORGET_AFTER_S = 3600.0
# (pool, run, step) → the holder's beat as this process last read it; when it first read that beat (monotonic); the
# beat's age then, on the writer's clock (None: its offset never measured, no beat of it seen appear)
_SEEN: dict[tuple[str, str, str], tuple[float | None, float, float | None]] = {}


def reclaim_after_s() -> float:
    set_to = lease_reclaim_s(os.environ)  # read when a waiter decides: tests change it between two waits
    return RECLAIM_AFTER_S if set_to is None else set_to


def _watch(key: str, holder: Holder) -> tuple[float, float | None]:
    """How long this process has read the same beat of `holder` (0 at the first read of a beat), and how old that
    beat was when first read, on the writer's clock (None: not measured)."""
    now, work = time.monotonic(), (key, holder.run_id, holder.step)
    seen = _SEEN.get(work)
    if seen is not None and seen[0] == holder.beat:
        return now - seen[1], seen[2]
    if len(_SEEN) > 1000:  # a long-lived process (the daemon's sensors) forgets holders it stopped reading
        for old in [w for w, (_, since, _) in _SEEN.items() if now - since > _FORGET_AFTER_S]:
            del _SEEN[old]
    # A beat that replaced one this process read was written since that read: as far as this process can tell, it is
    # new (its writer's clock against this one). Short of its true age is the safe side; and from here on its age
    # grows on this process's monotonic clock, which no clock step of either host moves.
    new = 0.0 if seen is not None and holder.beat is not None else None
    _SEEN[work] = (holder.beat, now, new)
    return 0.0, new


def silence(key: str, holder: Holder, watch_s: float) -> float:
    """The holder's silence. A beat seen appear: how long this process has read it since. Else its beat's age on
    this clock, once this process has read that same beat for `watch_s` (a step at work beats more often than that);
    before, how long it has read it."""
    seen, at_first = _watch(key, holder)
    if at_first is not None:
        return at_first + seen
    if seen < watch_s:
        return seen
    return max(aged(holder), seen)


def age(key: str, holder: Holder) -> float:
    """How long ago the holder beat last, as well as this process can tell (for messages)."""
    seen, at_first = _watch(key, holder)
    return seen if at_first is not None else max(0.0, aged(holder))


def aged(holder: Holder) -> float:
    """The age of the holder's beat on this clock alone: what a one-off look, watching nothing, goes by."""
    return time.time() - holder.beat if holder.beat is not None else 0.0


def pause(holder: Holder, deadline: float | None, poll_s: float) -> None:
    """One poll's wait for a holder that is not silent; LeaseBusy once past the deadline."""
    if deadline is not None and time.monotonic() >= deadline:
        raise LeaseBusy(holder)
    time.sleep(poll_s)
