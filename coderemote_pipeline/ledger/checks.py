"""Which of the app's checks already passed for a commit and build inputs: the run a check result is reused from.

Asked through the commit's runs (an indexed run-tag query) and each run's own check evaluations, so the cost follows
how often that one commit was deployed, never the size of the history.
"""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.rules import names

RUNS_OF_A_COMMIT = 20  # the newest deploys of one commit looked at: a commit is deployed a handful of times


def passed_before(instance: dg.DagsterInstance, commit: str, check_name: str, key: str) -> str | None:
    """The run in which this check, with this key, ran and passed for `commit`, or None."""
    runs = instance.get_runs(dg.RunsFilter(tags={names.COMMIT_TAG: commit}), limit=RUNS_OF_A_COMMIT)
    for run in runs:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for record in records.records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            if evaluation.check_name == check_name and evaluation.passed and meta.get("check_key") == key:
                if meta.get("ran"):
                    return run.run_id
                if meta.get("reused_from_run"):
                    return str(meta["reused_from_run"])
    return None
