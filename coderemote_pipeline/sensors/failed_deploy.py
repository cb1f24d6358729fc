"""Runs the daemon launched, once they end: a failed or terminated deploy's environment is settled
(actions/failure_report.py), and every deploy or rollback that ended updates its environment's delivery figures."""

# No `from __future__ import annotations`: Dagster reads the sensors' annotations to find their resources.
import dagster as dg

from coderemote_pipeline.actions.failure_report import Settled, settle_failed_run
from coderemote_pipeline.ledger.figures import record_figures
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout

# Deploys the CLI executes are settled by the CLI at once; this covers the daemon's, a few seconds later.
INTERVAL_S = 15
# How long a sensor waits for a run that holds the env's lease and deploys nothing (a UI build can take minutes)
# before leaving the settle to waiting_settles_sensor: an evaluation that outlasts the daemon's gRPC timeout is
# called again while the first still waits, and waiting evaluations pile up in the code server.
PATIENCE_S = 5.0


def run_layout(run: dg.DagsterRun, app_source: AppSource) -> AppLayout:
    recorded = run.tags.get(names.APP_LAYOUT_TAG)
    return AppLayout.from_json(recorded) if recorded else app_source.layout


def settle_ended_run(instance: dg.DagsterInstance, run: dg.DagsterRun, log, targets: EnvTargets,
                     app_source: AppSource, environments: Environments,
                     patience: float = PATIENCE_S) -> Settled | None:  # fmt: skip
    env = run.tags.get(names.ENV_TAG)
    if not env or not names.is_deploy_run(run):
        return None
    layout = run_layout(run, app_source)

    def target(env_name: str, outputs: dict[str, str]):
        return targets.target(env_name, outputs, layout)

    settled = settle_failed_run(instance, run, environments.policy(env), target, patience)
    if settled is not None:
        log.info(f"run {run.run_id[:8]}: {settled.text}")
    if settled is None or not settled.waiting:
        record_figures(instance, env, run.run_id)
    return settled


def _settling_sensor(status: dg.DagsterRunStatus, name: str, description: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=status, name=name, minimum_interval_seconds=INTERVAL_S,
                          default_status=dg.DefaultSensorStatus.RUNNING, description=description)  # fmt: skip
    def settle(
        context: dg.RunStatusSensorContext, targets: EnvTargets, app_source: AppSource, environments: Environments
    ) -> None:
        settle_ended_run(context.instance, context.dagster_run, context.log, targets, app_source, environments)

    return settle


failed_deploy_sensor = _settling_sensor(
    dg.DagsterRunStatus.FAILURE,
    "failed_deploy_sensor",
    "After a deploy or rollback run fails: writes what its environment serves into the run's log, puts an "
    "environment the failure left split back on its recorded live release (and an auto_rollback one left on "
    "anything else), and updates the environment's delivery figures.",
)
canceled_deploy_sensor = _settling_sensor(
    dg.DagsterRunStatus.CANCELED,
    "canceled_deploy_sensor",
    "After a deploy or rollback run is terminated (the UI's Terminate): the same as failed_deploy_sensor, so a run "
    "stopped half-way never leaves its environment split or, where auto_rollback is on, unverified.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="delivery_figures_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a deploy or rollback run succeeds: materializes its environment's delivery figures.",
)
def delivery_figures_sensor(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    env = run.tags.get(names.ENV_TAG)
    if env and names.is_deploy_run(run):
        record_figures(context.instance, env, run.run_id)
