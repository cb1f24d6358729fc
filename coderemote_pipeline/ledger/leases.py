"""One deploy per environment, on every path: a lease in the instance's own storage that every stage takes.

The lease is the single slot of the Dagster concurrency pool `coderemote/deploy/<env>` (the UI's Concurrency page
shows it and the run holding it). Every stage step of a deploy run holds it while it works, so whatever launched
the run — the CLI in its own process, the daemon for a sensor or the UI, the team's run queue — two runs of one
environment never work at the same time: the second one's first step waits, saying for which run, and goes on when
that run ends. Different environments have different pools and deploy side by side.

Taking the slot is one conditional UPDATE (`... WHERE run_id IS NULL`), atomic in SQLite and Postgres alike, so
it is safe across processes and machines sharing the instance. The holder writes a heartbeat every few seconds
while a step runs; a holder whose run ended (and whose step is not still at work: a run can be marked ended from
outside), or whose heartbeat is older than RECLAIM_AFTER_S (its process was killed), is reclaimed by the next run
that waits, and the message says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg

from coderemote_pipeline.ledger.lease_slot import STEP, Slot, is_settle, settle_step
from coderemote_pipeline.rules.settings import lease_reclaim_s

HEARTBEAT_S = 2.0
# A step whose heartbeat is this fresh is working, whatever its run's status says (see Lease._stale).
ALIVE_S = 3 * HEARTBEAT_S
# Longer than any pause between two steps of one run (the multiprocess executor starts a process per step);
# CODEREMOTE_LEASE_RECLAIM_S sets another, read when a waiter decides (tests use a few seconds).
RECLAIM_AFTER_S = 30.0
POLL_S = 0.5
REMIND_S = 30.0
LEASE_TAKEN = "took the deploy lease of"
LEASE_RELEASED = "released the deploy lease of"
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def reclaim_after_s() -> float:
    set_to = lease_reclaim_s(os.environ)  # read when a waiter decides: tests change it between two waits
    return RECLAIM_AFTER_S if set_to is None else set_to


def pool(env: str) -> str:
    return f"coderemote/deploy/{env}"


def _heartbeat_key(env: str) -> str:
    return f"coderemote/lease/{env}"


class LeaseLost(RuntimeError):
    """The run waiting for the lease was ended meanwhile: it must not take the lease and deploy."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    beat: float | None  # time of the holder's last heartbeat, if it wrote one
    where: str
    step: str = STEP  # a settle's step (is_settle): a process settles the ended run `run_id`
    working: bool = False  # its last beat came from a step at work (not one that ended keeping the lease)

    def describe(self, describe_run: Callable[[str], str]) -> str:
        return f"the settle of ended {describe_run(self.run_id)}" if is_settle(self.step) else describe_run(self.run_id)


def _at_work(holder: Holder) -> bool:
    """Its last beat came from a step still at work, whatever its run's status says."""
    return holder.working and time.time() - (holder.beat or 0.0) < ALIVE_S


class LeaseBusy(RuntimeError):
    """A settle waited as long as it was allowed to for the holder below."""

    def __init__(self, holder: Holder):
        super().__init__(f"{holder.run_id} holds the lease")
        self.holder = holder


class Lease:
    """The lease of one environment's deploys, in one instance."""

    def __init__(self, instance: dg.DagsterInstance, env: str):
        self.instance, self.env, self.key = instance, env, pool(env)
        self._slot = Slot(instance.event_log_storage, self.key)

    def holder(self) -> Holder | None:
        held = self._slot.holder()
        if held is None:
            return None
        raw = self.instance.run_storage.get_cursor_values({_heartbeat_key(self.env)}).get(_heartbeat_key(self.env))
        beat = json.loads(raw) if raw else {}
        # A beat is the holder's own only for what it holds the lease for: a settle under an ended run's id must
        # not be judged by that run's last beat, minutes old.
        mine = (beat.get("run_id"), beat.get("step", STEP)) == held
        where = str(beat.get("where", "")) if mine else ""
        return Holder(held[0], float(beat["at"]) if mine else None, where, held[1], mine and bool(beat.get("working")))

    def beat(self, run_id: str, step: str = STEP, working: bool = True) -> None:
        value = json.dumps({"run_id": run_id, "step": step, "at": time.time(), "where": socket.gethostname(),
                            "working": working})  # fmt: skip
        self.instance.run_storage.set_cursor_values({_heartbeat_key(self.env): value})

    def _silent_for(self, holder: Holder) -> float | None:
        """How long the holder has not heartbeaten, when longer than the reclaim time (its process is gone)."""
        silent = time.time() - holder.beat if holder.beat is not None else 0.0
        return silent if silent > reclaim_after_s() else None

    def _held_by(self, run_id: str) -> Holder | None:
        holder = self.holder()
        mine = holder is not None and holder.run_id == run_id and holder.step == STEP
        return holder if mine and holder.beat is not None else None

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
        silent = time.time() - (holder.beat or 0.0)
        left = reclaim_after_s() - silent
        return (f"it holds {self.env}'s deploy lease, its last heartbeat {silent:.0f} s ago on {holder.where}. If "
                f"its process is gone, retry in {left:.0f} s, when the lease counts as abandoned")  # fmt: skip

    def _stale(self, holder: Holder) -> str | None:
        """Why the holder has lost its claim (its run ended, or its process went silent), or None."""
        if is_settle(holder.step):  # its run ended by definition: only silence tells its settle is gone
            silent = self._silent_for(holder)
            return None if silent is None else f"the settle of run {holder.run_id[:8]} went silent {silent:.0f} s ago"
        run = self.instance.get_run_by_id(holder.run_id)
        if run is None or run.status in TERMINAL:
            if _at_work(holder):
                return None  # marked ended from outside (a forced terminate, a deleted run): two would deploy
            status = run.status.value.lower() if run else "gone"
            return f"run {holder.run_id[:8]} ({status}) still held {self.env}'s lease"
        if (silent := self._silent_for(holder)) is not None:
            return f"run {holder.run_id[:8]} stopped heartbeating {silent:.0f} s ago (its process is gone)"
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
                if self._ended(run_id):
                    self._slot.free(run_id, STEP)
                    raise self._lost(run_id)
                self.beat(run_id)
                note(f"{LEASE_TAKEN} {self.env}")
                if waited_since is not None:
                    log(f"{self.env} is free: going on after waiting {time.monotonic() - waited_since:.1f} s")
                return
            if self._slot.holder() == (run_id, STEP):  # an earlier step of this run took it: the usual case
                self.beat(run_id)
                return
            holder = self.holder()
            if holder is None:
                self._slot.ensure(again=True)  # freed between the queries, or the pool was removed: claim again
                continue
            if (holder.run_id, holder.step) == (run_id, STEP):
                self.beat(run_id)
                return
            if self._reclaimed(holder, log):
                continue
            if self._ended(run_id):
                raise self._lost(run_id)
            now = time.monotonic()
            if waited_since is None or now - reminded > REMIND_S:
                log(f"waiting for {holder.describe(describe)} to finish: one deploy of {self.env} at a time")
                waited_since, reminded = waited_since or now, now
            time.sleep(POLL_S)

    def _reclaimed(self, holder: Holder, log: Callable[[str], None]) -> bool:
        """Free the lease of a holder that lost its claim (True: claim again); else False, and a holder that never
        wrote a heartbeat gets one on our clock: silent that long, it is gone."""
        stale = self._stale(holder)
        if stale is None:
            if holder.beat is None:
                given = {"run_id": holder.run_id, "step": holder.step, "at": time.time()}
                self.instance.run_storage.set_cursor_values({_heartbeat_key(self.env): json.dumps(given)})
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
        return run is not None and run.status in TERMINAL

    def _fail_if_running(self, run_id: str, why: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.status in TERMINAL:
            return False
        self.instance.report_run_failed(run, f"deploy lease reclaimed: {why}")
        return True

    def release(self, run_id: str, note=lambda _: None) -> None:
        if self._slot.free(run_id, STEP):
            note(f"{LEASE_RELEASED} {self.env}")

    @contextlib.contextmanager
    def held(self, run_id: str, log: Callable[[str], None], describe: Callable[[str], str], note=lambda _: None):
        """Hold the lease for the duration of one step, heartbeating from a thread while it works."""
        self.acquire(run_id, log, describe, note)
        with self._beating(run_id):
            yield

    @contextlib.contextmanager
    def settling(
        self, run_id: str, defer_to: Callable[[str], bool], patience: float | None = None
    ) -> Iterator[Holder | None]:
        """Hold the lease while the ended run `run_id` is settled, so that no deploy of the env starts meanwhile.
        Yields None when held. Yields the holder, without waiting, when it is a run `defer_to` accepts (a deploy:
        it owns what the env serves now, and is settled in turn if it fails) or another settle of this same run.
        Any other holder is waited for: another run's settle (seconds), a run that deploys nothing (a stage or
        two materialized from the UI), which would otherwise leave this env as this run left it: for `patience`
        seconds at most, if given, and then LeaseBusy is raised."""
        self._slot.ensure()
        step, deadline = settle_step(), None if patience is None else time.monotonic() + patience
        while True:
            holder = self.holder()
            if holder is not None and (holder.run_id, holder.step) == (run_id, STEP) and _at_work(holder):
                # Its own run was marked ended while its step still works: settling now would be a second writer.
                if deadline is not None and time.monotonic() >= deadline:
                    raise LeaseBusy(holder)
                time.sleep(POLL_S)
                continue
            if self._slot.claim(run_id, step):
                break
            if holder is None:
                self._slot.ensure(again=True)
                continue
            if self._reclaimed(holder, log=lambda _: None):
                continue
            this_runs_settle = holder.run_id == run_id and is_settle(holder.step)
            if this_runs_settle or (holder.step == STEP and defer_to(holder.run_id)):
                yield holder
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseBusy(holder)
            time.sleep(POLL_S)
        self.beat(run_id, step)
        try:
            with self._beating(run_id, step):
                yield None
        finally:
            self._slot.free(run_id, step)

    @contextlib.contextmanager
    def _beating(self, run_id: str, step: str = STEP) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                with contextlib.suppress(Exception):  # a missed beat only shortens the reclaim margin
                    self.beat(run_id, step)

        thread = threading.Thread(target=beat, name=f"lease-{self.env}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=HEARTBEAT_S + 1)
            with contextlib.suppress(Exception):
                if self._slot.holder() == (run_id, step):  # kept past the step (a failure, for its settle): idle
                    self.beat(run_id, step, working=False)

