"""Deployment history per environment and the four delivery figures, read from the Dagster instance.

Every deploy and rollback run carries `coderemote/env`, `coderemote/release`, `coderemote/commit` and
`coderemote/trigger` tags; `live_release` records what each run left live. The figures:
deploy frequency (successful deploys a day), lead time (commit to live), change failure rate (deploys that failed
or were rolled back), time to restore (from a failed deploy's start until the env was healthy again).
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from coderemote_pipeline.assets.common import COMMIT_TAG, ENV_TAG, RELEASE_TAG, TRIGGER_TAG
from coderemote_pipeline.ledger.gate import OVERRIDE_BY_TAG, OVERRIDE_TAG
from coderemote_pipeline.ledger.live import LIVE_RELEASE

DELIVERY_METRICS = dg.AssetKey("delivery_metrics")
HISTORY_LIMIT = 500
DAY_S = 86400.0


@dataclass(frozen=True)
class Deploy:
    run_id: str
    release: str
    commit: str
    trigger: str
    status: str
    started: float
    ended: float | None
    rolled_back: bool
    override: str = ""

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def outcome(self) -> str:
        if self.rolled_back:
            return "rolled back"
        return {"SUCCESS": "live", "FAILURE": "failed"}.get(self.status, self.status.lower())


def deploys(instance: dg.DagsterInstance, env: str, since: float = 0.0) -> list[Deploy]:
    """Newest first."""
    automatic = {
        getattr(r.asset_materialization.metadata.get("run_id"), "value", None)
        for r in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LIVE_RELEASE, asset_partitions=[env]), limit=HISTORY_LIMIT
        ).records
        if r.asset_materialization
        and str(getattr(r.asset_materialization.metadata.get("reason"), "value", "")).startswith("automatic rollback")
    }
    found = []
    for record in instance.get_run_records(dg.RunsFilter(tags={ENV_TAG: env}), limit=HISTORY_LIMIT):
        run, started = record.dagster_run, record.start_time or record.create_timestamp.timestamp()
        if started < since:
            continue
        found.append(
            Deploy(
                run_id=run.run_id,
                release=run.tags.get(RELEASE_TAG, ""),
                commit=run.tags.get(COMMIT_TAG, ""),
                trigger=run.tags.get(TRIGGER_TAG, ""),
                status=run.status.value,
                started=started,
                ended=record.end_time,
                rolled_back=run.run_id in automatic,
                override=f"{run.tags[OVERRIDE_TAG]} ({run.tags.get(OVERRIDE_BY_TAG, '?')})"
                if run.tags.get(OVERRIDE_TAG)
                else "",
            )
        )
    return found


def delivery_figures(
    history: list[Deploy], window_s: float, commit_time: Callable[[str], float | None]
) -> dict[str, float]:
    """The four figures over `history` (newest first, already limited to the window)."""
    forward = [d for d in history if d.trigger != "rollback" and d.ended is not None]
    good = [d for d in forward if d.outcome == "live"]
    bad = [d for d in forward if d.outcome in ("failed", "rolled back")]
    lead_times = [d.ended - t for d in good if d.ended and (t := commit_time(d.commit)) is not None]
    restores = []
    for failed in bad:
        if failed.rolled_back and failed.ended:
            restores.append(failed.ended - failed.started)
            continue
        later = [d.ended for d in history if d.outcome == "live" and d.ended and d.started > failed.started]
        if later:
            restores.append(min(later) - failed.started)
    return {
        "deploy_frequency_per_day": round(len(good) / (window_s / DAY_S), 3),
        "lead_time_s": round(statistics.median(lead_times), 1) if lead_times else 0.0,
        "change_failure_rate": round(len(bad) / len(forward), 3) if forward else 0.0,
        "time_to_restore_s": round(statistics.mean(restores), 1) if restores else 0.0,
        "deploys": float(len(forward)),
        "failed_deploys": float(len(bad)),
        "window_days": round(window_s / DAY_S, 2),
    }


def record_figures(instance: dg.DagsterInstance, env: str, figures: dict[str, float]) -> None:
    """Numeric metadata on `delivery_metrics` (partitioned by env), so the UI plots each figure over time."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=DELIVERY_METRICS, partition=env, metadata={**figures, "at": time.time()})
    )
