"""What is live in each environment, as the pipeline recorded it: the `live_release` asset, partitioned by env.

One materialization each time an environment's live release changes (a deploy whose smoke passed, a rollback, an
automatic rollback), so the UI shows per env what was live, since when, by which run and why. Written from inside
the step that made the change (so it belongs to that run), or as a runless event by a process that settles a run
after it ended. The target itself is asked in actions/target_state.py; a difference is drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg

from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.ledger.stages import Found, history, latest
from coderemote_pipeline.rules import names

LogEvent = Callable[[dg.AssetMaterialization], None]
# Deploys of an env since its live record that a sensor's tick looks through before it calls a release live.
SINCE_LIMIT = 20


def record_live(instance: dg.DagsterInstance, env: str, live: LiveRecord, log_event: LogEvent | None = None) -> None:
    """Record that `env` now serves `live`; inside a step pass `context.log_event` so the record joins its run."""
    event = dg.AssetMaterialization(
        asset_key=names.key(names.LIVE_RELEASE),
        partition=env,
        description=live.reason,
        metadata=live.to_metadata(),
    )
    if log_event is not None:
        log_event(event)
    else:
        instance.report_runless_asset_event(event)


def recorded_live(instance: dg.DagsterInstance, env: str) -> LiveRecord | None:
    found = latest(instance, LiveRecord, env)
    return found.record if found else None


def live_history(instance: dg.DagsterInstance, env: str) -> Iterator[Found[LiveRecord]]:
    """Every change of what `env` served, newest first, read a page at a time (never a fixed window)."""
    return history(instance, LiveRecord, env)


def last_live_as(instance: dg.DagsterInstance, env: str, release: str) -> LiveRecord | None:
    """The newest record of `env` serving `release` (what putting it back restores), or None."""
    return next((found.record for found in live_history(instance, env) if found.record.release == release), None)


def env_outputs(instance: dg.DagsterInstance, env: str) -> dict[str, str] | None:
    """The stack outputs of the environment as its live record keeps them, or None if nothing was ever live."""
    live = recorded_live(instance, env)
    return dict(live.stack_outputs) if live and live.stack_outputs else None


def moved(live: LiveRecord, **changes: object) -> LiveRecord:
    return replace(live, **changes)  # type: ignore[arg-type]


def already_live(instance: dg.DagsterInstance, deploy) -> bool:
    """`deploy` (a Deployment at its commit) is what its env serves, whole: deploying it again would change nothing
    (a sensor's first tick after a restart, a repeated tag). The live record names it, this release's own latest
    run in the env succeeded, and no other deploy of the env that ran after the record reached the switch: one
    that failed before it (a build, a check) left the env as it was, one that failed at or after it may have left
    it on its own release (auto_rollback off), and one still running is changing it now."""
    found = latest(instance, LiveRecord, deploy.env)
    live = found.record if found else None
    if found is None or live.release != deploy.release.key or live.commit != deploy.commit:
        return False
    env, release = deploy.env, deploy.release.key
    mine = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env, names.RELEASE_TAG: release}), limit=1)
    if not mine or mine[0].status is not dg.DagsterRunStatus.SUCCESS:
        return False
    # Every run that moved after the record (a run queued before it may run after it). Run storage keeps update
    # times to the second: a second earlier, then each run's own end time decides.
    since = datetime.fromtimestamp(found.timestamp - 1, tz=UTC)
    later = instance.get_run_records(dg.RunsFilter(tags={names.ENV_TAG: env}, updated_after=since),
                                     limit=SINCE_LIMIT + 1)  # fmt: skip
    if len(later) > SINCE_LIMIT:
        return False  # too many to look through on a tick: deploying again is the safe answer
    return not any(_touched_after(instance, record, found) for record in later)


def _touched_after(instance: dg.DagsterInstance, record: dg.RunRecord, found: Found[LiveRecord]) -> bool:
    """Whether this run may have changed what the env serves after the live record (not the run that wrote it)."""
    run = record.dagster_run
    if run.run_id == found.run_id or not names.is_deploy_run(run):
        return False
    if not run.is_finished:
        return True
    if record.end_time is not None and record.end_time < found.timestamp:
        return False  # the record is newer: what put the env back, or made it live
    started = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    return any(event.step_key == names.TRAFFIC_SHIFT for event in started)


def built_with_layout(instance: dg.DagsterInstance, env: str, release: str) -> str | None:
    """The app layout (its JSON) that the newest successful run of `env`|`release` deployed with; None if none."""
    runs = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env, names.RELEASE_TAG: release},
                                           statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)  # fmt: skip
    return runs[0].tags.get(names.APP_LAYOUT_TAG) if runs else None
