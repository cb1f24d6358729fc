import pytest

from coderemote_pipeline.rules.delivery import DAY_S, Deploy, delivery_figures
from coderemote_pipeline.rules.errors import DeployRefused
from coderemote_pipeline.usecases.history import MAX_DAYS, check_days


def _d(run, started, ended, status="SUCCESS", trigger="cli", rolled_back=False, commit="c1"):
    return Deploy(run, "v1", commit, trigger, status, started, ended, rolled_back)


def test_delivery_figures_over_a_window():
    history = [  # newest first
        _d("r5", 900.0, 930.0),  # restores r4
        _d("r4", 800.0, 820.0, status="FAILURE"),
        _d("r3", 700.0, 705.0, trigger="rollback"),  # rollbacks are not deploys
        _d("r2", 500.0, 560.0, status="FAILURE", rolled_back=True),
        _d("r1", 100.0, 160.0, commit="c0"),
    ]
    commits = {"c0": 40.0, "c1": 800.0}
    figures = delivery_figures(history, 2 * DAY_S, commits.get)
    assert figures["deploys"] == 4 and figures["failed_deploys"] == 2
    assert figures["deploy_frequency_per_day"] == 1.0  # r1 and r5 in two days
    assert figures["change_failure_rate"] == 0.5
    assert figures["lead_time_s"] == (120.0 + 130.0) / 2  # median of r1 (160-40) and r5 (930-800)
    # r2 restored within its own run (60 s); r4 restored when r5 went live (930 - 800 = 130 s).
    assert figures["recovery_time_s"] == 95.0
    # r4 (failed) made r5 necessary: one rework deploy of four; r2's rollback restored it, r3 is not a deploy.
    assert figures["rework_rate"] == 0.5


def test_no_history_gives_zeroes():
    figures = delivery_figures([], DAY_S, lambda _: None)
    assert figures["deploys"] == 0 and figures["change_failure_rate"] == 0.0 and figures["lead_time_s"] == 0.0


def test_outcomes():
    assert _d("a", 0, 1).outcome == "live"
    assert _d("a", 0, 1, status="FAILURE").outcome == "failed"
    assert _d("a", 0, 1, status="FAILURE", rolled_back=True).outcome == "rolled back"
    assert _d("a", 0, None, status="STARTED").seconds is None


def test_a_deploy_stopped_before_release_is_no_change_failure():
    """A build, check or publish that failed changed nothing users get: listed as stopped, counted apart."""

    def failed(run, started, step):
        return Deploy(run, "v1", "c1", "cli", "FAILURE", started, started + 10, False, failed_step=step)

    history = [
        _d("r6", 600.0, 630.0),
        failed("r5", 500.0, "smoke_result"),  # users got it: a change failure, restored by r6
        failed("r4", 400.0, "backend_checks"),  # a failing test
        failed("r3", 300.0, "api_image"),  # a Dockerfile that does not build
        failed("r2", 200.0, "infra_stack"),  # the stack users are served from may have changed
        failed("r1", 100.0, ""),  # a killed run: where it stopped is unknown
    ]
    assert [d.outcome for d in history] == ["live", "failed", "stopped", "stopped", "failed", "failed"]
    figures = delivery_figures(history, DAY_S, lambda _: None)
    assert figures["deploys"] == 4 and figures["failed_deploys"] == 3 and figures["stopped_before_release"] == 2
    # No commit's time known: the lead time is not measured (`history` says n/a, not "0s").
    assert figures["lead_times_known"] == 0
    assert figures["change_failure_rate"] == 0.75
    # r1 → r2 → r5 → r6 follow a failure each: the stopped r3 and r4 are not the rework of r2.
    assert figures["rework_rate"] == 0.75
    # Each failure is restored when r6 goes live at 630 s; the stopped ones needed no recovery.
    assert figures["recovery_time_s"] == round(((630 - 100) + (630 - 200) + (630 - 500)) / 3, 1)


@pytest.mark.parametrize("days", [0.5, 30.0, MAX_DAYS])
def test_a_window_of_days_in_range_is_taken(days):
    assert check_days(days) == days


@pytest.mark.parametrize("days", [0.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e300, 1e6, MAX_DAYS + 1])
def test_a_window_that_is_not_a_number_of_days_in_range_is_refused(days):
    """nan reached Dagster's SQL filter, inf and 1e300 overflowed, a million days went back to year -711."""
    with pytest.raises(DeployRefused, match=rf"must be a number of days more than 0 and at most {MAX_DAYS}"):
        check_days(days)


def test_a_rollback_counts_as_one_whatever_launched_it():
    """A retry of a rollback (trigger "retry") or rollback_job from the UI ("ui") had counted as a forward deploy."""
    for trigger in ("retry", "ui"):
        retried = Deploy("r", "v1", "c1", trigger, "SUCCESS", 0.0, 1.0, False, rollback=True)
        assert not retried.forward and retried.how == f"{trigger} rollback"
        assert delivery_figures([retried], DAY_S, lambda _: 0.0)["deploys"] == 0
    assert _d("a", 0, 1, trigger="rollback").how == "rollback" and _d("a", 0, 1, trigger="retry").forward
