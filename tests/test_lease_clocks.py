"""The deploy lease judged on no clock but the reader's own (ledger/lease_silence.py): a holder on another host
whose clock is behind beats as it should and keeps the lease, and is reclaimed once it dies. (One whose clock is
ahead and that dies keeps it for its skew on top: its beats look at work until then. Not covered.)"""

import subprocess
import sys
import threading
import time

import dagster as dg

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease

# A step at work under dev's lease on "another host" (its process place is not this one's, so nothing here can see
# it alive), whose clock is SKEW seconds off this one's.
SKEWED = """
import sys, time
real = time.time
time.time = lambda: real() + float(sys.argv[3])
from pathlib import Path
from coderemote_pipeline.ledger import lease_workers
lease_workers.process_place = lambda: "another-host/its-boot/its-namespace"
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
for pause in [float(x) for x in sys.argv[4:]]:  # steps of 3 s, with pauses between them
    with Lease(instance, "dev").held(sys.argv[2], log=print, describe=str):
        print("working", flush=True)
        time.sleep(3)
    time.sleep(pause)  # between two steps (the next step's process starting): no beat, the lease kept
with Lease(instance, "dev").held(sys.argv[2], log=print, describe=str):
    print("working", flush=True)
    time.sleep(600)
"""


def _skewed_holder(instance, tmp_path, skew: float, *pauses: float):
    run, waiter = (dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED) for _ in "ab")
    for each in (run, waiter):
        instance.add_run(each)
    step = subprocess.Popen([sys.executable, "-c", SKEWED, str(tmp_path / "state"), run.run_id, str(skew),
                             *map(str, pauses)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert step.stdout.readline().strip() == "working"
    return run, waiter, step


def test_a_holder_whose_clock_is_behind_keeps_the_lease_while_it_beats(tmp_path, monkeypatch):
    """Its beats looked 45 s old the moment they were written: the next deploy reclaimed its lease mid-switch
    ("stopped heartbeating 46 s ago (its process is gone)"), and both switched dev at once."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    with open_instance(tmp_path / "state") as instance:
        run, waiter, step = _skewed_holder(instance, tmp_path, -45.0)
        try:
            said: list[str] = []
            taker = threading.Thread(target=Lease(instance, "dev").acquire, args=(waiter.run_id, said.append, str),
                                     daemon=True)  # fmt: skip
            taker.start()
            taker.join(timeout=12)  # the reclaim time four times over, and twice the watch
            assert taker.is_alive(), said  # still waiting: its holder beats
            assert Lease(instance, "dev").holder().run_id == run.run_id
            assert Lease(instance, "dev").abandoned_by(run.run_id) is None
            assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED
        finally:
            step.kill()
            step.wait(timeout=30)
        started = time.monotonic()
        taker.join(timeout=60)  # dead now: its last beat stays the same, and the waiter reclaims it
        assert not taker.is_alive() and any("reclaimed dev's deploy lease" in line for line in said), said
        assert time.monotonic() - started < 3 + 6 + 3, said
        assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE


def test_a_one_off_look_at_a_dead_holder_watches_its_beat_before_it_calls_it_abandoned(tmp_path, monkeypatch):
    """`retry --mark-failed` and the sensor for dead runs look once: an old beat is watched for a few seconds (a
    holder whose clock is behind changes it meanwhile), then called abandoned."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    with open_instance(tmp_path / "state") as instance:
        run, _, step = _skewed_holder(instance, tmp_path, -45.0)
        try:
            started = time.monotonic()
            assert Lease(instance, "dev").abandoned_by(run.run_id) is None
            assert "its last heartbeat" in Lease(instance, "dev").working(run.run_id)
            assert time.monotonic() - started < 6  # it saw the beat change (every 2 s): it did not watch it out
        finally:
            step.kill()
            step.wait(timeout=30)
        time.sleep(4)
        started = time.monotonic()
        why = Lease(instance, "dev").abandoned_by(run.run_id)
        # Watched until it had read the same beat for the reclaim time (3 s here; 6 s, ALIVE_S, with the usual 30 s).
        assert why is not None and "stopped heartbeating" in why and time.monotonic() - started > 2.5, why


def test_a_holder_whose_clock_is_behind_keeps_the_lease_through_a_pause_between_its_steps(tmp_path, monkeypatch):
    """Watching its beat for a few seconds was not enough: past the watch, its beat's age went back to its own clock,
    and the 8 s between two of its steps read as 53 s of silence. A waiter that saw its beats appear measures its
    clock's offset, and an 8 s pause is 8 s."""
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "12")  # above the watch (6 s), below the skew (45 s)
    with open_instance(tmp_path / "state") as instance:
        run, waiter, step = _skewed_holder(instance, tmp_path, -45.0, 8.0, 8.0)
        try:
            said: list[str] = []
            taker = threading.Thread(target=Lease(instance, "dev").acquire, args=(waiter.run_id, said.append, str),
                                     daemon=True)  # fmt: skip
            taker.start()
            taker.join(timeout=20)  # its first step's end, an 8 s pause, its second step, and into the next pause
            assert taker.is_alive(), said
            assert Lease(instance, "dev").holder().run_id == run.run_id
        finally:
            step.kill()
            step.wait(timeout=30)
        taker.join(timeout=60)
        assert not taker.is_alive() and any("reclaimed dev's deploy lease" in line for line in said), said
