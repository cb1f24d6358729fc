"""`--executor auto` runs a deployment in one process, where both branches' slow work overlaps (the frontend's build
and checks beside the image build); one branch after the other or a process per step only when asked. And what a
stage's own seconds are."""

import dagster as dg
import pytest

from coderemote_pipeline.ledger.job_choice import EXECUTORS, choose_job, executor_tags
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.stage_seconds import own_seconds


def test_auto_and_serial_run_in_one_process_parallel_when_asked():
    assert {executor: choose_job(executor) for executor in EXECUTORS} == {
        "auto": names.REDEPLOY_JOB, "serial": names.REDEPLOY_JOB, "parallel": names.DEPLOY_JOB}  # fmt: skip
    assert choose_job() == names.REDEPLOY_JOB  # the sensors' and promotions' choice
    # serial: the same process, one branch after the other (api_image starts nothing ahead on this tag).
    assert {executor: executor_tags(executor) for executor in EXECUTORS} == {
        "auto": {}, "parallel": {}, "serial": {names.BRANCHES_TAG: names.BRANCHES_SERIAL}}  # fmt: skip


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
