"""Deployment history per environment: its deploy and rollback runs, newest first, and what they left live.

Every deploy and rollback run carries `coderemote/env`, `coderemote/release`, `coderemote/commit` and
`coderemote/trigger`; the runs of one environment over a window are one run-tag query with a creation-time
bound, read a page at a time, so a year of other environments' deploys costs nothing here.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from coderemote_pipeline.ledger.process_place import process_gone
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.delivery import Deploy
from coderemote_pipeline.rules.failures import failure_text

PAGE = 200
# Queued and not-started runs have no process yet: the queue, not a process, holds them.
RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def running_but_gone(run: dg.DagsterRun) -> str | None:
    """Why `run`, still marked running, is known to have lost its process (killed, no one marked it), or None."""
    return process_gone(run) if run.status in RUNNING else None


def _runs(instance: dg.DagsterInstance, env: str, since: float) -> list[dg.RunRecord]:
    after = dt.datetime.fromtimestamp(since, dt.UTC)
    found: list[dg.RunRecord] = []
    cursor = None
    while True:
        page = instance.get_run_records(
            dg.RunsFilter(tags={names.ENV_TAG: env}, created_after=after), limit=PAGE, cursor=cursor
        )
        found += page
        if len(page) < PAGE:
            return found
        cursor = page[-1].dagster_run.run_id


def _automatic_rollbacks(instance: dg.DagsterInstance, env: str, since: float) -> set[str]:
    """Run ids whose failure was rolled back automatically (their live record says so)."""
    automatic: set[str] = set()
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LiveRecord.key(), asset_partitions=[env], after_timestamp=since),
            limit=PAGE,
            cursor=cursor,
        )
        for record in result.records:
            if record.asset_materialization is not None:
                live = LiveRecord.from_metadata(record.asset_materialization.metadata)
                if live.automatic:
                    automatic.add(live.run_id)
        if not result.has_more:
            return automatic
        cursor = result.cursor


def _failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[str, str]:
    """The first step that failed in `run`, and the first line of its message (one query, failed runs only)."""
    failed = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1).records
    if not failed:
        return "", ""
    event = failed[0].event_log_entry.dagster_event
    first = failure_text(event.step_failure_data.error).splitlines()
    return event.step_key or "", f"{event.step_key}: {first[0][:160] if first else 'failed'}"


def deploys(instance: dg.DagsterInstance, env: str, since: float = 0.0) -> list[Deploy]:
    """Deploy and rollback runs of `env` created since `since`, newest first."""
    automatic = _automatic_rollbacks(instance, env, since)
    found = []
    for record in _runs(instance, env, since):
        run = record.dagster_run
        if not names.is_deploy_run(run):
            continue
        started = record.start_time or record.create_timestamp.timestamp()
        override, skipped = run.tags.get(names.OVERRIDE_TAG, ""), run.tags.get(names.SKIP_CHECKS_TAG, "")
        step, failure = _failure(instance, run) if run.status is dg.DagsterRunStatus.FAILURE else ("", "")
        status = run.status.value
        if (gone := running_but_gone(run)) is not None:
            # Killed (`kill -9`, a closed laptop) with no daemon to mark it: not "started" for ever. The next deploy
            # of the env or the daemon's sensor marks it failed. `retry` re-executes only the env's newest run.
            status, failure = "GONE", gone
            if not found:
                failure += f": `coderemote-pipeline retry {run.run_id[:8]} --mark-failed` re-executes it from there"
        found.append(
            Deploy(
                run_id=run.run_id,
                release=run.tags.get(names.RELEASE_TAG, ""),
                commit=run.tags.get(names.COMMIT_TAG, ""),
                trigger=run.tags.get(names.TRIGGER_TAG, ""),
                status=status,
                started=started,
                # A run ended without its end event (marked failed from outside) ended when it was last updated.
                ended=record.end_time or (record.update_timestamp.timestamp() if run.is_finished else None),
                rolled_back=run.run_id in automatic,
                override=f"{override} ({run.tags.get(names.OVERRIDE_BY_TAG, '?')})" if override else "",
                commit_time=float(run.tags[names.COMMIT_TIME_TAG]) if run.tags.get(names.COMMIT_TIME_TAG) else None,
                skipped_checks=f"{skipped} ({run.tags.get(names.SKIP_CHECKS_BY_TAG, '?')})" if skipped else "",
                failure=failure,
                failed_step=step,
                rollback=names.is_rollback_run(run),
                approved_by=run.tags.get(names.APPROVED_BY_TAG, ""),
            )
        )
    return found


def switched_in(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the switch (`traffic_shift`) succeeded in run `run_id`: users got its release."""
    done = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return any(record.step_key == names.TRAFFIC_SHIFT for record in done)
