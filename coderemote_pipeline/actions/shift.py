"""A progressive traffic shift: the new version takes the plan's weighted steps (canary or linear) beside the one
users had, each step judged on the new version's own live traffic (rules/analysis.py), and is taken back to weight 0
the moment a step breaches, a person aborts, or a step ends without enough requests to judge.

The weights live on the alias's routing config and on the runtime (haproxy's slots locally, Lambda itself on AWS);
each step is written to the shift's record (ledger/shifts.py) once the target holds it, so a killed worker leaves a
weight that `traffic ENV` reads from the target and that a re-run resumes from. The last move to 100 % and the
site's flip are the switch's (actions/switch.py); the bake window after it is the same watch (watch below).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from coderemote_pipeline.actions import lambda_versions as lv
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.switch import Serving, prepare_api, weigh
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.shifts import ABORT, Control, ShiftState
from coderemote_pipeline.rules.analysis import BREACH, TOO_FEW, Verdict, judge
from coderemote_pipeline.rules.rollout import Analysis, RolloutPlan, seconds
from coderemote_pipeline.rules.traffic import Traffic

# Breaches and a person's promote/abort are looked for this often; a figures row is written every `analysis.every`.
CHECK_S = 1.0
PASSED, PROMOTED = "passed", "promoted"


@dataclass(frozen=True)
class Window:
    """The figures of one analysis interval (cumulative since its step began): one row the UI plots."""

    phase: str
    step: int
    weight: int
    seconds: float
    requests: int
    errors: int
    error_rate: float
    p99_ms: float
    previous_requests: int
    verdict: str

    def metadata(self) -> dict[str, object]:
        return {
            "phase": self.phase, "step": self.step, "new_weight": self.weight, "previous_weight": 100 - self.weight,
            "seconds": round(self.seconds, 3), "requests": self.requests, "errors": self.errors,
            "error_rate": round(self.error_rate, 4), "latency_p99_ms": round(self.p99_ms, 1),
            "previous_requests": self.previous_requests, "verdict": self.verdict,
        }  # fmt: skip


class Halted(RuntimeError):
    """The new version was judged bad (or a person aborted): why, in one sentence."""

    def __init__(self, why: str, verdict: Verdict | None = None, by: str = "analysis"):
        super().__init__(why)
        self.verdict, self.by = verdict, by


class WeightStuck(RuntimeError):
    """The steps stopped (a halt, an abort, an error) and taking the new version's weight back to 0 failed too. Never
    retried: a retry would resume the steps from the weight left behind, past the halt or the abort."""


@dataclass
class Watcher:
    """How a shift sees the world: the target, what a person asked, and where each window's figures go."""

    target: EnvTarget
    analysis: Analysis
    control: Callable[[], Control | None]
    observe: Callable[[Window], None]
    sleep: Callable[[float], None] = time.sleep

    def watch(self, version: str, previous: str, *, hold_s: float, phase: str, step: int, weight: int) -> str:
        """PASSED when the hold ended with a passing verdict, PROMOTED when a person said so; raises Halted."""
        started = time.time()
        every = seconds(self.analysis.every)
        next_row, deadline = started + every, started + hold_s
        while True:
            self.sleep(max(0.0, min(CHECK_S, deadline - time.time())))
            asked = self.control()
            now = time.time()
            figures = self.target.runtime.traffic(self.target.env, since=started)
            new, old = figures.get(version, Traffic()), figures.get(previous, Traffic())
            verdict = judge(new, self.analysis)

            def row(said: str, now: float = now, new: Traffic = new, old: Traffic = old) -> Window:
                return Window(phase, step, weight, now - started, new.requests, new.errors, new.error_rate,
                              new.p99_ms, old.requests, said)  # fmt: skip

            if asked is not None:
                said = f"{asked.action}{'ed' if asked.action == ABORT else 'd'} by {asked.by}"
                said += f": {asked.reason}" if asked.reason else ""
                self.observe(row(said))
                if asked.action == ABORT:
                    raise Halted(said, by=asked.by)
                return PROMOTED
            if verdict.outcome == BREACH or now >= next_row or now >= deadline:
                self.observe(row(verdict.describe()))
                next_row += every
            if verdict.outcome == BREACH:
                raise Halted(f"{phase} at {weight}%: {verdict.describe()}", verdict)
            if now >= deadline:
                if verdict.outcome == TOO_FEW:
                    raise Halted(f"{phase} at {weight}% ended with {verdict.describe()}", verdict)
                return PASSED


def resume_from(target: EnvTarget, plan: RolloutPlan, version: str, before: Serving) -> int:
    """The step to start at: the one the target's weights show for this version (a shift a killed run left)."""
    weights = lv.alias_weights(target.lam, target.outputs)
    held = weights.get(version, 0)
    if before.version == version or held <= 0 or held >= 100:
        return 0
    return next((i for i, step in enumerate(plan.steps) if step.weight >= held), 0)


def steps(
    watcher: Watcher, plan: RolloutPlan, state: ShiftState, record: Callable[[ShiftState], None]
) -> tuple[str, ShiftState]:
    """The plan's weighted steps for `state.version` beside `state.previous_version`, from `state.step` on.
    Returns how the steps ended (PASSED or PROMOTED). On Halted, or anything else, the new version's weight is 0
    before it raises."""
    target = watcher.target
    prepare_api(target, state.version)
    try:
        for index in range(state.step, len(plan.steps)):
            step = plan.steps[index]
            weights = weigh(target, state.previous_version, {state.version: step.weight})
            state = replace(state, weights=weights, step=index, phase="step")
            record(state)
            outcome = watcher.watch(state.version, state.previous_version, hold_s=step.hold_s, phase="step",
                                    step=index, weight=step.weight)  # fmt: skip
            if outcome == PROMOTED:
                return PROMOTED, state
    except LeaseLost:
        raise  # the env is the next deploy's now, mid-way through its own switch: no weight of it is ours to move
    except BaseException as stopped:  # a breach, an abort, an error, or the run being stopped: no weight left behind
        try:
            back = weigh(target, state.previous_version)
        except Exception as failed:
            if isinstance(failed, LeaseLost):
                raise failed from stopped  # lost while stopping: the next deploy's, as above
            if not isinstance(stopped, Exception):
                raise stopped from failed  # a stop stays a stop; the run's settle puts the env back
            raise WeightStuck(f"{stopped}; taking version {state.version}'s weight back to 0 failed too ({failed})"
                              ) from stopped  # fmt: skip
        record(replace(state, weights=back, phase="rolled_back"))
        raise
    return PASSED, state
