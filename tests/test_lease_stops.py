"""A stop signal (Ctrl-C, `kill PID`) landing at any point where CPython runs a handler while a step or a settle
enters the env's lease never leaves its beat running. The raise is kept, as a caller handling it keeps it (Dagster
keeps a step's error while the run's settle, in the same process, waits for that step to stop working)."""

import subprocess
import sys

import pytest

from coderemote_pipeline.ledger.deferred_signals import entered_whole

EVERY_POINT = """
import signal, sys, threading
from pathlib import Path
import dagster as dg
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
armed = [False]
start = threading.Thread.start
def start_then_armed(thread):
    start(thread)
    if thread.name.startswith("lease-beat"):
        armed[0] = True
threading.Thread.start = start_then_armed
kept, left_beating, n = [], [], 0
while True:  # the n-th point after the beat's thread started; until the block is entered
    n += 1
    run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    lease, points, armed[0] = Lease(instance, f"env{n}"), [0], False
    def signal_at_the_nth_point(frame, event, arg):
        # Where CPython runs a handler: as a function starts or resumes, and after a call into C returns.
        if armed[0] and event in ("call", "c_return"):
            points[0] += 1
            if points[0] == n:
                signal.raise_signal(signal.SIGINT)
    if sys.argv[2] == "step":
        entry = lease.held(run.run_id, log=print, describe=str)
    else:
        entry = lease.settling(run.run_id, defer_to=lambda _: False)
    try:
        sys.setprofile(signal_at_the_nth_point)
        with entry:
            sys.setprofile(None)
            break
    except KeyboardInterrupt as stopped:
        sys.setprofile(None)
        kept.append(stopped)
    if any(t.name.startswith("lease-beat") and t.is_alive() for t in threading.enumerate()):
        left_beating.append(n)
print(n - 1, "points; left beating after", left_beating, flush=True)
"""


STOPPED_AS_IT_SAYS_IT_WORKS = """
import signal, sys, time
from pathlib import Path
import dagster as dg
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.lease_beat import Heart
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
instance.add_run(run)
write = Heart.write
def write_then_stopped(heart, *args, **kwargs):
    write(heart, *args, **kwargs)
    signal.raise_signal(signal.SIGINT)  # its row says at work; its beat has not started
Heart.write = write_then_stopped
lease = Lease(instance, "dev")
try:
    if sys.argv[2] == "step":
        with lease.held(run.run_id, log=print, describe=str):
            print("entered", flush=True)
    else:
        with lease.settling(run.run_id, defer_to=lambda _: False):
            print("entered", flush=True)
except KeyboardInterrupt:
    print("stopped", flush=True)
Heart.write = write
print("at work" if lease.heart.elsewhere("", "") else "nobody at work", flush=True)
"""


@pytest.mark.parametrize("entering", ["step", "settle"])
def test_a_stop_as_the_lease_is_taken_leaves_nobody_at_work(tmp_path, entering):
    """A step says it is at work as it takes the lease, before its beat starts (helper-34: a Ctrl-C there made the
    stopped deploy's own settle wait 6 s for its own step, named as another holder)."""
    done = subprocess.run([sys.executable, "-c", STOPPED_AS_IT_SAYS_IT_WORKS, str(tmp_path / "state"), entering],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.splitlines() == ["stopped", "nobody at work"], done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("entering", ["step", "settle"])
def test_a_stop_at_any_point_of_entering_the_lease_never_leaves_its_beat_running(tmp_path, entering):
    """Before: a stop landing as contextlib's `__enter__` returned, its generator already inside the beat's block,
    left the beat beating "working" for as long as the raise was kept."""
    done = subprocess.run([sys.executable, "-c", EVERY_POINT, str(tmp_path / "state"), entering],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    points, _, rest = done.stdout.partition(" points; ")
    assert rest.strip() == "left beating after []", done.stdout + done.stderr[-2000:]
    assert int(points) >= 10, done.stdout  # the beat's start and the entry's return were all visited


def test_entered_whole_keeps_contextmanager_semantics():
    trail = []

    @entered_whole
    def block(value):
        trail.append("enter")
        try:
            yield value
        except ValueError:
            trail.append("handled")
        finally:
            trail.append("exit")

    with block(7) as got:
        assert got == 7
    with block(8):
        raise ValueError("swallowed, as contextlib's generator handling it does")
    with pytest.raises(KeyError), block(9):
        raise KeyError("passed through")
    assert trail == ["enter", "exit", "enter", "handled", "exit", "enter", "exit"]

    @entered_whole
    def never_yields():
        return
        yield

    with pytest.raises(RuntimeError, match="didn't yield"), never_yields():
        pass


def test_entering_one_entry_again_inside_its_block_leaves_the_outer_block_its_generator():
    """contextlib refuses a second entry (its arguments are gone); that error must not close the first block."""
    trail = []

    @entered_whole
    def block():
        try:
            yield
        finally:
            trail.append("closed")

    entry = block()
    with entry:
        with pytest.raises(AttributeError), entry:
            pass
        trail.append("outer block goes on")
    assert trail == ["outer block goes on", "closed"]
