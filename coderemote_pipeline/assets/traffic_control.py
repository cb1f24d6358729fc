"""The UI's say over a traffic shift in flight: launch `traffic_control_job` with the env and promote or abort,
the same request `coderemote-pipeline traffic ENV --promote|--abort` makes. The shift acts on it within about a
second; this run ends at once, naming the shift it asked."""

# No `from __future__ import annotations`: Dagster reads the op's annotations to find its config class.
import dagster as dg

from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import UnknownEnvironmentError, check_env
from coderemote_pipeline.rules.errors import config_text_refusal


class TrafficControl(dg.Config):
    env: str
    action: str  # promote or abort
    by: str
    reason: str = ""


@dg.op(description="Ask the env's shift in flight to promote to 100% now, or to abort (weight 0, the run fails).")
def ask_shift(context: dg.OpExecutionContext, config: TrafficControl) -> None:
    try:
        check_env(config.env)
    except UnknownEnvironmentError as exc:
        raise dg.Failure(description=str(exc)) from None
    if config.action not in (shifts.PROMOTE, shifts.ABORT):
        raise dg.Failure(description=f"unknown action {config.action!r}: use promote or abort")
    # Recorded in the shift's verdict ("promoted by alice: ok") and listed: the CLI's --by and --reason rules.
    if not config.by.strip():
        raise dg.Failure(description="say who asks: config `by` must not be empty")
    if refusal := config_text_refusal(config.by, config.reason):
        raise dg.Failure(description=refusal)
    state = shifts.read_state(context.instance, config.env)
    if state is None or not state.in_flight:
        raise dg.Failure(description=f"no traffic shift is in flight in {config.env}: nothing to {config.action}")
    shifts.ask(context.instance, config.env, config.action, config.by.strip(), config.reason)
    context.log.info(f"asked the shift of {state.release} in {config.env} (run {state.run_id}) to {config.action}")


@dg.job(
    name=names.TRAFFIC_CONTROL_JOB,
    executor_def=dg.in_process_executor,
    description="Promote or abort the traffic shift in flight in one environment (config: env, action, by).",
)
def traffic_control_job() -> None:
    ask_shift()
