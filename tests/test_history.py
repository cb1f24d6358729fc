from coderemote_pipeline.rules.delivery import DAY_S, Deploy, delivery_figures


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
