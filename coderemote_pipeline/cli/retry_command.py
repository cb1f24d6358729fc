"""`coderemote-pipeline retry RUN`: re-execute a failed deploy or rollback run from its failure.

Only the steps that did not succeed run again (and what depends on them), in a new run of the same job, partition
and tags, linked to the failed one as its parent: the UI's "Re-execute from failure", from a terminal. Every stage
is safe to repeat, so this finishes a deploy that an infrastructure fault interrupted. A run whose process was
killed stays STARTED in the instance; `--mark-failed` records it as failed first (with a container run launcher,
the daemon's run monitoring does that, and run_retries re-executes it by itself: deploy/README.md).
"""

import argparse

import dagster as dg

from coderemote_pipeline.assets.common import COMMIT_TAG, ENV_TAG, RELEASE_TAG
from coderemote_pipeline.cli.summary import render
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import DeployOutcome, DeployRefused, launch, open_instance

RECENT = 500
RETRYABLE = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def find_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """A run by its id or the first characters of it (the CLI and the UI show 8)."""
    run = instance.get_run_by_id(run_id) if len(run_id) == 36 else None
    matches = [run] if run else [r for r in instance.get_runs(limit=RECENT) if r.run_id.startswith(run_id)]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise DeployRefused(f"{found} with id {run_id!r} in this instance: give more of the id")
    return matches[0]


def retry_from_failure(
    run_id: str, *, settings: Settings, instance: dg.DagsterInstance, mark_failed: bool = False, echo=print
) -> DeployOutcome:
    run = find_run(instance, run_id)
    if ENV_TAG not in run.tags or RELEASE_TAG not in run.tags:
        raise DeployRefused(f"run {run.run_id[:8]} ({run.job_name}) is not a deploy or rollback run")
    if mark_failed and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        instance.report_run_failed(
            run, "marked failed by `coderemote-pipeline retry --mark-failed`: its process is gone"
        )
        run = find_run(instance, run.run_id)
    if run.status not in RETRYABLE:
        hint = " (if its process is gone, add --mark-failed)" if run.status is dg.DagsterRunStatus.STARTED else ""
        raise DeployRefused(f"run {run.run_id[:8]} is {run.status.value}: only a failed run is re-executed{hint}")
    carried = {k: v for k, v in run.tags.items() if k.startswith("coderemote/override")}
    echo(f"re-executing {run.run_id[:8]} ({run.job_name}, {run.tags[ENV_TAG]}|{run.tags[RELEASE_TAG]}) from failure")
    return launch(
        run.tags[ENV_TAG],
        run.tags[RELEASE_TAG],
        run.tags.get(COMMIT_TAG, ""),
        settings=settings,
        instance=instance,
        job_name=run.job_name,
        trigger="retry",
        echo=echo,
        extra_tags=carried,
        from_failure_of=run.run_id,
    )


def cmd_retry(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    outcome = retry_from_failure(
        args.run_id, settings=settings, instance=open_instance(settings), mark_failed=args.mark_failed
    )
    print(render(outcome))
    return 0 if outcome.success else 1


def add_parsers(sub) -> None:
    retry = sub.add_parser("retry", help="re-execute a failed deploy or rollback run from its failure")
    retry.add_argument("run_id", help="the failed run's id (or its first characters)")
    retry.add_argument("--mark-failed", action="store_true", help="the run's process is gone: mark it failed first")
    retry.set_defaults(func=cmd_retry)
