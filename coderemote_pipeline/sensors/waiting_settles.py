"""Failed runs whose settle is waiting: their env's lease was held, past the sensor's patience, by a run that
deploys nothing (a stage built alone from the UI). They carry the tag `coderemote/settle: waiting`; this sensor
tries each again every tick, and tags it `settled` once its verdict is in its log."""

# No `from __future__ import annotations`: Dagster reads the sensors' annotations to find their resources.
import time

import dagster as dg

from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.sensors.failed_deploy import INTERVAL_S, PATIENCE_S, settle_ended_run

# Under the daemon's gRPC timeout for one evaluation (60 s), whatever the number of runs waiting.
BUDGET_S = 30.0
BATCH = 10


def settle_waiting_runs(instance: dg.DagsterInstance, log, targets: EnvTargets, app_source: AppSource,
                        environments: Environments, budget_s: float = BUDGET_S) -> tuple[list[str], int]:  # fmt: skip
    """Try the settle of each run tagged waiting, oldest first, within `budget_s`: the runs settled, and how many
    were waiting."""
    waiting = instance.get_runs(dg.RunsFilter(tags={names.SETTLE_TAG: names.SETTLE_WAITING}), limit=BATCH)
    deadline, done = time.monotonic() + budget_s, []
    for run in reversed(waiting):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        settled = settle_ended_run(instance, run, log, targets, app_source, environments, min(PATIENCE_S, left))
        if settled is None or not settled.waiting:
            instance.add_run_tags(run.run_id, {names.SETTLE_TAG: names.SETTLE_DONE})
            done.append(run.run_id)
    return done, len(waiting)


@dg.sensor(
    name="waiting_settles_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Settles the failed or terminated deploys whose settle had to wait: their environment's deploy "
    "lease was held by a run that deploys nothing (a stage built alone from the UI). Each carries the run tag "
    "coderemote/settle=waiting until its environment is read and, where needed, put back.",
)
def waiting_settles_sensor(
    context: dg.SensorEvaluationContext, targets: EnvTargets, app_source: AppSource, environments: Environments
) -> dg.SkipReason:
    done, waiting = settle_waiting_runs(context.instance, context.log, targets, app_source, environments)
    if not waiting:
        return dg.SkipReason("no settle is waiting")
    settled = f"settled {len(done)} waiting run(s)" + (f": {', '.join(r[:8] for r in done)}" if done else "")
    return dg.SkipReason(f"{settled}; {waiting - len(done)} still waiting for their env's lease")
