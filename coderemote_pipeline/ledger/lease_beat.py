"""The heartbeat beside an environment's deploy lease: who last said it was at work, when, and where (Beat), and who
holds the lease as the slot and its beat tell together (Holder).

One cursor value in the run storage per environment, written every HEARTBEAT_S by the step that holds the lease,
and beside it one row per process at work (ledger/lease_workers.py), which only that process writes. They are the
lease's second witness: the slot row can be freed from outside (deleting a run from the UI frees its
concurrency slots, whatever its step still does), so a fresh "working" beat of another run counts as holding the
lease, and the step that lost its slot that way takes it back on its next beat (ledger/leases.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dagster as dg

from coderemote_pipeline.ledger.lease_slot import STEP, is_settle
from coderemote_pipeline.ledger.lease_workers import Work, Workers, alive, gone, token

HEARTBEAT_S = 2.0
# A step whose heartbeat is this fresh is working, whatever its run's status or the slot row says.
ALIVE_S = 3 * HEARTBEAT_S


@dataclass(frozen=True)
class Beat:
    run_id: str
    step: str
    at: float | None  # None: a beat given on a waiter's clock to a holder that never wrote one
    where: str
    working: bool  # what its last writer said; whether a step of it works is its workers' to tell (at_work)
    pid: int | None = None  # the process that beats, on host `where`: the one to kill if its step hangs
    # Each process whose step works under (run_id, step), with its last beat (ledger/lease_workers.py): deploy_job
    # runs two steps at once, and one ending must not make the other look idle.
    workers: dict[str, float] = field(default_factory=dict)

    def at_work(self) -> bool:
        """A step of it is still at work, recently enough that the step is alive."""
        return bool(_alive(self.workers))

    def others_at_work(self) -> bool:
        """A step of it works in another process than this one."""
        return any(worker != token() for worker in _alive(self.workers))

    def alive_here(self) -> bool:
        """A process that worked for it still runs on this host, silent or not."""
        return any(alive(worker, at) for worker, at in self.workers.items())

    def worker(self) -> tuple[int | None, str]:
        """(pid, host) of its freshest living worker, else of its freshest one, else of its writer."""
        workers = _alive(self.workers) or self.workers
        if not workers:
            return self.pid, self.where
        pid, _, place = max(workers, key=lambda t: workers[t]).partition("@")
        return int(pid), place.partition("/")[0]


def _alive(workers: dict[str, float]) -> dict[str, float]:
    """The workers that beat within ALIVE_S. Those whose process is known to have exited are not among them (the
    rows' reader drops them): a step killed at work is seen gone at once on its own host, instead of making the
    next deploy wait out ALIVE_S for a process that no longer exists."""
    now = time.time()
    return {worker: at for worker, at in workers.items() if now - at < ALIVE_S}


class LeaseLost(RuntimeError):
    """The run waiting for the lease was ended meanwhile: it must not take the lease and deploy."""


class LeaseBusy(RuntimeError):
    """A settle waited as long as it was allowed to for the holder below."""

    def __init__(self, holder: Holder):
        super().__init__(f"{holder.run_id} holds the lease")
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    run_id: str
    beat: float | None  # time of the holder's last heartbeat, if it wrote one
    where: str
    step: str = STEP  # a settle's step (is_settle): a process settles the ended run `run_id`
    working: bool = False  # its last beat came from a step at work (not one that ended keeping the lease)
    pid: int | None = None
    # A process of it still runs on this host, however silent: never reclaimed for silence (a stopped process that
    # is resumed goes on with its switch).
    alive: bool = False

    def describe(self, describe_run: Callable[[str], str]) -> str:
        who = f"the settle of ended {describe_run(self.run_id)}" if is_settle(self.step) else describe_run(self.run_id)
        # Where it works: a step that hangs keeps the lease however its run is ended, until its process is killed.
        if self.working and self.pid:
            return f"{who}, whose step works in pid {self.pid} on {self.where},"
        if self.alive and self.pid:
            return (f"{who}, whose process {self.pid} is alive but silent (stopped? `kill -CONT {self.pid}` resumes "
                    f"it, `kill {self.pid}` ends it),")  # fmt: skip
        return who

    def same_beat(self, other: Holder | None) -> bool:
        """`other` is this holder read again, no beat written since (derived fields, such as its pid once its worker
        row is forgotten, may differ)."""
        return other is not None and (other.run_id, other.step, other.beat) == (self.run_id, self.step, self.beat)

    @classmethod
    def beating(cls, beat: Beat) -> Holder:
        """The step a working beat shows, holding the lease whatever the slot row says."""
        pid, host = beat.worker()
        return cls(beat.run_id, beat.at, host, beat.step, True, pid, beat.alive_here())


def at_work(holder: Holder) -> bool:
    """Its last beat came from a step still at work, whatever its run's status says."""
    return holder.working and time.time() - (holder.beat or 0.0) < ALIVE_S


class Heart:
    """The heartbeat of one environment's lease, in one instance."""

    def __init__(self, instance: dg.DagsterInstance, env: str):
        self._storage, self.key = instance.run_storage, f"coderemote/lease/{env}"
        self.workers = Workers(self._storage, self.key)
        # Serializes this process's writes: a release's idle beat is never overwritten by its own thread's last one.
        self._lock = threading.Lock()
        self._let_go: set[tuple[str, str]] = set()

    @contextlib.contextmanager
    def _serialized(self) -> Iterator[None]:
        """This process's writes one at a time, but never waiting long for it: a signal (Ctrl-C, `kill`) that lands
        as a `with lock:` is entered can leave the lock taken (CPython does not guard that window), and a step's end
        must not hang on it. Unserialized, the worst is a stale working beat: a waiter waits ALIVE_S."""
        taken = self._lock.acquire(timeout=HEARTBEAT_S)
        try:
            yield
        finally:
            if taken:
                self._lock.release()

    def _main(self) -> dict | None:
        raw = self._storage.get_cursor_values({self.key}).get(self.key)
        return json.loads(raw) if raw else None

    def read(self, of: Work | None = None) -> Beat | None:
        """The beat of `of` (default: of the last writer): when it last beat, and which processes work for it."""
        return self._beat(self._main(), self.workers.read(), of)

    @staticmethod
    def _beat(main: dict | None, rows: dict[Work, dict[str, float]], of: Work | None) -> Beat | None:
        of = of or ((str(main.get("run_id", "")), str(main.get("step", STEP))) if main else None)
        if of is None:
            return None
        last = main if main and (main.get("run_id"), main.get("step", STEP)) == of else None
        workers = rows.get(of, {})
        if not workers and last and last.get("workers"):  # written by the version before worker rows, until its
            workers = {str(w): float(at) for w, at in last["workers"].items() if not gone(w)}  # runs end: at work
        if last is None and not workers:
            return None
        at = max(([float(last["at"])] if last else []) + list(workers.values()))
        pid = last.get("pid") if last else None
        return Beat(of[0], of[1], at, str(last.get("where", "")) if last else "", bool(last and last.get("working")),
                    int(pid) if pid else None, workers)  # fmt: skip

    def write(self, run_id: str, step: str = STEP, working: bool = True) -> None:
        with self._serialized():
            self._write(run_id, step, working)

    def _write(self, run_id: str, step: str, working: bool, where: str | None = None) -> None:
        """This process's beat for (run_id, step): its own worker row first (at work, or gone once idle), then the
        last beat. Only rows tell who is at work, so a process killed between the two leaves no row of a step
        that said it is idle."""
        mine = where is None
        if mine:
            (self.workers.mark if working else self.workers.unmark)((run_id, step))
        value = {"run_id": run_id, "step": step, "at": time.time(), "working": mine and working,
                 "where": socket.gethostname() if mine else where, "pid": os.getpid() if mine else None}  # fmt: skip
        self._storage.set_cursor_values({self.key: json.dumps(value)})

    def give(self, run_id: str, step: str) -> None:
        """A beat on the caller's clock for a holder that never wrote one: silent from now on, it is gone. Never
        while a step is at work: the holder may be a waiter that claimed only to find that step at work."""
        with self._serialized():
            if self.elsewhere("", "") is None:  # no step at work, of any run
                self._write(run_id, step, working=False, where="")

    def _last_is(self, run_id: str, step: str) -> bool:
        main = self._main()
        return main is not None and (main.get("run_id"), main.get("step", STEP)) == (run_id, step)

    def sibling_at_work(self, run_id: str, step: str) -> bool:
        """Another process's step of this same run works (deploy_job runs two at once)."""
        beat = self.read((run_id, step))
        return beat is not None and beat.others_at_work()

    def elsewhere(self, run_id: str, step: str) -> Beat | None:
        """A step at work for another holder than (run_id, step), whoever the slot names: the freshest."""
        main, rows = self._main(), self.workers.read()
        works = set(rows) | ({(main.get("run_id"), main.get("step", STEP))} if main and main.get("workers") else set())
        beats = [self._beat(main, rows, work) for work in works if work != (run_id, step)]
        working = [beat for beat in beats if beat is not None and beat.at_work()]
        return max(working, key=lambda beat: beat.at or 0.0) if working else None

    def _idle(self, run_id: str, step: str, *, held: bool) -> None:
        """This process stops working for (run_id, step): an idle last beat while its slot is `held` and the beat
        is its own (once the slot is free, the beat may be the next holder's), and its worker row gone."""
        if held and self._last_is(run_id, step):
            self._write(run_id, step, working=False)
        else:
            self.workers.unmark((run_id, step))

    def let_go(self, run_id: str, step: str, free: Callable[[], bool], *, held: bool) -> bool:
        """Stop beating for (run_id, step), say so with an idle beat while its slot is `held` (once the slot is
        free, the beat may be the next holder's), then `free` the slot: a waiter reading the beat after the slot is
        free never takes this step for one still at work."""
        with self._serialized():
            self._let_go.add((run_id, step))
            self._idle(run_id, step, held=held)
            return free()

    @contextlib.contextmanager
    def beating(self, run_id: str, step: str, keep: Callable[[], None], held: Callable[[], bool]) -> Iterator[None]:
        """Beat "working" from a thread while the block runs, calling `keep` first each time (it takes back a slot
        freed from outside). Ends with an idle beat if the step keeps the lease (`held`: a failure, for its
        settle): a waiter then goes on at once."""
        self._let_go.discard((run_id, step))
        stop = threading.Event()

        def beat() -> None:
            # At once, then every HEARTBEAT_S: the row the claim wrote must not age past ALIVE_S while the step
            # starts (its first event, a slow storage), or its own run's settle would see nobody at work.
            while True:
                # A missed beat only shortens the reclaim margin.
                with contextlib.suppress(Exception), self._serialized():
                    if (run_id, step) not in self._let_go:
                        keep()
                        self._write(run_id, step, working=True)
                if stop.wait(HEARTBEAT_S):
                    return

        thread = threading.Thread(target=beat, name=f"lease-beat-{self.key}", daemon=True)
        try:
            thread.start()  # inside: a signal landing as it returns still stops the thread
            yield
        finally:
            stop.set()
            if thread.ident is not None:  # a thread that failed to start is not joined: its error is the one to see
                thread.join(timeout=HEARTBEAT_S + 1)
            with contextlib.suppress(Exception), self._serialized():
                if (run_id, step) not in self._let_go:
                    self._idle(run_id, step, held=held())
