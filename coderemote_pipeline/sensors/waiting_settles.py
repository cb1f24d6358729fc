"""Failed runs whose settle is waiting: their env's lease was held, past the sensor's patience, by a run that
deploys nothing (a stage built alone from the UI). They carry the tag `coderemote/settle: waiting`; this sensor
tries each again every tick, and tags it `settled` once its verdict is in its log."""

# No `from __future__ import annotations`: Dagster reads the sensors' annotations to find their resources.
import time

import dagster as dg

from coderemote_pipeline.actions.failure_report import ENDED, already_settled
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
    waiting = instance.get_runs(
        dg.RunsFilter(tags={names.SETTLE_TAG: names.SETTLE_WAITING}, statuses=list(ENDED)), limit=BATCH, ascending=True
    )
    deadline, done, busy = time.monotonic() + budget_s, [], set()
    for run in waiting:
        env, left = run.tags.get(names.ENV_TAG), deadline - time.monotonic()
        if left <= 0:
            break
        if env in busy:
            continue  # its lease is still held: the other runs of that env wait too, the other envs need not
        try:
            settled = settle_ended_run(instance, run, log, targets, app_source, environments, min(PATIENCE_S, left))
        except Exception as exc:  # one run's error must not keep the others waiting behind it
            _gave_up(instance, run, exc, log)
            continue
        if settled is not None and settled.waiting:
            busy.add(env)
        elif settled is not None or already_settled(instance, run.run_id) or not names.is_deploy_run(run):
            instance.add_run_tags(run.run_id, {names.SETTLE_TAG: names.SETTLE_DONE})
            done.append(run.run_id)
        # else: another process settles it at this moment; it stays waiting until its verdict is in the log
    return done, len(waiting)


def _gave_up(instance: dg.DagsterInstance, run: dg.DagsterRun, exc: Exception, log) -> None:
    env = run.tags.get(names.ENV_TAG, "its env")
    text = (f"settle failed: {type(exc).__name__}: {str(exc)[:300]}. Check what {env} serves with "
            f"`coderemote-pipeline status {env}` and roll back by hand if it is split")  # fmt: skip
    log.warning(f"run {run.run_id[:8]}: {text}")
    instance.report_engine_event(text, run)
    instance.add_run_tags(run.run_id, {names.SETTLE_TAG: names.SETTLE_FAILED})


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
