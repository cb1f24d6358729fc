"""Which job runs a deployment: deploy_job (branches in parallel processes) when something must be built,
redeploy_job (one process) when the commit's image and bundle exist already (a re-run, rollback, promotion)."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.ledger.records import BundleRecord, ImageRecord
from coderemote_pipeline.ledger.stages import in_run, successful_runs_of_commit
from coderemote_pipeline.rules import names

EXECUTORS = ("auto", "parallel", "serial")


def nothing_to_build(instance: dg.DagsterInstance, commit: str) -> bool:
    """A successful deploy of `commit` left an image and an environment-neutral bundle: both are reused."""
    runs = successful_runs_of_commit(instance, commit, limit=1)
    if not runs:
        return False
    bundle = in_run(instance, BundleRecord, runs[0])
    return in_run(instance, ImageRecord, runs[0]) is not None and bundle is not None and (
        bundle.record.build_mode == "runtime_config"
    )


def choose_job(instance: dg.DagsterInstance, commit: str, executor: str = "auto") -> str:
    if executor == "parallel":
        return names.DEPLOY_JOB
    if executor == "serial":
        return names.REDEPLOY_JOB
    return names.REDEPLOY_JOB if nothing_to_build(instance, commit) else names.DEPLOY_JOB
