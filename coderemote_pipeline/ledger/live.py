"""What is live in each environment, as the pipeline recorded it: the `live_release` asset, partitioned by env.

One materialization each time an environment's live release changes (a deploy whose smoke passed, a rollback, an
automatic rollback), so the UI shows per env what was live, since when, by which run and why. Written from inside
the step that made the change (so it belongs to that run), or as a runless event by a process that settles a run
after it ended. The target itself is asked in actions/target_state.py; a difference is drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import dagster as dg

from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.ledger.stages import Found, history, latest
from coderemote_pipeline.rules import names

LogEvent = Callable[[dg.AssetMaterialization], None]


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


def env_outputs(instance: dg.DagsterInstance, env: str) -> dict[str, str] | None:
    """The stack outputs of the environment as its live record keeps them, or None if nothing was ever live."""
    live = recorded_live(instance, env)
    return dict(live.stack_outputs) if live and live.stack_outputs else None


def moved(live: LiveRecord, **changes: object) -> LiveRecord:
    return replace(live, **changes)  # type: ignore[arg-type]


def already_live(instance: dg.DagsterInstance, deploy) -> bool:
    """`deploy` (a Deployment at its commit) is what its env serves, and this release's latest run in that env
    succeeded: deploying it again would change nothing (a sensor's first tick after a restart, a repeated tag).
    Asked of the release's runs, not the env's: a later failed deploy of another release, put back, leaves this
    one live and whole."""
    live = recorded_live(instance, deploy.env)
    if live is None or live.release != deploy.release.key or live.commit != deploy.commit:
        return False
    runs = instance.get_runs(
        dg.RunsFilter(tags={names.ENV_TAG: deploy.env, names.RELEASE_TAG: deploy.release.key}), limit=1
    )
    return bool(runs) and runs[0].status is dg.DagsterRunStatus.SUCCESS


def built_with_layout(instance: dg.DagsterInstance, env: str, release: str) -> str | None:
    """The app layout (its JSON) that the newest successful run of `env`|`release` deployed with; None if none."""
    runs = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env, names.RELEASE_TAG: release},
                                           statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)  # fmt: skip
    return runs[0].tags.get(names.APP_LAYOUT_TAG) if runs else None
