"""`--executor auto` from evidence: one process (the builds overlap there too) unless this app's own recorded checks
make a process per step pay for its starts."""

import uuid

import dagster as dg
import pytest

from coderemote_pipeline.ledger.job_choice import PER_STEP_OVERHEAD_S, STEPS, check_seconds, choose_job
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.stage_seconds import own_seconds

APP = "/srv/git/code-remote.git"
COMMIT = "a" * 40


def _run_with_checks(instance, remote: str, backend_s: float, frontend_s: float, *, ran: bool = True) -> str:
    """A successful run of `remote`'s app whose checks took these seconds per side (as the check steps record)."""
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name=names.REDEPLOY_JOB, run_id=run_id, status=dg.DagsterRunStatus.SUCCESS,
                                   tags={names.APP_REMOTE_TAG: remote}))  # fmt: skip
    for asset, seconds in ((names.API_IMAGE, backend_s), (names.FRONTEND_BUNDLE, frontend_s)):
        evaluation = dg.AssetCheckEvaluation(
            asset_key=names.key(asset), check_name="tests", passed=True,
            metadata={"seconds": seconds, "ran": ran, "reused_from_run": "" if ran else "earlier"},
        )  # fmt: skip
        event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
                                job_name=names.REDEPLOY_JOB, event_specific_data=evaluation)  # fmt: skip
        instance.report_dagster_event(event, run_id=run_id)
    return run_id


@pytest.mark.parametrize(
    ("backend_s", "frontend_s", "job"),
    [
        (1.2, 0.1, names.REDEPLOY_JOB),  # the example app's checks: a second, one process wins
        (120.0, 60.0, names.DEPLOY_JOB),  # tests of minutes on both sides: overlapping them outweighs the starts
        (120.0, 0.5, names.REDEPLOY_JOB),  # one long side and one short: nothing worth a process per step
    ],
)
def test_auto_follows_the_apps_own_check_seconds(backend_s, frontend_s, job):
    with dg.DagsterInstance.ephemeral() as instance:
        assert choose_job(instance, COMMIT, app_remote=APP) == names.REDEPLOY_JOB  # nothing recorded yet
        _run_with_checks(instance, APP, backend_s, frontend_s)
        assert check_seconds(instance, APP) == {"backend": backend_s, "frontend": frontend_s}
        assert choose_job(instance, COMMIT, app_remote=APP) == job
        # Another app's evidence is not this app's.
        assert choose_job(instance, COMMIT, app_remote="/srv/git/other.git") == names.REDEPLOY_JOB
        assert choose_job(instance, COMMIT, "parallel", app_remote=APP) == names.DEPLOY_JOB
        assert choose_job(instance, COMMIT, "serial", app_remote=APP) == names.REDEPLOY_JOB
        assert PER_STEP_OVERHEAD_S * STEPS < 60.0


def test_reused_checks_are_no_evidence():
    with dg.DagsterInstance.ephemeral() as instance:
        _run_with_checks(instance, APP, 120.0, 60.0)
        _run_with_checks(instance, APP, 0.0, 0.0, ran=False)  # newer: its checks were reused, it ran none
        assert check_seconds(instance, APP) == {"backend": 120.0, "frontend": 60.0}


@pytest.mark.parametrize(
    ("metadata", "own"),
    [
        ({"total_s": 2.5}, 2.5),
        ({"seconds": 0.4}, 0.4),
        # Built ahead beside the image: the step waited 1 s of a 20 s build, and uploaded for 0.5 s.
        ({"total_s": 1.5, "build_waited_s": 1.0, "build_ahead_s": 20.0}, 20.5),
        ({"total_s": dg.MetadataValue.float(3.0)}, 3.0),
    ],
)
def test_a_stages_own_seconds(metadata, own):
    assert own_seconds(metadata) == pytest.approx(own)


def test_checks_run_side_by_side_count_their_longest():
    with dg.DagsterInstance.ephemeral() as instance:
        run_id = str(uuid.uuid4())
        run = dg.DagsterRun(job_name=names.REDEPLOY_JOB, run_id=run_id, status=dg.DagsterRunStatus.SUCCESS,
                            tags={names.APP_REMOTE_TAG: APP})  # fmt: skip
        instance.add_run(run)
        for name, seconds, together in (("tests", 90.0, True), ("lint", 30.0, True), ("types", 5.0, False)):
            evaluation = dg.AssetCheckEvaluation(
                asset_key=names.key(names.API_IMAGE), check_name=name, passed=True,
                metadata={"seconds": seconds, "ran": True, "reused_from_run": "", "side_by_side": together},
            )  # fmt: skip
            event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
                                    job_name=names.REDEPLOY_JOB, event_specific_data=evaluation)  # fmt: skip
            instance.report_dagster_event(event, run_id=run_id)
        assert check_seconds(instance, APP) == {"backend": 95.0, "frontend": 0.0}
