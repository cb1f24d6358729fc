"""Which job runs a deployment: redeploy_job (one process) when the commit's image and bundle exist already (a
re-run, rollback, promotion); otherwise whichever this app's own evidence says is faster.

deploy_job runs the two branches side by side, each step in a process of its own: it saves at most the shorter
branch's build, and pays a process start per step. bench/deploy.py measured that start at about a second here
(deploy_job 13.0 s against redeploy_job 5.3 s for the example app, whose builds take about a second): so once the
app has built once, its recorded build seconds decide — parallel only where the shorter build outweighs the starts.
With no build recorded yet, deploy_job (an app whose builds take minutes loses most by guessing wrong)."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.ledger.records import BundleRecord, ImageRecord
from coderemote_pipeline.ledger.stages import in_run, successful_runs_of_commit
from coderemote_pipeline.rules import names

EXECUTORS = ("auto", "parallel", "serial")
# Seconds a step of deploy_job costs over the same step in one process, and how many steps a deploy has: measured
# by bench/deploy.py on this 2-core machine ((deploy_job - redeploy_job) / steps), to be measured again elsewhere.
PER_STEP_OVERHEAD_S = 0.9
STEPS = 9
RECENT = 20


def nothing_to_build(instance: dg.DagsterInstance, commit: str) -> bool:
    """A successful deploy of `commit` left an image and an environment-neutral bundle: both are reused."""
    runs = successful_runs_of_commit(instance, commit, limit=1)
    if not runs:
        return False
    bundle = in_run(instance, BundleRecord, runs[0])
    return in_run(instance, ImageRecord, runs[0]) is not None and bundle is not None and (
        bundle.record.build_mode == "runtime_config"
    )


def last_build_s(instance: dg.DagsterInstance, stage: str) -> float | None:
    """The stage's wall seconds in this instance's newest run that really built (not reused, not promoted)."""
    for record in instance.fetch_materializations(names.key(stage), limit=RECENT).records:
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        built = meta.get("built") or meta.get("outcome")
        if built is not None and built.value in (True, "built") and "total_s" in meta:
            return float(meta["total_s"].value)
    return None


def choose_job(instance: dg.DagsterInstance, commit: str, executor: str = "auto") -> str:
    if executor == "parallel":
        return names.DEPLOY_JOB
    if executor == "serial" or nothing_to_build(instance, commit):
        return names.REDEPLOY_JOB
    backend, frontend = last_build_s(instance, names.API_IMAGE), last_build_s(instance, names.FRONTEND_BUNDLE)
    if backend is None or frontend is None:
        return names.DEPLOY_JOB
    return names.DEPLOY_JOB if min(backend, frontend) > PER_STEP_OVERHEAD_S * STEPS else names.REDEPLOY_JOB
