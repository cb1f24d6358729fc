"""The deploy lease's edges. An environment's first deploys, started at the same moment from separate processes,
create its one-slot pool (the deploy lease) once: none of them fails for it, and the pool has exactly one slot. A
run ended while it waited for the lease never takes it."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest

from coderemote_pipeline.ledger import leases
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease, LeaseBusy, LeaseLost, pool
from coderemote_pipeline.ledger.process_place import process_place
from coderemote_pipeline.rules import names

RACER = """
import sys, time
from pathlib import Path
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
for env in sys.argv[3:]:
    Lease(instance, env)._slot.ensure()
"""


def test_first_deploys_started_together_create_the_pool_once(tmp_path):
    state = tmp_path / "state"
    open_instance(state).dispose()  # the instance exists; its pools do not
    envs = [f"env{i}" for i in range(20)]
    start = time.time() + 5  # every racer has loaded its modules by then
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(state), str(start), *envs],
                               stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    for racer in racers:
        assert racer.wait(timeout=120) == 0, racer.stderr.read()[-3000:]
    with open_instance(state) as instance:
        for env in envs:
            assert instance.event_log_storage.get_concurrency_info(pool(env)).slot_count == 1


def test_a_run_ended_while_it_waited_for_the_lease_never_takes_it(tmp_path):
    """`retry --mark-failed` (or a sensor) ended a run that was only waiting: alive, it must not go on to deploy
    beside the retry that replaced it once the holder is done."""
    with open_instance(tmp_path / "state") as instance:
        holder, waiter = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for run in (holder, waiter):
            instance.add_run(run)
        lease = Lease(instance, "dev")
        lease.acquire(holder.run_id, log=print, describe=str)
        timer = threading.Timer(1.0, lambda: instance.report_run_failed(waiter, "marked failed: process gone"))
        timer.start()
        with pytest.raises(LeaseLost, match=f"run {waiter.run_id[:8]} was marked ended while it waited for dev's"):
            lease.acquire(waiter.run_id, log=lambda _: None, describe=str)
        timer.join()
        assert lease.holder().run_id == holder.run_id


def test_a_run_ended_while_it_waited_does_not_take_the_lease_once_it_is_free(tmp_path):
    """The holder finishes first: the ended run and its retry both poll for the free lease; the ended one never
    takes it, whichever polls first."""
    with open_instance(tmp_path / "state") as instance:
        ended = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(ended)
        instance.report_run_failed(ended, "marked failed by `coderemote-pipeline retry --mark-failed`")
        lease = Lease(instance, "dev")
        with pytest.raises(LeaseLost, match=f"run {ended.run_id[:8]} was marked ended"):
            lease.acquire(ended.run_id, log=lambda _: None, describe=str)
        assert lease.holder() is None


def test_a_run_marked_ended_while_its_step_works_keeps_the_lease_until_the_step_ends(tmp_path):
    """A forced terminate from the UI, or run monitoring, marks a run ended without stopping its step: the next
    deploy, or the run's own settle, took the lease at once, and two wrote to one environment."""
    with open_instance(tmp_path / "state") as instance:
        working, waiter = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for run in (working, waiter):
            instance.add_run(run)
        lease, step_done, taken = Lease(instance, "dev"), threading.Event(), threading.Event()

        def step() -> None:
            with lease.held(working.run_id, log=print, describe=str):
                step_done.wait(timeout=60)

        def next_deploy() -> None:
            lease.acquire(waiter.run_id, log=lambda _: None, describe=str)
            taken.set()

        threads = [threading.Thread(target=step), threading.Thread(target=next_deploy)]
        threads[0].start()
        while lease.holder() is None:
            time.sleep(0.05)
        instance.report_run_canceled(working, "force-terminated from the UI")  # its step goes on
        # Nor does its own settle go on beside it: it is tagged waiting, and a later try settles it.
        with pytest.raises(LeaseBusy), lease.settling(working.run_id, defer_to=lambda _: True, patience=1.0):
            pass
        assert lease.holder().run_id == working.run_id
        threads[1].start()
        assert not taken.wait(timeout=3.0), "the lease was taken from a step still at work"
        assert lease.holder().run_id == working.run_id
        step_done.set()  # the step ends, keeping the lease (as a failure does): now it may be reclaimed
        assert taken.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=30)
        assert lease.holder().run_id == waiter.run_id


def test_a_run_deleted_from_the_ui_while_its_step_works_keeps_the_lease_until_the_step_ends(tmp_path):
    """Deleting a run frees its concurrency slots (Dagster's delete_events), our deploy lease among them, whatever
    its step still does: the next deploy claimed the free slot at once, and two wrote to one environment."""
    with open_instance(tmp_path / "state") as instance:
        working, waiter = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for run in (working, waiter):
            instance.add_run(run)
        lease, step_done, taken, said = Lease(instance, "dev"), threading.Event(), threading.Event(), []

        def step() -> None:
            with lease.held(working.run_id, log=print, describe=str):
                step_done.wait(timeout=60)

        def next_deploy() -> None:
            Lease(instance, "dev").acquire(waiter.run_id, log=said.append, describe=str)
            taken.set()

        threads = [threading.Thread(target=step), threading.Thread(target=next_deploy)]
        threads[0].start()
        while lease.holder() is None:
            time.sleep(0.05)
        instance.delete_run(working.run_id)  # from the UI: its slot row is freed, its step goes on
        assert lease.holder() is None
        threads[1].start()
        assert not taken.wait(timeout=5.0), "the lease was taken from a step still at work"
        assert lease.holder().run_id == working.run_id  # the working step took its slot back
        # It names the process to kill, should the step hang: deleting its run no longer frees the lease.
        assert said and f"waiting for {working.run_id}, whose step works in pid {os.getpid()} on " in said[0]
        # Its own settle does not start beside it either.
        with pytest.raises(LeaseBusy), Lease(instance, "dev").settling(working.run_id, defer_to=lambda _: True,
                                                                       patience=1.0):  # fmt: skip
            pass
        step_done.set()  # the step ends keeping the slot; its run is gone, so the next deploy reclaims it
        assert taken.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=30)
        assert lease.holder().run_id == waiter.run_id
        # Its next step finds its run gone: it does not deploy.
        with pytest.raises(LeaseLost):
            Lease(instance, "dev").acquire(working.run_id, log=lambda _: None, describe=str)


def test_a_step_that_releases_the_lease_lets_the_next_deploy_go_at_once(tmp_path):
    """smoke_result releases the lease inside its step: the release says the step is idle before freeing the slot,
    so the next deploy does not take the step's last working beat for a step still at work and wait it out."""
    with open_instance(tmp_path / "state") as instance:
        first, second = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for run in (first, second):
            instance.add_run(run)
        lease, said = Lease(instance, "dev"), []
        with lease.held(first.run_id, log=print, describe=str):
            time.sleep(2.5)  # a beat from the step's thread
            lease.release(first.run_id)
            Lease(instance, "dev").acquire(second.run_id, log=said.append, describe=str)
            time.sleep(2.5)  # the first step's thread does not beat for it any more
        assert said == [] and lease.holder().run_id == second.run_id
        assert lease.heart.read().run_id == second.run_id


def test_the_next_step_of_a_run_deleted_while_it_held_the_lease_does_not_deploy(tmp_path):
    """Deleted from the UI while a step worked, the run kept its slot (the step took it back) and ended that step
    holding it: its next step found the slot its own and went on deploying, a run nothing would ever settle."""
    with open_instance(tmp_path / "state") as instance:
        deleted = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(deleted)
        lease = Lease(instance, "dev")
        with lease.held(deleted.run_id, log=print, describe=str):
            instance.delete_run(deleted.run_id)
            while lease.holder() is None:  # the working step takes its slot back on its next beat
                time.sleep(0.1)
        assert lease.holder().run_id == deleted.run_id
        with pytest.raises(LeaseLost, match=f"run {deleted.run_id[:8]} was marked ended"):
            Lease(instance, "dev").acquire(deleted.run_id, log=lambda _: None, describe=str)
        assert lease.holder() is None  # and the next deploy takes it at once



def _beat_from_another_process(lease: Lease, run_id: str) -> None:
    """A working beat of `run_id` written by another process (deploy_job's other parallel step)."""
    now, pid = time.time(), os.getpid() + 1
    beat = {"run_id": run_id, "step": "deploy", "at": now, "where": "this-host", "working": True, "pid": pid}
    row = {"run_id": run_id, "step": "deploy", "worker": f"{pid}@this-host", "at": now}  # its own worker row
    row_key = f"{lease.heart.key}/at/{pid}@this-host/{run_id}/deploy"
    # One key a call: Dagster's set_cursor_values inserts none of several keys when one of them exists.
    lease.instance.run_storage.set_cursor_values({row_key: json.dumps(row)})
    lease.instance.run_storage.set_cursor_values({lease.heart.key: json.dumps(beat)})


def test_a_step_of_a_deleted_run_leaves_the_lease_to_its_parallel_sibling_at_work(tmp_path):
    """deploy_job runs two steps at once under one run. Deleted, the run's next step stops, but freed the slot its
    sibling step (another process) still worked under, and the next deploy went on beside it."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="deploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease = Lease(instance, "dev")
        lease.acquire(run.run_id, log=print, describe=str)
        instance.delete_run(run.run_id)
        lease._slot.claim(run.run_id)  # the sibling's beat took its slot back
        _beat_from_another_process(lease, run.run_id)
        with pytest.raises(LeaseLost):
            Lease(instance, "dev").acquire(run.run_id, log=lambda _: None, describe=str)
        assert lease.holder().run_id == run.run_id and lease.heart.read().working  # still the sibling's


def test_a_waiter_never_gives_a_claimer_a_beat_over_a_step_at_work(tmp_path):
    """Two waiters: one claims the freed slot only to find another run's step at work; the other, seeing a holder
    without a beat of its own, gave it one, over that step's working beat: the claimer then saw nobody at work."""
    with open_instance(tmp_path / "state") as instance:
        working, claimer = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for run in (working, claimer):
            instance.add_run(run)
        lease = Lease(instance, "dev")
        lease._slot.ensure()
        _beat_from_another_process(lease, working.run_id)
        assert lease._slot.claim(claimer.run_id)
        holder = lease.holder()
        assert holder.run_id == claimer.run_id and holder.beat is None
        assert not lease._reclaimed(holder, log=print)
        assert lease.heart.read().run_id == working.run_id and lease.heart.read().working


def test_a_parallel_step_that_ends_leaves_its_sibling_at_work(tmp_path):
    """deploy_job: two steps of one run beat under one (run, step) from two processes. The one that ended wrote an
    idle beat over the other's, and for a heartbeat the other looked idle: a forced terminate or a UI delete then let
    the next deploy, or the run's settle, go beside it."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="deploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease = Lease(instance, "dev")
        with lease.held(run.run_id, log=print, describe=str):
            _beat_from_another_process(lease, run.run_id)  # the sibling step beats
            time.sleep(2.5)  # this step beats too, keeping the sibling's beat beside its own
            assert len(lease.heart.read().workers) == 2
        # This step ended keeping the lease: the beat still shows the sibling at work, and names its process.
        holder = lease.holder()
        assert holder.working and holder.pid == os.getpid() + 1 and holder.where == "this-host"
        assert lease.heart.sibling_at_work(run.run_id, "deploy")
        instance.report_run_canceled(run, "force-terminated from the UI")
        # Its settle waits for the sibling.
        with pytest.raises(LeaseBusy), lease.settling(run.run_id, defer_to=lambda _: True, patience=1.0):
            pass


def test_a_lock_left_taken_by_a_signal_never_hangs_a_step_or_its_release(tmp_path):
    """`kill PID` landing as a `with lock:` is entered can leave the beat's lock taken (CPython does not guard that
    window); the step's end and the lease's release waited on it forever, and the killed deploy never exited."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease = Lease(instance, "dev")

        def step_then_release() -> None:
            with lease.held(run.run_id, log=print, describe=str):
                lease.heart._lock.acquire()  # left taken, as by the signal
                time.sleep(2.5)  # the beat thread meets the taken lock
            lease.release(run.run_id)

        worker = threading.Thread(target=step_then_release, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the step's end or the release hung on the beat's lock"
        assert lease.holder() is None


HOLDER = """
import sys, time
from pathlib import Path
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
with Lease(instance, "dev").held(sys.argv[2], log=print, describe=str):
    print("working", flush=True)
    time.sleep(600)
"""


@contextlib.contextmanager
def _step_at_work(instance, tmp_path, job: str):
    """A run whose step works under dev's lease in a process of its own, and a run that waits: (run, waiter, step)."""
    run, waiter = (dg.DagsterRun(job_name=job, status=dg.DagsterRunStatus.STARTED) for _ in "ab")
    for each in (run, waiter):
        instance.add_run(each)
    step = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "state"), run.run_id],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert step.stdout.readline().strip() == "working"
        yield run, waiter, step
    finally:
        if step.poll() is None:
            step.kill()
            step.wait(timeout=30)


def test_a_step_killed_at_work_is_seen_gone_at_once_on_its_host(tmp_path):
    """A step killed while at work, its run ended from outside (a forced terminate), left a working beat: the next
    deploy waited it out (ALIVE_S), naming a pid that no longer existed. On the step's own host, its process is
    known gone at once."""
    with open_instance(tmp_path / "state") as instance, _step_at_work(instance, tmp_path, "redeploy_job") as (
        ended, waiter, step
    ):
        time.sleep(2.5)  # a beat from the step's thread
        instance.report_run_canceled(ended, "force-terminated from the UI")
        lease = Lease(instance, "dev")
        assert lease.holder().working and lease.holder().pid == step.pid  # at work: not reclaimed
        said: list[str] = []
        with pytest.raises(LeaseBusy), lease.settling(waiter.run_id, defer_to=lambda _: False, patience=0.0):
            pass
        step.kill()
        step.wait(timeout=30)
        lease.acquire(waiter.run_id, log=said.append, describe=str)
        assert lease.holder().run_id == waiter.run_id
    assert not [line for line in said if line.startswith("waiting for")], said
    assert any("reclaimed dev's deploy lease" in line for line in said), said


def test_a_run_whose_process_was_killed_on_this_host_loses_the_lease_in_seconds(tmp_path, monkeypatch):
    """A deploy killed with `kill -9` (its run still STARTED) held the lease: the next deploy waited out the whole
    reclaim time, though its `executed_by` tag names a process of this host that no longer exists. A few beats'
    silence is enough to know no step of it still works."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "600")  # only the dead process can free it within the test
    monkeypatch.setattr(leases, "ALIVE_S", 1.0)  # the silence asked of a dead executor: 2 s here, 12 s in use
    with open_instance(tmp_path / "state") as instance:
        waiter, killed = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for each in (waiter, killed):
            instance.add_run(each)
        step = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "state"), killed.run_id],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        instance.add_run_tags(killed.run_id, {names.EXECUTED_BY_TAG: f"{process_place()}:{step.pid}"})
        try:
            assert step.stdout.readline().strip() == "working"
        finally:
            step.kill()
            step.wait(timeout=30)
        said: list[str] = []
        taker = threading.Thread(target=Lease(instance, "dev").acquire, args=(waiter.run_id, said.append, str))
        taker.start()
        taker.join(timeout=60)
        assert not taker.is_alive(), said
        assert any(f"was executed by process {step.pid} on this host, which is gone" in line for line in said), said
        assert instance.get_run_by_id(killed.run_id).status is dg.DagsterRunStatus.FAILURE


def test_a_step_whose_process_is_stopped_keeps_the_lease_however_long_it_is_silent(tmp_path, monkeypatch):
    """A deploy stopped mid-step (Ctrl-Z, SIGSTOP, a debugger) went silent, so the next deploy reclaimed its lease and
    marked it failed; resumed, it finished its switch beside that deploy's, and users got a failed run's release.
    Its process still runs on this host: it keeps the lease, and the waiter says how to resume or end it."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    with open_instance(tmp_path / "state") as instance, _step_at_work(instance, tmp_path, "redeploy_job") as (
        frozen, waiter, step
    ):
        time.sleep(2.5)  # a beat from the step's thread
        os.kill(step.pid, signal.SIGSTOP)
        try:
            said: list[str] = []
            taker = threading.Thread(target=Lease(instance, "dev").acquire, args=(waiter.run_id, said.append, str),
                                     daemon=True)  # fmt: skip
            taker.start()
            taker.join(timeout=3 + 4)  # past the reclaim time (3 s) of silence, and a few polls
            assert taker.is_alive(), said  # still waiting: not reclaimed
            assert Lease(instance, "dev").holder().run_id == frozen.run_id
            assert instance.get_run_by_id(frozen.run_id).status is dg.DagsterRunStatus.STARTED
            assert Lease(instance, "dev").holder().describe(str).endswith(
                f"whose process {step.pid} is alive but silent (stopped? `kill -CONT {step.pid}` resumes it, "
                f"`kill {step.pid}` ends it),")  # fmt: skip
        finally:
            step.kill()  # a stopped process takes SIGKILL at once
            step.wait(timeout=30)
        taker.join(timeout=60)
        assert not taker.is_alive(), said
        assert Lease(instance, "dev").holder().run_id == waiter.run_id


def test_a_step_stays_at_work_when_its_parallel_sibling_dies_having_written_the_last_beat(tmp_path):
    """deploy_job's two steps shared one beat value (read, add yourself, write): one step's write could drop the
    other's entry, and once the writer died (its process known gone at once), nobody looked at work while the other
    step still worked, and the next deploy went on beside it. Each process now has a worker row of its own."""
    with open_instance(tmp_path / "state") as instance, _step_at_work(instance, tmp_path, "deploy_job") as (
        run, waiter, step
    ):
        dead = subprocess.Popen(["true"])
        dead.wait()
        # The sibling wrote last, as if it had read the beat before this step's first write, then died.
        place = f"{dead.pid}@{process_place()}"
        last = {"run_id": run.run_id, "step": "deploy", "at": time.time(), "where": socket.gethostname(),
                "working": True, "pid": dead.pid, "workers": {place: time.time()}}  # fmt: skip
        instance.run_storage.set_cursor_values({Lease(instance, "dev").heart.key: json.dumps(last)})
        instance.report_run_canceled(run, "force-terminated from the UI")
        lease = Lease(instance, "dev")
        holder = lease.holder()
        assert holder.working and holder.pid == step.pid, holder
        assert not lease._reclaimed(holder, log=print) and lease.holder().run_id == run.run_id
        with pytest.raises(LeaseBusy), lease.settling(waiter.run_id, defer_to=lambda _: False, patience=0.0):
            pass


def test_a_step_never_goes_on_under_a_slot_its_parallel_sibling_claimed_only_for_a_moment(tmp_path):
    """deploy_job's two first steps wait for dev while a deleted run's step still works (its slot freed). One
    claims the slot, finds that step at work and gives it back; in that moment the other saw the slot its own
    run's, went on, and deployed beside the deleted run's step (the lease's stress test found it)."""
    with open_instance(tmp_path / "state") as instance, _step_at_work(instance, tmp_path, "deploy_job") as (
        deleted, run, step
    ):
        instance.delete_run(deleted.run_id)  # Dagster frees its slot; its step works on
        lease, said, went_on = Lease(instance, "dev"), [], threading.Event()
        assert lease._slot.claim(run.run_id)  # one sibling's claim, about to be given back

        def other_sibling() -> None:
            lease.acquire(run.run_id, log=said.append, describe=str)
            went_on.set()

        threading.Thread(target=other_sibling, daemon=True).start()
        assert not went_on.wait(timeout=1.5), "went on beside a step of another run at work"
        assert said and said[0].startswith(f"waiting for {deleted.run_id}, whose step works in pid {step.pid}")
        step.kill()
        step.wait(timeout=30)
        assert went_on.wait(timeout=30)  # that step gone, the slot its run holds is its own again


def test_no_pid_is_judged_where_proc_answers_for_another_pid_namespace(monkeypatch):
    """Under `unshare -p` without a fresh /proc, /proc/<pid> is another namespace's process: a live worker could be
    taken for gone. There, no place is recorded, and no pid judged."""
    from coderemote_pipeline.ledger import process_place as places

    here = process_place()
    monkeypatch.setattr(places.os, "readlink", lambda path: "1" if path == "/proc/self" else os.readlink(path))
    places._boot_and_namespace.cache_clear()
    try:
        assert process_place() == ""
        assert not places.gone_from_here(here, 2**22 + 1) and not places.gone_from_here("", 2**22 + 1)
    finally:
        monkeypatch.undo()
        places._boot_and_namespace.cache_clear()
    assert process_place() == here and places.gone_from_here(here, 2**22 + 1)


INTERRUPTED_AS_THE_BEAT_STARTS = """
import signal, sys, threading, time
from pathlib import Path
import dagster as dg
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
instance.add_run(run)
start = threading.Thread.start
def start_then_interrupted(thread):
    start(thread)
    if thread.name.startswith("lease-beat"):
        signal.raise_signal(signal.SIGINT)  # `kill PID` or Ctrl-C, the moment the beat's thread runs
threading.Thread.start = start_then_interrupted
try:
    with Lease(instance, "dev").held(run.run_id, log=print, describe=str):
        time.sleep(1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
time.sleep(2 * 2.0 + 0.5)  # two heartbeats
beating = [t.name for t in threading.enumerate() if t.name.startswith("lease-beat")]
print("still beating" if beating else "not beating", flush=True)
"""


def test_a_ctrl_c_as_the_beat_starts_never_leaves_it_beating(tmp_path):
    """`kill PID` landing just as a step's beat thread started, before the block that stops it was entered: the
    thread beat "working" for as long as the process lived, and the run's own settle, in that process, waited for
    its step forever (fresh-clone CI and the suite: a killed deploy that never exited)."""
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_AS_THE_BEAT_STARTS, str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["interrupted", "not", "beating"], done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("first_step", [True, False])
def test_a_settle_never_works_beside_a_step_whose_run_ends_as_it_goes_on(tmp_path, monkeypatch, first_step):
    """A step judged its run not ended, then said it was at work: a run ended in between was settled (the settle
    takes over the slot its run holds, and saw no step at work) while the step went on deploying beside it. The
    step now says it is at work first, then judges."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease, said = Lease(instance, "dev"), []
        if not first_step:
            with lease.held(run.run_id, log=print, describe=str):
                pass  # the run's first step: it keeps the slot for the next one
        judged = Lease._ended

        def ended_then_settled(self, run_id: str) -> bool:
            was = judged(self, run_id)
            if run_id == run.run_id and not said:  # the run ends right after the step's look
                instance.report_run_canceled(instance.get_run_by_id(run_id), "force-terminated from the UI")

                def settle() -> None:
                    try:
                        with Lease(instance, "dev").settling(run_id, defer_to=lambda _: True, patience=1.0) as h:
                            said.append("settled beside the step" if h is None else "deferred")
                    except LeaseBusy:
                        said.append("waited for the step")

                settling = threading.Thread(target=settle)
                settling.start()
                settling.join(timeout=60)
            return was

        monkeypatch.setattr(Lease, "_ended", ended_then_settled)
        lease.acquire(run.run_id, log=print, describe=str)  # it goes on: its run was not ended when it looked
        assert said == ["waited for the step"]


def test_a_steps_beat_comes_at_once_not_a_heartbeat_after_it_starts(tmp_path):
    """The claim's row had to stay fresh until the first beat, HEARTBEAT_S after the step started: a slow start (its
    first event, a busy storage) let it age past ALIVE_S, and the run's own settle saw nobody at work."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease, taken = Lease(instance, "dev"), []
        with lease.held(run.run_id, log=print, describe=str, note=lambda _: taken.append(time.time())):
            time.sleep(0.5)
            (at,) = lease.heart.read((run.run_id, "deploy")).workers.values()
        assert at > taken[0], "no beat since the claim's"


def test_a_beat_thread_that_cannot_start_fails_the_step_with_its_own_error(tmp_path, monkeypatch):
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease = Lease(instance, "dev")

        def cannot_start(thread) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Thread, "start", cannot_start)
        with pytest.raises(RuntimeError, match="can't start new thread"), lease.held(run.run_id, print, str):
            pass
        monkeypatch.undo()
        assert not lease.heart.read((run.run_id, "deploy")).workers  # and its row is gone


def test_a_step_of_the_version_before_worker_rows_is_still_seen_at_work(tmp_path):
    """A deploy started by the previous version (its beat names its workers in one value) and deleted from the UI
    while at work: a claim by this version gives the slot back to it, as to a step with a row."""
    with open_instance(tmp_path / "state") as instance:
        old, new = (dg.DagsterRun(job_name="deploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
        for each in (old, new):
            instance.add_run(each)
        now = time.time()
        beat = {"run_id": old.run_id, "step": "deploy", "at": now, "where": "vm", "working": True, "pid": 7,
                "workers": {"7@vm": now}}  # fmt: skip
        lease = Lease(instance, "dev")
        instance.run_storage.set_cursor_values({lease.heart.key: json.dumps(beat)})
        lease._slot.ensure()
        assert lease._slot.claim(new.run_id)
        assert lease._given_back(new.run_id, "deploy").run_id == old.run_id
        assert lease._slot.holder() is None
