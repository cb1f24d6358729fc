"""A Ctrl-C (or `kill`) stops the whole deploy, not only the stage at work: Dagster runs every step a failure does
not block, so the other branch's stages and checks went on building, publishing and checking after the stop."""

import dagster as dg
import pytest

from coderemote_pipeline.assets.retries import permanent_failures_fail_fast
from coderemote_pipeline.assets.stage import lease_held
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.failures import INTERRUPTED, NOT_STARTED_AFTER_STOP

PARTITION = "dev|main-0000000"
started: list[str] = []


@dg.asset
@permanent_failures_fail_fast
def a_stage_stopped(context: dg.AssetExecutionContext) -> None:
    raise KeyboardInterrupt  # Ctrl-C while it works


@dg.asset
def b_other_branch(context: dg.AssetExecutionContext) -> None:
    with lease_held(context, PARTITION):
        started.append("b_other_branch")


def test_a_stage_due_after_a_stop_in_the_other_branch_does_not_start(tmp_path):
    started.clear()
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        result = dg.materialize([a_stage_stopped, b_other_branch], instance=instance, raise_on_error=False)
        failures = {event.step_key: event.step_failure_data.error.message for event in result.all_events
                    if event.is_step_failure}  # fmt: skip
        assert instance.get_run_by_id(result.run_id).tags.get(names.STOPPED_TAG) == "1"
    assert started == []
    assert INTERRUPTED in failures["a_stage_stopped"] and NOT_STARTED_AFTER_STOP in failures["b_other_branch"]


@pytest.mark.parametrize("stopped", [False, True])
def test_only_a_stopped_run_refuses_its_next_stage(tmp_path, stopped):
    started.clear()
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        tags = {names.STOPPED_TAG: "1"} if stopped else {}
        result = dg.materialize([b_other_branch], instance=instance, raise_on_error=False, tags=tags)
    assert result.success is (not stopped) and started == ([] if stopped else ["b_other_branch"])
