"""One deploy per environment, on every path: a lease in the instance's own storage that every stage takes.

The lease is the single slot of the Dagster concurrency pool `coderemote/deploy/<env>` (the UI's Concurrency page
shows it and the run holding it). Every stage step of a deploy run holds it while it works, so whatever launched
the run — the CLI in its own process, the daemon for a sensor or the UI, the team's run queue — two runs of one
environment never work at the same time: the second one's first step waits, saying for which run, and goes on when
that run ends. Different environments have different pools and deploy side by side.

Taking the slot is one conditional UPDATE (`... WHERE run_id IS NULL`), atomic in SQLite and Postgres alike, so
it is safe across processes and machines sharing the instance. The holder writes a heartbeat every few seconds
while a step runs (ledger/lease_beat.py); a holder whose run ended (and whose step is not still at work: a run can
be marked ended from outside), or whose heartbeat is older than the reclaim time (its process was killed), is
reclaimed by the next run that waits, and the message says so. A slot freed from outside while its step works (a
run deleted from the UI) is not free: the claim that finds another step's fresh working beat gives it back.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator

import dagster as dg

from coderemote_pipeline.ledger.deferred_signals import entered_whole, signals_deferred
from coderemote_pipeline.ledger.lease_beat import ALIVE_S, HEARTBEAT_S, Heart, Holder, LeaseBusy, LeaseLost, at_work
from coderemote_pipeline.ledger.lease_silence import age, aged, pause, reclaim_after_s, silence
from coderemote_pipeline.ledger.lease_slot import STEP, TERMINAL, Slot, is_settle, settle_step
from coderemote_pipeline.ledger.process_place import process_gone

__all__ = ["ALIVE_S", "HEARTBEAT_S", "Holder", "Lease", "LeaseBusy", "LeaseLost", "pool", "reclaim_after_s"]
POLL_S = 0.5
REMIND_S = 30.0
LEASE_TAKEN = "took the deploy lease of"
LEASE_RELEASED = "released the deploy lease of"


def pool(env: str) -> str:
    return f"coderemote/deploy/{env}"


class Lease:
    """The lease of one environment's deploys, in one instance."""

    def __init__(self, instance: dg.DagsterInstance, env: str):
        self.instance, self.env, self.key = instance, env, pool(env)
        self._slot = Slot(instance.event_log_storage, self.key)
        self.heart = Heart(instance, env)

    def holder(self) -> Holder | None:
        held = self._slot.holder()
        if held is None:
            return None
        # A beat is the holder's own only for what it holds the lease for: a settle under an ended run's id must
        # not be judged by that run's last beat, minutes old.
        beat = self.heart.read(held)
        if beat is None:
            return Holder(held[0], None, "", held[1])
        pid, host = beat.worker()
        return Holder(held[0], beat.at, host, held[1], beat.at_work(), pid, beat.alive_here())

    def _silent_for(self, holder: Holder) -> float | None:
        """How long the holder has not heartbeaten, when longer than the reclaim time (its process is gone). Never
        for a holder whose process still runs on this host: stopped and resumed, it would switch beside the next.
        Judged on no other clock (ledger/lease_silence.py): a beat old on this clock is watched for ALIVE_S first,
        unless this process has watched it already (a waiter's polls), then taken at its age."""
        if holder.alive:
            return None
        reclaim, until = reclaim_after_s(), time.monotonic() + ALIVE_S + POLL_S
        silent = silence(self.key, holder, ALIVE_S)
        while silent <= reclaim and aged(holder) > reclaim and time.monotonic() < until:
            time.sleep(POLL_S)
            if not holder.same_beat(self.holder()):
                return None  # it beat meanwhile (its clock is behind this one), or let go
            silent = silence(self.key, holder, ALIVE_S)
        return silent if silent > reclaim else None

    def _held_by(self, run_id: str) -> Holder | None:
        holder = self.holder()
        return holder if holder is not None and (holder.run_id, holder.step) == (run_id, STEP) and holder.beat else None

    def abandoned_by(self, run_id: str) -> str | None:
        """Why `run_id` counts as gone (it holds the lease and stopped heartbeating: its process was killed), or
        None. Its lease goes to the next deploy that waits for it, which marks it failed."""
        holder = self._held_by(run_id)
        if holder is None or (silent := self._silent_for(holder)) is None:
            return None
        return f"run {run_id[:8]} holds {self.env}'s deploy lease but stopped heartbeating {silent:.0f} s ago"

    def working(self, run_id: str) -> str | None:
        """How `run_id` shows it may be alive (it holds the lease and heartbeats), or None: a run not to mark failed."""
        holder = self._held_by(run_id)
        if holder is None or self._silent_for(holder) is not None:
            return None
        silent = age(self.key, holder)
        left, pid = max(0.0, reclaim_after_s() - silent), f" (pid {holder.pid})" if holder.pid else ""
        if holder.alive and left <= 0:
            return (f"it holds {self.env}'s deploy lease, its process{pid} alive on this host but silent for "
                    f"{silent:.0f} s (stopped?): resume it (kill -CONT) or end it (kill), then retry")  # fmt: skip
        return (f"it holds {self.env}'s deploy lease, its last heartbeat {silent:.0f} s ago on {holder.where}{pid}. If "
                f"its process is gone, retry in {left:.0f} s, when the lease counts as abandoned")  # fmt: skip

    def _stale(self, holder: Holder) -> str | None:
        """Why the holder has lost its claim (its run ended, or its process went silent), or None."""
        if is_settle(holder.step):  # its run ended by definition: only silence tells its settle is gone
            silent = self._silent_for(holder)
            return None if silent is None else f"the settle of run {holder.run_id[:8]} went silent {silent:.0f} s ago"
        run = self.instance.get_run_by_id(holder.run_id)
        if run is None or run.status in TERMINAL:
            if at_work(holder) or holder.alive:
                return None  # marked ended from outside (a forced terminate, a deleted run): two would deploy
            status = run.status.value.lower() if run else "gone"
            return f"run {holder.run_id[:8]} ({status}) still held {self.env}'s lease"
        if (silent := self._silent_for(holder)) is not None:
            return f"run {holder.run_id[:8]} stopped heartbeating {silent:.0f} s ago (its process is gone)"
        # Its process is known gone (this host): silence twice as long as a step at work ever keeps tells no step it
        # started (a process-per-step worker outlives its parent) still works; a stalled beat thread is not enough.
        if holder.beat is not None and (silent := silence(self.key, holder, ALIVE_S)) > 2 * ALIVE_S and (
            gone := process_gone(run)
        ):
            return f"{gone}, and nothing has heartbeaten for it for {silent:.0f} s"
        return None

    def acquire(
        self, run_id: str, log: Callable[[str], None], describe: Callable[[str], str], note=lambda _: None
    ) -> None:
        """Return once `run_id` holds the lease; meanwhile `log` says for which run it waits. `note` gets the
        moment the lease is taken (the start of this run's work on the environment, as the event log shows it)."""
        self._slot.ensure()
        waited_since, reminded = None, 0.0
        while True:
            if self._slot.claim(run_id):
                if (holder := self._go_on(run_id, claimed=True)) is None:
                    note(f"{LEASE_TAKEN} {self.env}")
                    if waited_since is not None:
                        log(f"{self.env} is free: going on after waiting {time.monotonic() - waited_since:.1f} s")
                    return
            elif (holder := self.holder()) is None:
                self._slot.ensure(again=True)  # freed between the queries, or the pool was removed: claim again
                continue
            elif (holder.run_id, holder.step) == (run_id, STEP):  # an earlier step of this run took it: the usual
                if (holder := self._go_on(run_id, claimed=False)) is None:  # case, or a sibling's momentary claim
                    return
            elif self._reclaimed(holder, log):
                continue
            if self._ended(run_id):
                raise self._lost(run_id)
            now = time.monotonic()
            if waited_since is None or now - reminded > REMIND_S:
                log(f"waiting for {holder.describe(describe)} to finish: one deploy of {self.env} at a time")
                waited_since, reminded = waited_since or now, now
            time.sleep(POLL_S)

    def _go_on(self, run_id: str, *, claimed: bool) -> Holder | None:
        """A step of `run_id`, its run holding the slot (`claimed` by it just now, or by an earlier step): None, it
        goes on. LeaseLost if its run was ended or deleted meanwhile (a run deleted from the UI keeps its slot while
        a step works; its next one must not deploy). Or the step of another run still at work, to wait for: a claim
        is given back to it, and a slot of this run may be a parallel sibling's claim about to be given back.
        It says it is at work before it judges: a settle of this run taking the slot over meanwhile finds it."""
        self.heart.write(run_id)
        if self._ended(run_id):
            if self.heart.sibling_at_work(run_id, STEP):  # the slot is that step's until it ends
                self.heart.workers.unmark((run_id, STEP))
            else:
                self._let_go(run_id, STEP)
            raise self._lost(run_id)
        if claimed:
            working = self._given_back(run_id, STEP)
        else:
            working = Holder.beating(beat) if (beat := self.heart.elsewhere(run_id, STEP)) else None
        if working is not None:
            self.heart.workers.unmark((run_id, STEP))
        return working

    def _reclaimed(self, holder: Holder, log: Callable[[str], None]) -> bool:
        """Free the lease of a holder that lost its claim (True: claim again); else False, and a holder that never
        wrote a heartbeat gets one on our clock: silent that long, it is gone."""
        stale = self._stale(holder)
        if stale is None:
            if holder.beat is None:
                self.heart.give(holder.run_id, holder.step)
            return False
        if self._slot.free(holder.run_id, holder.step):
            self._fail_if_running(holder.run_id, stale)
            log(f"reclaimed {self.env}'s deploy lease: {stale}")
        return True

    def reap(self, run_id: str, why: str) -> bool:
        """Free the lease `run_id` holds, if it does, and mark the run failed (`why`: its process is gone): a
        deploy queued behind it would wait forever. True if it was still running."""
        self._slot.free(run_id, STEP)
        return self._fail_if_running(run_id, why)

    def _lost(self, run_id: str) -> LeaseLost:
        # Marked failed while it waited or between steps (`retry --mark-failed`, a sensor): a retry goes on in its
        # place, and this one must not deploy beside it.
        return LeaseLost(f"run {run_id[:8]} was marked ended while it waited for {self.env}'s deploy lease: it does "
                         "not deploy (its retry, if any, does)")  # fmt: skip

    def _ended(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        return run is None or run.status in TERMINAL  # None: deleted (from the UI), which ends it as surely

    def _fail_if_running(self, run_id: str, why: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.status in TERMINAL:
            return False
        self.instance.report_run_failed(run, f"deploy lease reclaimed: {why}")
        return True

    def release(self, run_id: str, note=lambda _: None) -> None:
        if self._let_go(run_id, STEP):
            note(f"{LEASE_RELEASED} {self.env}")

    @entered_whole
    def held(self, run_id: str, log: Callable[[str], None], describe: Callable[[str], str], note=lambda _: None):
        """Hold the lease for the duration of one step, heartbeating from a thread while it works. Yields itself."""
        beating = False
        try:
            self.acquire(run_id, log, describe, note)
            with contextlib.ExitStack() as beat:
                self._start_beating(beat, run_id, STEP)
                beating = True
                yield self
        finally:
            if not beating:  # stopped as it took the lease: its row says at work, and no beat's end removes it
                self.heart.workers.unmark((run_id, STEP))

    @entered_whole
    def settling(
        self, run_id: str, defer_to: Callable[[str], bool], patience: float | None = None, step: str = ""
    ) -> Iterator[Holder | None]:
        """Hold the lease while the ended run `run_id` is settled, so that no deploy of the env starts meanwhile.
        Yields None when held. Yields the holder, without waiting, when it is a run `defer_to` accepts (a deploy:
        it owns what the env serves now, and is settled in turn if it fails) or another settle of this same run.
        Any other holder is waited for: another run's settle (seconds), a run that deploys nothing (a stage or
        two materialized from the UI), which would otherwise leave this env as this run left it: for `patience`
        seconds at most, if given, and then LeaseBusy is raised."""
        self._slot.ensure()
        step, deadline = step or settle_step(), None if patience is None else time.monotonic() + patience
        while True:
            holder = self.holder()
            if holder is not None and (holder.run_id, holder.step) == (run_id, STEP) and at_work(holder):
                # Its own run was marked ended while its step still works: settling now would be a second writer.
                pause(holder, deadline, POLL_S)
                continue
            if self._slot.claim(run_id, step):
                if (working := self._given_back(run_id, step)) is None:
                    break
                pause(working, deadline, POLL_S)
                continue
            if holder is None:
                self._slot.ensure(again=True)
                continue
            if self._reclaimed(holder, log=lambda _: None):
                continue
            this_runs_settle = holder.run_id == run_id and is_settle(holder.step)
            if this_runs_settle or (holder.step == STEP and defer_to(holder.run_id)):
                yield holder
                return
            pause(holder, deadline, POLL_S)
        try:
            self.heart.write(run_id, step)
            with contextlib.ExitStack() as beat:
                self._start_beating(beat, run_id, step)
                yield None
        finally:
            self._let_go(run_id, step)

    def _given_back(self, run_id: str, step: str) -> Holder | None:
        """Just after a claim: the step at work that still holds the lease, its slot row freed from outside (a run
        deleted from the UI). The claim is given back; that step takes its slot back on its next beat."""
        if (working := self.heart.elsewhere(run_id, step)) is None:
            return None
        self._slot.free(run_id, step)
        return Holder.beating(working)

    def _start_beating(self, stack: contextlib.ExitStack, run_id: str, step: str) -> None:
        """The step's beat, entered on the caller's `stack` (already entered, so it always stops the beat) with stop
        signals held back: its thread never starts without the block that stops it."""
        keep = functools.partial(self._slot.take_back, self.instance, run_id, step)  # a slot freed from outside
        with signals_deferred():
            stack.enter_context(self.heart.beating(run_id, step, keep=keep,
                                                   held=lambda: self._slot.holder() == (run_id, step)))  # fmt: skip

    def _let_go(self, run_id: str, step: str) -> bool:
        """Free the slot `run_id` holds for `step`, its beat made idle first while it is held."""
        held = self._slot.holder() == (run_id, step)
        return self.heart.let_go(run_id, step, lambda: self._slot.free(run_id, step), held=held)
