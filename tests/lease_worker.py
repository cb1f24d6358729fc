"""One deploy process of the lease's stress test (tests/test_lease_stress.py): run after run of one environment,
each of one or two steps under the lease, logging when each step starts and stops working."""

import random
import sys
import time
from pathlib import Path

import dagster as dg

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease, LeaseBusy, LeaseLost

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def settle(lease: Lease, run_id: str, say, rng: random.Random) -> None:
    """What the CLI does after its run ended: put the env back, under the lease's settle step."""
    try:
        with lease.settling(run_id, defer_to=lambda _: True, patience=3.0) as holder:
            if holder is None:  # held: else a deploy of the env owns it now, and is settled in turn
                say("start", f"{run_id}:settle")
                time.sleep(rng.uniform(0.05, 0.3))
                say("end", f"{run_id}:settle")
    except LeaseBusy:
        say("busy", run_id)


def main(state: Path, log: Path, seed: int, until: float) -> None:
    rng = random.Random(seed)
    with open_instance(state) as instance, log.open("a", buffering=1) as out:

        def say(event: str, run_id: str) -> None:
            out.write(f"{event} {time.time():.6f} {run_id}\n")

        while time.time() < until:
            run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED)
            instance.add_run(run)
            say("run", run.run_id)
            lease = Lease(instance, "dev")
            try:
                for _ in range(rng.choice((1, 2))):
                    with lease.held(run.run_id, log=lambda _: None, describe=str):
                        say("start", run.run_id)
                        time.sleep(rng.uniform(0.05, 0.6))
                        say("end", run.run_id)
                    time.sleep(rng.uniform(0.0, 0.2))  # the pause between two steps of one run
                lease.release(run.run_id)
                say("done", run.run_id)
            except LeaseLost:
                say("lost", run.run_id)
                settle(lease, run.run_id, say, rng)
            ended = instance.get_run_by_id(run.run_id)
            if ended is not None and ended.status not in TERMINAL:
                instance.report_run_canceled(ended, "the stress test's run ended")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
