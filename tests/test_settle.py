"""Settling a failed run (the failed/canceled sensors, a few seconds after it ended) leaves the env alone once a
later run of it exists: a retry or the next deploy owns what the env serves, and putting back the failed run's
recorded release would undo that run's work under its lease."""

import time

import dagster as dg

from coderemote_pipeline.actions.failure_report import settle_failed_run
from coderemote_pipeline.ledger.live import record_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import load_policies
from testkit.ledger_seed import outputs_of


def _run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, release: str) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=status,
                        tags={names.ENV_TAG: "dev", names.RELEASE_TAG: release})  # fmt: skip
    instance.add_run(run)
    return run


def _never_read(env: str, outputs: dict[str, str]):
    raise AssertionError(f"the settle of a superseded run read {env}'s target")


def test_a_failed_run_with_a_later_run_of_its_env_is_not_put_back(tmp_path):
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        record_live(instance, "dev", LiveRecord("main-aaaaaaa", "a" * 40, 1, "sha256:a", "main-aaaaaaa", "deployed",
                                                "r0", 0.0, outputs_of("dev")))  # fmt: skip
        failed = _run(instance, dg.DagsterRunStatus.FAILURE, "main-bbbbbbb")
        time.sleep(0.01)
        retry = _run(instance, dg.DagsterRunStatus.STARTED, "main-bbbbbbb")
        settled = settle_failed_run(instance, failed, load_policies()["dev"], _never_read)
    assert settled is not None and settled.whole is None and not settled.rolled_back
    said = f"not settled by this run: run {retry.run_id[:8]} (started), started after it, deploys dev now"
    assert said in settled.text
