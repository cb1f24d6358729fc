"""The watch of a shift's step, on scripted traffic: what ends a step, the row each end leaves for the UI, and the
request a person makes from the UI."""

from types import SimpleNamespace

import dagster as dg
import pytest

from coderemote_pipeline.actions.shift import PASSED, PROMOTED, Halted, Watcher
from coderemote_pipeline.ledger.shifts import ABORT, PROMOTE, Control
from coderemote_pipeline.rules.rollout import Analysis
from coderemote_pipeline.rules.traffic import Traffic

ANALYSIS = Analysis(max_error_rate=0.05, max_p99_ms=500, min_requests=10, every="10ms")


class ScriptedRuntime:
    """The runtime's `traffic` answers: the new version's figures as given, the previous one's steady."""

    def __init__(self, new: Traffic):
        self.new = new

    def traffic(self, env: str, since: float) -> dict[str, Traffic]:
        return {"8": self.new, "7": Traffic(90, 0, (5.0,) * 90)}


def _watch(new: Traffic, control: Control | None = None, hold_s: float = 0.05) -> tuple[str, list]:
    rows: list = []
    target = SimpleNamespace(env="prod", runtime=ScriptedRuntime(new))
    watcher = Watcher(target, ANALYSIS, lambda: control, rows.append, sleep=lambda _: None)
    return watcher.watch("8", "7", hold_s=hold_s, phase="step", step=0, weight=10), rows


def test_a_step_with_enough_good_requests_passes():
    outcome, rows = _watch(Traffic(20, 0, (12.0,) * 20))
    assert outcome == PASSED and rows[-1].verdict == "passed over 20 requests"
    assert rows[-1].metadata()["new_weight"] == 10 and rows[-1].metadata()["previous_requests"] == 90


def test_errors_halt_the_step_naming_the_metric_its_value_and_the_threshold():
    with pytest.raises(Halted) as halted:
        _watch(Traffic(8, 4, (12.0,) * 8), hold_s=60)  # before min_requests: errors are judged at once
    assert str(halted.value) == "step at 10%: error rate 50.0% > threshold 5.0% over 8 requests"
    assert halted.value.verdict.metric == "error_rate"


def test_slow_answers_halt_on_p99():
    with pytest.raises(Halted, match=r"latency p99 900 ms > threshold 500 ms over 20 requests"):
        _watch(Traffic(20, 0, (900.0,) * 20), hold_s=60)


def test_no_data_is_not_a_pass():
    with pytest.raises(Halted, match=r"ended with 3 requests < min_requests 10: no data is not a pass"):
        _watch(Traffic(3, 0, (5.0,) * 3))


def test_a_person_promotes_or_aborts_and_the_row_says_who():
    outcome, rows = _watch(Traffic(), Control(PROMOTE, "alice", "looks good", 0.0), hold_s=60)
    assert outcome == PROMOTED and rows[-1].verdict == "promoted by alice: looks good"
    with pytest.raises(Halted) as halted:
        _watch(Traffic(), Control(ABORT, "bob", "", 0.0), hold_s=60)
    assert str(halted.value) == "aborted by bob" and halted.value.by == "bob"


@pytest.mark.parametrize(
    ("env", "by", "said"),
    [
        ("qa", "alice", "unknown environment 'qa': choose one of dev, staging, prod"),
        ("dev", "  ", "say who asks: config `by` must not be empty"),
        ("dev", "alice\nbob", "must be one line of text"),
        ("dev", "alice", "no traffic shift is in flight in dev: nothing to promote"),
    ],
)
def test_the_ui_s_traffic_control_refuses_what_the_cli_refuses(env, by, said):
    """Launched from the UI, the request meets the CLI's rules: a known env, someone named on one line."""
    from coderemote_pipeline.assets.traffic_control import traffic_control_job

    config = {"ops": {"ask_shift": {"config": {"env": env, "action": PROMOTE, "by": by, "reason": "ok"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        result = traffic_control_job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert said in failure.description
