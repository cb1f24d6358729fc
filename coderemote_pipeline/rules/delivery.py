"""The delivery figures of an environment over a window: DORA's five keys, computed from its deploy history.

- deployment frequency: successful forward deploys a day;
- change lead time: median seconds from a release's commit to it being live;
- change fail rate: share of forward deploys that failed or were rolled back automatically;
- failed deployment recovery time: mean seconds from a failed deploy's start until the env served a passing
  release again (its automatic rollback, or the next successful deploy or rollback);
- deployment rework rate: share of forward deploys made because the one before them failed (the next deploy
  after a failure, until one succeeds).
Rollback runs are not deploys (they restore), but they end a failure's recovery time.

A deploy stopped before release — failed in a build, a check or a publish, before anything users get changed —
is none of these: the environment served its previous release throughout, and DORA counts failures in production,
not a pipeline doing its job. It is listed (outcome "stopped") and counted apart. A failure in the stack, the
switch, the cache or smoke, or one whose step is unknown (a killed run), counts as a failed deploy.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from coderemote_pipeline.rules.names import (
    API_IMAGE,
    BACKEND_CHECKS,
    FRONTEND_BUNDLE,
    FRONTEND_CHECKS,
    LAMBDA_VERSION,
    TRIGGER_ROLLBACK,
)

DAY_S = 86400.0
# The steps before the switch that change nothing users get: an image pushed, a version published behind the
# alias, a site snapshot stored, the app's checks. The infra stack is not among them: it is what users are served
# from, and a failed update may have changed it.
BEFORE_RELEASE_STEPS = frozenset({API_IMAGE, BACKEND_CHECKS, LAMBDA_VERSION, FRONTEND_BUNDLE, FRONTEND_CHECKS})


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
    commit_time: float | None = None
    skipped_checks: str = ""
    failure: str = ""  # the failed step and the first line of its message
    failed_step: str = ""  # the first step that failed, if one did
    # A rollback run whatever launched it: the CLI's (trigger "rollback"), a retry of one, rollback_job from the UI.
    rollback: bool = False
    approved_by: str = ""  # whose approvals cleared it, where its env requires them

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def outcome(self) -> str:
        if self.rolled_back:
            return "rolled back"
        if self.status == "FAILURE" and self.failed_step in BEFORE_RELEASE_STEPS:
            return "stopped"
        return {"SUCCESS": "live", "FAILURE": "failed"}.get(self.status, self.status.lower())

    @property
    def in_progress(self) -> bool:
        return self.status in ("STARTING", "STARTED")

    @property
    def forward(self) -> bool:
        return not self.rollback and self.trigger != TRIGGER_ROLLBACK

    @property
    def how(self) -> str:
        """The trigger, and that it was a rollback where the trigger does not say so ("retry rollback")."""
        return self.trigger if self.forward or self.trigger == TRIGGER_ROLLBACK else f"{self.trigger} rollback"


def delivery_figures(
    history: list[Deploy], window_s: float, commit_time: Callable[[str], float | None]
) -> dict[str, float]:
    """The five figures over `history` (any order, already limited to the window)."""
    ordered = sorted(history, key=lambda d: d.started)
    ended = [d for d in ordered if d.forward and d.ended is not None]
    forward = [d for d in ended if d.outcome != "stopped"]
    good = [d for d in forward if d.outcome == "live"]
    bad = [d for d in forward if d.outcome in ("failed", "rolled back")]
    lead_times = [d.ended - t for d in good if d.ended and (t := commit_time(d.commit)) is not None]
    restores = []
    for failed in bad:
        if failed.rolled_back and failed.ended:
            restores.append(failed.ended - failed.started)
            continue
        later = [d.ended for d in ordered if d.outcome == "live" and d.ended and d.started > failed.started]
        if later:
            restores.append(min(later) - failed.started)
    rework = sum(1 for before, _ in itertools.pairwise(forward) if before in bad)
    return {
        "deploy_frequency_per_day": round(len(good) / (window_s / DAY_S), 3),
        "lead_time_s": round(statistics.median(lead_times), 1) if lead_times else 0.0,
        "lead_times_known": float(len(lead_times)),  # live deploys whose commit's time is known: 0 says n/a
        "change_failure_rate": round(len(bad) / len(forward), 3) if forward else 0.0,
        "recovery_time_s": round(statistics.mean(restores), 1) if restores else 0.0,
        "rework_rate": round(rework / len(forward), 3) if forward else 0.0,
        "deploys": float(len(forward)),
        "failed_deploys": float(len(bad)),
        "stopped_before_release": float(len(ended) - len(forward)),
        "window_days": round(window_s / DAY_S, 2),
    }
