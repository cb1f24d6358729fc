"""The instance's run queue: Dagster's queued coordinator, one deploy per environment in progress.

Its limit is keyed on `coderemote/env`, the tag the CLI and the sensors put on every deploy run. A deploy launched
from the UI's Materialize button, a backfill or any GraphQL client carries only Dagster's partition tags, so under
Dagster's own coordinator it passed the limit and started beside a deploy of its environment (the stages' lease
then made it wait, but as a run in progress), and history, the settle net and `retry` never saw it. Here such a
run is given the environment, release and trigger from its partition before it is queued. Its commit, remote and
layout are known only where the code runs: its first stage pins them (assets/stage.py).
"""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.partitions import ENV_DIMENSION, RELEASE_DIMENSION, split_partition_key
from coderemote_pipeline.rules.release_keys import ReleaseKeyError


def missing_deploy_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The tags a deploy run lacks that its partition tells: none for a run the CLI or a sensor made, or for a run
    of another job (an approval is not a deploy and does not wait for one)."""
    if not names.is_deploy_run(run) or names.ENV_TAG in run.tags:
        return {}
    env = run.tags.get(f"{names.PARTITION_TAG}/{ENV_DIMENSION}")
    release = run.tags.get(f"{names.PARTITION_TAG}/{RELEASE_DIMENSION}")
    if (env is None or release is None) and names.PARTITION_TAG in run.tags:
        try:
            env, release = split_partition_key(run.tags[names.PARTITION_TAG])
        except ReleaseKeyError:
            return {}
    if env is None or release is None:
        return {}  # no partition: its first stage fails on that, and there is no environment to queue it behind
    return {names.ENV_TAG: env, names.RELEASE_TAG: release,
            names.TRIGGER_TAG: run.tags.get(names.TRIGGER_TAG, names.TRIGGER_UI)}  # fmt: skip


def queue_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The tags a run submitted through the queue is given: those of its partition it lacks, and no process of
    another run. A re-execution from the UI copies every tag of its parent, the CLI's `executed_by` among them: the
    daemon's run worker executes this one, and a dead parent's pid would mark it gone (its lease reclaimed, its
    shift "interrupted") while it works."""
    tags = missing_deploy_tags(run)
    if run.tags.get(names.EXECUTED_BY_TAG):
        tags[names.EXECUTED_BY_TAG] = ""  # tags cannot be removed; an empty one names no process
    return tags


class DeployRunQueue(dg.QueuedRunCoordinator):
    """Dagster's QueuedRunCoordinator, with every deploy run tagged with its environment before the limit reads it."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        missing = queue_tags(run)
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            tagged = self._instance.get_run_by_id(run.run_id) or run
            context = dg.SubmitRunContext(tagged, context.workspace)
        return super().submit_run(context)
