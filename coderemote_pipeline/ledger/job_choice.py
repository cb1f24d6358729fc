"""Which job runs a deployment: redeploy_job (every step in one process) unless this app's own evidence says a
process per step (deploy_job) pays.

Both jobs overlap the two builds now: in one process, api_image starts the commit's frontend build beside the image
build (npm works while the step waits on the Docker engine; resources/app_source.py). What deploy_job overlaps
besides is the rest of each branch — the app's checks of each side, the version, the upload — and it pays a
process start per step for it. Measured by bench/deploy.py on this 2-core machine (2026-12-03), new commits: the
example app (builds of about a second) 2.3 s in one process against 8.5 s with a process per step; the realistic
app (builds of 18–21 s each, testkit/realistic_app.py) 40.0 s against 42.4 s (best of two, machine idle), and
within the noise of each other under load: the starts cost about what the rest of the branches overlap. So one
process, unless this app's recorded checks make the shorter side's checks outweigh the starts (an app whose tests
take minutes on both sides).
Measured again, back to back on a loaded machine, after the per-run costs were cut (2026-12-03): 4.53 s against
12.70 s, (12.70 - 4.53) / 9 steps = 0.91 s a step, so PER_STEP_OVERHEAD_S holds. No cheaper step is on offer with
Dagster's public executors (no thread executor), and both branches inside one step would hide each stage's own
timings, retries and checks."""

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
RECENT = 20  # this app's newest successful deploys looked at for check seconds
SIDES = {names.API_IMAGE: "backend", names.FRONTEND_BUNDLE: "frontend"}


def nothing_to_build(instance: dg.DagsterInstance, commit: str) -> bool:
    """A successful deploy of `commit` left an image and an environment-neutral bundle: both are reused."""
    runs = successful_runs_of_commit(instance, commit, limit=1)
    if not runs:
        return False
    bundle = in_run(instance, BundleRecord, runs[0])
    return in_run(instance, ImageRecord, runs[0]) is not None and bundle is not None and (
        bundle.record.build_mode == "runtime_config"
    )


def check_seconds(instance: dg.DagsterInstance, app_remote: str | None) -> dict[str, float] | None:
    """Seconds of each side's checks (backend, frontend) in this app's newest successful run whose checks ran:
    an indexed run-tag query, then that run's own check events."""
    tags = {names.APP_REMOTE_TAG: app_remote} if app_remote else {}
    runs = instance.get_runs(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=RECENT)
    for run in runs:
        # Per side: checks run one after another add up; checks run side by side cost their longest.
        sides = {"backend": 0.0, "frontend": 0.0}
        together = {"backend": 0.0, "frontend": 0.0}
        ran = False
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for record in records.records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            side = SIDES.get(evaluation.asset_key.to_user_string())
            if side and meta.get("ran"):
                ran = True
                seconds = float(meta.get("seconds", 0.0))
                if meta.get("side_by_side"):
                    together[side] = max(together[side], seconds)
                else:
                    sides[side] += seconds
        if ran:
            return {side: sides[side] + together[side] for side in sides}
    return None


def choose_job(
    instance: dg.DagsterInstance, commit: str, executor: str = "auto", *, app_remote: str | None = None
) -> str:
    if executor == "parallel":
        return names.DEPLOY_JOB
    if executor == "serial" or nothing_to_build(instance, commit):
        return names.REDEPLOY_JOB
    checks = check_seconds(instance, app_remote)
    if checks is not None and min(checks.values()) > PER_STEP_OVERHEAD_S * STEPS:
        return names.DEPLOY_JOB
    return names.REDEPLOY_JOB
