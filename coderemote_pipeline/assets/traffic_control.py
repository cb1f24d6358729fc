"""The UI's say over a traffic shift in flight: launch `traffic_control_job` with the env and promote or abort,
the same request `coderemote-pipeline traffic ENV --promote|--abort` makes. The shift acts on it within about a
second; this run ends at once, naming the shift it asked."""

# No `from __future__ import annotations`: Dagster reads the op's annotations to find its config class.
import dagster as dg

from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import ENVIRONMENTS


class TrafficControl(dg.Config):
    env: str
    action: str  # promote or abort
    by: str
    reason: str = ""


@dg.op(description="Ask the env's shift in flight to promote to 100% now, or to abort (weight 0, the run fails).")
def ask_shift(context: dg.OpExecutionContext, config: TrafficControl) -> None:
    if config.env not in ENVIRONMENTS:
        raise dg.Failure(description=f"unknown environment {config.env!r}: use one of {', '.join(ENVIRONMENTS)}")
    if config.action not in (shifts.PROMOTE, shifts.ABORT):
        raise dg.Failure(description=f"unknown action {config.action!r}: use promote or abort")
    state = shifts.read_state(context.instance, config.env)
    if state is None or not state.in_flight:
        raise dg.Failure(description=f"no traffic shift is in flight in {config.env}: nothing to {config.action}")
    shifts.ask(context.instance, config.env, config.action, config.by, config.reason)
    context.log.info(f"asked the shift of {state.release} in {config.env} (run {state.run_id}) to {config.action}")


@dg.job(
    name=names.TRAFFIC_CONTROL_JOB,
    executor_def=dg.in_process_executor,
    description="Promote or abort the traffic shift in flight in one environment (config: env, action, by).",
)
def traffic_control_job() -> None:
    ask_shift()
