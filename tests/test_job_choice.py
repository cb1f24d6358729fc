"""`--executor auto` from evidence: the app's recorded build seconds against the parallel job's step starts."""

import dagster as dg
import pytest

from coderemote_pipeline.ledger.job_choice import PER_STEP_OVERHEAD_S, STEPS, choose_job
from coderemote_pipeline.rules import names


def _built(instance, stage: str, seconds: float, **flags) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(
        names.key(stage), partition="dev|main-0000000", metadata={"total_s": seconds, **flags}))  # fmt: skip


@pytest.mark.parametrize(
    ("backend_s", "frontend_s", "job"),
    [
        (1.3, 0.6, names.REDEPLOY_JOB),  # the example app: a second each, one process wins
        (40.0, 30.0, names.DEPLOY_JOB),  # a realistic app: the shorter build outweighs the starts
        (40.0, 0.5, names.REDEPLOY_JOB),  # one long build and one short: nothing to overlap
    ],
)
def test_auto_follows_the_apps_own_build_seconds(backend_s, frontend_s, job):
    with dg.DagsterInstance.ephemeral() as instance:
        assert choose_job(instance, "a" * 40) == names.DEPLOY_JOB  # nothing recorded yet: the job that builds
        _built(instance, names.API_IMAGE, backend_s, built=True, outcome="built")
        _built(instance, names.API_IMAGE, 0.1, built=False, outcome="reused")  # a reuse is no build evidence
        _built(instance, names.FRONTEND_BUNDLE, frontend_s, outcome="built")
        assert choose_job(instance, "a" * 40) == job
        assert choose_job(instance, "a" * 40, "parallel") == names.DEPLOY_JOB
        assert PER_STEP_OVERHEAD_S * STEPS < 30.0
