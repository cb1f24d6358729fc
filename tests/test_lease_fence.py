"""The fence in front of a switch's writes (ledger/lease_fence.py): a step frozen on another host past the reclaim
time lost its lease to the next deploy; resumed, it must see that before it writes, not beside that deploy."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.lease_fence import fence
from coderemote_pipeline.ledger.leases import Lease

# A step at work under dev's lease on "another host": its process place is not this one's, so nothing here can see
# it is alive, as with a VM paused on another machine sharing the team's instance.
ELSEWHERE = """
import sys
from pathlib import Path
from coderemote_pipeline.ledger import lease_workers
lease_workers.process_place = lambda: "another-host/its-boot/its-namespace"
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.lease_fence import fence
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
check = fence(instance, "dev", sys.argv[2])
with Lease(instance, "dev").held(sys.argv[2], log=print, describe=str):
    check()
    print("working", flush=True)
    sys.stdin.readline()  # frozen here, then resumed and about to write
    try:
        check()
        print("wrote", flush=True)
    except LeaseLost as lost:
        print(f"fenced: {lost}", flush=True)
"""


@contextlib.contextmanager
def _frozen_elsewhere(instance, tmp_path):
    """A run whose step works under dev's lease on another host, stopped (SIGSTOP) after a beat, and a run that
    waits: (frozen run, waiting run, the step's process). Killed on the way out."""
    frozen, waiter = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
    for each in (frozen, waiter):
        instance.add_run(each)
    step = subprocess.Popen([sys.executable, "-c", ELSEWHERE, str(tmp_path / "state"), frozen.run_id],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert step.stdout.readline().strip() == "working"
        time.sleep(2.5)  # a beat from its thread
        os.kill(step.pid, signal.SIGSTOP)
        yield frozen, waiter, step
    finally:
        if step.poll() is None:
            step.kill()
            step.wait(timeout=30)


def _resumed_and_told_to_write(step) -> str:
    os.kill(step.pid, signal.SIGCONT)
    time.sleep(3)  # its beat thread resumes too: a beat or two, which must not take the lease back
    step.stdin.write("write now\n")
    step.stdin.flush()
    return step.stdout.readline().strip()


def test_a_step_frozen_on_another_host_past_the_reclaim_time_writes_nothing_once_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    with open_instance(tmp_path / "state") as instance, _frozen_elsewhere(instance, tmp_path) as (frozen, waiter,
                                                                                                   step):  # fmt: skip
        said: list[str] = []
        taker = threading.Thread(target=Lease(instance, "dev").acquire, args=(waiter.run_id, said.append, str))
        taker.start()
        taker.join(timeout=60)
        assert not taker.is_alive() and any("reclaimed dev's deploy lease" in line for line in said), said
        answer = _resumed_and_told_to_write(step)
        assert answer.startswith(f"fenced: run {frozen.run_id[:8]} no longer holds dev's deploy lease (run "
                                 f"{waiter.run_id[:8]} holds it now"), answer  # fmt: skip
        assert step.wait(timeout=30) == 0
        assert Lease(instance, "dev").holder().run_id == waiter.run_id
        assert instance.get_run_by_id(frozen.run_id).status is dg.DagsterRunStatus.FAILURE


def test_a_frozen_step_resumed_after_the_next_deploy_ended_does_not_take_the_free_lease_back(tmp_path, monkeypatch):
    """The next deploy reclaimed the lease, marked the frozen run failed, deployed and let the lease go. Resumed, the
    frozen step's heartbeat took the free slot back (it does that for a run deleted from the UI), and its fence
    then found it holding the lease: it wrote over that deploy."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    with open_instance(tmp_path / "state") as instance, _frozen_elsewhere(instance, tmp_path) as (frozen, waiter,
                                                                                                   step):  # fmt: skip
        lease = Lease(instance, "dev")
        lease.acquire(waiter.run_id, print, str)  # reclaims it, after the watch
        lease.release(waiter.run_id)  # that deploy is done: the slot is free
        answer = _resumed_and_told_to_write(step)
        assert answer.startswith(f"fenced: run {frozen.run_id[:8]} no longer holds dev's deploy lease (nobody "
                                 "holds it now"), answer  # fmt: skip
        assert Lease(instance, "dev").holder() is None


def test_a_step_whose_slot_was_freed_from_outside_takes_it_back_as_it_writes(tmp_path):
    """A run deleted from the UI frees its slot while its step works: the step's beat takes it back within seconds,
    and a write in between takes it back first, rather than fail a switch that nobody else holds."""
    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        lease = Lease(instance, "dev")
        lease.acquire(run.run_id, print, str)
        instance.delete_run(run.run_id)  # Dagster frees its slot
        assert lease.holder() is None
        fence(instance, "dev", run.run_id)()
        assert lease.holder().run_id == run.run_id
        ended = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(ended)
        lease._slot.free(run.run_id)
        instance.report_run_failed(ended, "marked failed while its step worked: its claim is over")
        with pytest.raises(LeaseLost, match="nobody holds it now"):
            fence(instance, "dev", ended.run_id)()
        assert lease.holder() is None


def test_a_storage_that_does_not_answer_holds_no_write_back_until_someone_could_have_taken_the_lease(
    tmp_path, monkeypatch
):
    """The fence reads the storage: a blip of the database between the API's switch and the site's failed the switch
    and its put-back alike, and left the env split. Nobody can take the lease over within BLIP_S of the step last
    seeing it held (a waiter whose clock is ahead, at the earliest): until then a write goes on; after, it cannot
    tell, and stops."""
    import sqlalchemy.exc

    from coderemote_pipeline.ledger import lease_fence

    with open_instance(tmp_path / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        Lease(instance, "dev").acquire(run.run_id, print, str)
        check = fence(instance, "dev", run.run_id)
        check()

        def down(self):
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))

        monkeypatch.setattr(lease_fence.Slot, "holder", down)
        check()  # seen held just now
        later = time.monotonic() + lease_fence.BLIP_S + 1
        monkeypatch.setattr(lease_fence, "time", type("Clock", (), {"monotonic": staticmethod(lambda: later)}))
        with pytest.raises(LeaseLost, match=r"cannot tell whether it still holds dev's deploy lease: the instance's "
                                            r"storage has not answered for 3 s"):  # fmt: skip
            check()
