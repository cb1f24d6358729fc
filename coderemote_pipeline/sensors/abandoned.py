"""Runs whose process is gone, marked failed by the sensors so that nothing waits behind them.

A deploy executed by the CLI runs in the CLI's own process: killed (SIGKILL, a closed laptop, `local down` under
its warm process), its run stays STARTED, and the instance's run queue (one run per environment) would hold every
later deploy of that environment behind it, forever. A run is taken as gone when it holds the env's deploy lease
and stopped heartbeating past the reclaim time, or when the process that executes it (its `executed_by` tag) was
on this host, in this pid namespace, and no longer exists. Marked failed, the failed-deploy sensor settles it: the
env is left whole.
"""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.ledger.history import RUNNING
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.process_place import process_gone
from coderemote_pipeline.rules import names


def reap_abandoned(instance: dg.DagsterInstance, env: str) -> list[str]:
    """Mark failed each running run of `env` whose process is gone; why, for each one marked."""
    lease, reaped = Lease(instance, env), []
    for record in instance.get_run_records(dg.RunsFilter(tags={names.ENV_TAG: env}, statuses=RUNNING), limit=5):
        run = record.dagster_run
        if lease.working(run.run_id):
            continue  # it holds the lease and heartbeats: a step works, whatever became of the process that began it
        why = lease.abandoned_by(run.run_id) or process_gone(run)
        if why is not None and lease.reap(run.run_id, why):
            reaped.append(why)
    return reaped
