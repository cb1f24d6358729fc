"""One deploy process of the lease's stress test (tests/test_lease_stress.py): run after run of one environment,
logging when each step starts and stops working. A run is one or two steps in this process (redeploy_job), or two
steps at once, here and in a forked process, then a last one (deploy_job's parallel branches, then smoke_result).
A stop signal (SIGINT) fails the run at work, which this process then settles, and it goes on with the next run."""

import contextlib
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease, LeaseBusy, LeaseLost

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
Say = Callable[[str, str], None]


@contextlib.contextmanager
def logging_to(log: Path):
    with log.open("a", buffering=1) as out:
        yield lambda event, run_id: out.write(f"{event} {time.time():.6f} {run_id}\n")


def step(lease: Lease, run_id: str, say: Say, rng: random.Random) -> None:
    with lease.held(run_id, log=lambda _: None, describe=str):
        try:  # the start inside: a stop landing as its line is written still writes the end
            say("start", run_id)
            time.sleep(rng.uniform(0.05, 0.6))
        finally:  # a stop (Ctrl-C) ends the work here too
            say("end", run_id)


def sibling(state: Path, logs: Path, run_id: str, seed: int) -> int:
    """The other parallel step of `run_id`, in a process of its own (it outlives this one if this one is killed)."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: its own instance (nothing of the parent's storage is used after the fork)
        with (open_instance(state) as instance, logging_to(logs / f"child-{os.getpid()}.log") as say,
              contextlib.suppress(LeaseLost)):
            step(Lease(instance, "dev"), run_id, say, random.Random(seed))
    finally:
        os._exit(0)


def settle(lease: Lease, run_id: str, say: Say, rng: random.Random) -> None:
    """What the CLI does after its run ended: put the env back, under the lease's settle step."""
    try:
        with lease.settling(run_id, defer_to=lambda _: True, patience=3.0) as holder:
            if holder is None:  # held: else a deploy of the env owns it now, and is settled in turn
                try:
                    say("start", f"{run_id}:settle")
                    time.sleep(rng.uniform(0.05, 0.3))
                finally:
                    say("end", f"{run_id}:settle")
    except LeaseBusy:
        say("busy", run_id)


def deploy(instance: dg.DagsterInstance, state: Path, log: Path, run_id: str, say: Say, rng: random.Random) -> None:
    lease = Lease(instance, "dev")
    if rng.random() < 0.3:
        child = sibling(state, log.parent, run_id, rng.randrange(10**6))
        try:
            step(lease, run_id, say, rng)
        finally:
            os.waitpid(child, 0)
    else:
        for _ in range(rng.choice((1, 2))):
            step(lease, run_id, say, rng)
            time.sleep(rng.uniform(0.0, 0.2))  # the pause between two steps of one run
    step(lease, run_id, say, rng)
    lease.release(run_id)


def one_run(instance: dg.DagsterInstance, state: Path, log: Path, say: Say, rng: random.Random) -> None:
    run = dg.DagsterRun(job_name="deploy_job", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    say("run", run.run_id)
    try:
        deploy(instance, state, log, run.run_id, say, rng)
        say("done", run.run_id)
    except LeaseLost:
        say("lost", run.run_id)
        settle(Lease(instance, "dev"), run.run_id, say, rng)
    except KeyboardInterrupt:
        # Ctrl-C or `kill PID` (cli/outlive.py): the run fails and this process settles it, the raise kept
        # meanwhile, as Dagster keeps a step's error.
        say("stopped", run.run_id)
        if (stopped := instance.get_run_by_id(run.run_id)) is not None and stopped.status not in TERMINAL:
            instance.report_run_failed(stopped, "stopped (Ctrl-C)")
        settle(Lease(instance, "dev"), run.run_id, say, rng)
    ended = instance.get_run_by_id(run.run_id)
    if ended is not None and ended.status not in TERMINAL:
        instance.report_run_canceled(ended, "the stress test's run ended")


def main(state: Path, log: Path, seed: int, until: float) -> None:
    rng = random.Random(seed)
    with open_instance(state) as instance, logging_to(log) as say:
        while True:
            try:
                if time.time() >= until:
                    break
                one_run(instance, state, log, say, rng)
            except KeyboardInterrupt:  # a stop between runs, or in a settle: its run is left to the reclaim time
                say("stopped", "-")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
