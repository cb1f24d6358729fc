"""The delivery figures of an environment, materialized on `delivery_metrics` after every deploy and rollback.

Written by whoever saw the run end (the use case that executed it, or the daemon's run-status sensor), once per
run: the latest record names the run it followed. Lead times come from the commit time each run carries.
"""

from __future__ import annotations

import time

import dagster as dg

from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.ledger.stages import latest_metadata
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.delivery import DAY_S, delivery_figures

WINDOW_DAYS = 30.0


def figures(instance: dg.DagsterInstance, env: str, window_days: float = WINDOW_DAYS) -> tuple[list, dict[str, float]]:
    """(the deploys of the window, newest first, and their figures)."""
    window_s = window_days * DAY_S
    history = deploys(instance, env, since=time.time() - window_s)
    times = {d.commit: d.commit_time for d in history if d.commit_time}
    return history, delivery_figures(history, window_s, times.get)


def record_figures(instance: dg.DagsterInstance, env: str, run_id: str) -> dict[str, float] | None:
    """Materialize `env`'s figures after `run_id` ended; nothing if they were recorded for that run already."""
    last = latest_metadata(instance, names.DELIVERY_METRICS, env)
    if last is not None and last.get("after_run") == run_id:
        return None
    _, found = figures(instance, env)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=names.key(names.DELIVERY_METRICS),
            partition=env,
            description=f"delivery figures of {env} over {WINDOW_DAYS:.0f} days, after run {run_id[:8]}",
            metadata={**found, "after_run": run_id, "at": dg.MetadataValue.timestamp(time.time())},
        )
    )
    return found
