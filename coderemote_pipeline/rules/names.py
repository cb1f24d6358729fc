"""Names defined once: the stages and their asset keys, the jobs, the run tags every deployment carries.

Everything else refers to these constants; no asset, job or tag name is spelled as a string anywhere else.
"""

import dagster as dg

INFRA_STACK = "infra_stack"
API_IMAGE = "api_image"
LAMBDA_VERSION = "lambda_version"
FRONTEND_BUNDLE = "frontend_bundle"
TRAFFIC_SHIFT = "traffic_shift"
CLOUDFRONT_INVALIDATION = "cloudfront_invalidation"
SMOKE_RESULT = "smoke_result"
# A deployment's stages in the order they are printed (the graph runs the two branches in parallel).
STAGES = (INFRA_STACK, API_IMAGE, LAMBDA_VERSION, FRONTEND_BUNDLE, TRAFFIC_SHIFT, CLOUDFRONT_INVALIDATION, SMOKE_RESULT)

BACKEND_CHECKS = "backend_checks"
FRONTEND_CHECKS = "frontend_checks"

RELEASE_APPROVAL = "release_approval"
LIVE_RELEASE = "live_release"
DELIVERY_METRICS = "delivery_metrics"

KEYS = {name: dg.AssetKey(name) for name in (*STAGES, RELEASE_APPROVAL, LIVE_RELEASE, DELIVERY_METRICS)}


def key(name: str) -> dg.AssetKey:
    return KEYS[name]


DEPLOY_JOB = "deploy_job"
REDEPLOY_JOB = "redeploy_job"
ROLLBACK_JOB = "rollback_job"
APPROVAL_JOB = "approval_job"
TRAFFIC_CONTROL_JOB = "traffic_control_job"
DEPLOY_JOBS = (DEPLOY_JOB, REDEPLOY_JOB, ROLLBACK_JOB)
# The jobs whose runs build and provision (infra stage included); a rollback does neither.
BUILDING_JOBS = (DEPLOY_JOB, REDEPLOY_JOB)

ENV_TAG = "coderemote/env"
RELEASE_TAG = "coderemote/release"
COMMIT_TAG = "coderemote/commit"
TRIGGER_TAG = "coderemote/trigger"
# When the commit was made (epoch seconds): the start of its lead time to live.
COMMIT_TIME_TAG = "coderemote/commit_time"
REQUEST_TAG = "coderemote/request"
OVERRIDE_TAG = "coderemote/override"
OVERRIDE_BY_TAG = "coderemote/override_by"
# How the release was built: its remote and layout travel with every run, so rollback and retry reuse them.
APP_REMOTE_TAG = "coderemote/app_remote"
APP_LAYOUT_TAG = "coderemote/app_layout"
DECIDED_BY_TAG = "coderemote/decided_by"
# Whose approvals cleared a deploy of an env that requires them (the run's audit trail, shown in history).
APPROVED_BY_TAG = "coderemote/approved_by"
# host/pid-namespace:pid of the process that executes the run in itself (the CLI's, or its warm process): a sensor
# that finds that process gone where it runs too marks the run failed, so the run queue does not wait behind it.
EXECUTED_BY_TAG = "coderemote/executed_by"
# `deploy --skip-checks --reason`: the strategy's hotfix path; who and why stay on the run and in history.
SKIP_CHECKS_TAG = "coderemote/skip_checks"
SKIP_CHECKS_BY_TAG = "coderemote/skip_checks_by"
# `deploy --executor serial`: the branches one after another in one process (nothing started ahead), the way a
# hand-written script runs them; what the overlap is measured against.
BRANCHES_TAG = "coderemote/branches"
BRANCHES_SERIAL = "serial"
# "waiting": a failed run whose settle found its env's lease held by a run that deploys nothing (a UI build, minutes)
# and left it to sensors/waiting_settles.py rather than wait inside a sensor evaluation; "settled" once it is.
SETTLE_TAG = "coderemote/settle"
SETTLE_WAITING = "waiting"
SETTLE_DONE = "settled"
SETTLE_FAILED = "failed"  # the settle raised: its log says so and what to check; not tried again
# Set as a stage of the run is stopped (Ctrl-C, `kill`): its other branch's stages and checks do not start after it.
STOPPED_TAG = "coderemote/stopped"
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"

# Triggers recorded on runs (`coderemote/trigger`); policy triggers (main_push, stable_tag) are values too.
TRIGGER_CLI = "cli"
TRIGGER_ROLLBACK = "rollback"
TRIGGER_RETRY = "retry"
TRIGGER_APPROVAL = "approval"
TRIGGER_DEMO = "demo"
# A deploy launched by hand outside the CLI (the UI, a backfill, a GraphQL client): tagged by the run queue.
TRIGGER_UI = "ui"


def is_deploy_run(run: dg.DagsterRun) -> bool:
    """A run that deploys: one of the deploy jobs, or stages materialized from the UI's asset graph (Dagster's
    implicit asset job) the switch among them. One that materializes a stage or two short of the switch changes
    nothing users get: it holds the env's lease, but is no deploy in its queue, history or settling."""
    return run.job_name in DEPLOY_JOBS or bool(run.asset_selection and KEYS[TRAFFIC_SHIFT] in run.asset_selection)


def is_rollback_run(run: dg.DagsterRun) -> bool:
    """A rollback, whoever launched it: the CLI's (its trigger tag), a retry of one or a UI launch of rollback_job
    (neither carries that tag: a re-execution gets only the tags it is given)."""
    return run.job_name == ROLLBACK_JOB or run.tags.get(TRIGGER_TAG) == TRIGGER_ROLLBACK
