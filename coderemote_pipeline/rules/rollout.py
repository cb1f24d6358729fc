"""How an environment takes a new release: all at once, or in canary or linear steps judged on live traffic, then a
bake window at 100 %. The `delivery:` entry of an environment in infra/environments.yaml, validated on load.

CodeDeploy's predefined Lambda configurations are accepted by name (`Canary10Percent5Minutes`,
`CodeDeployDefault.LambdaLinear10PercentEvery1Minute`, `AllAtOnce`, …) as presets of the same plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from coderemote_pipeline.rules.schema import StrictModel

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PRESET = re.compile(r"^(?:CodeDeployDefault\.)?(?:Lambda)?(?:(AllAtOnce)|Canary(\d+)Percent(\d+)Minutes?"
                     r"|Linear(\d+)PercentEvery(\d+)Minutes?)$")  # fmt: skip
STRATEGIES = ("all_at_once", "canary", "linear")


def seconds(value: str | int | float) -> float:
    """`"5m"` → 300.0. A number without its unit is refused: "15" could be seconds or minutes."""
    text = str(value).strip()
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} needs a unit: ms, s, m or h (e.g. 30s, 5m, 1h)")
    return float(match[1]) * _UNITS[match[2]]


def _duration(value: object) -> str:
    # A bare number (`bake: 15`) reaches here as an int: it gets the missing-unit answer, not a type error.
    seconds(str(value))
    return str(value).strip()


Duration = Annotated[str, BeforeValidator(_duration)]


class Analysis(StrictModel):
    """When a step of the new version passes, judged on its own traffic (5xx share and p99 latency)."""

    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_p99_ms: float = Field(2000.0, gt=0)
    # No data is not a pass: a step that saw fewer requests of the new version than this fails.
    min_requests: int = Field(20, ge=1)
    every: Duration = "30s"


class Delivery(StrictModel):
    strategy: str = "all_at_once"
    percent: int | None = Field(None, ge=1, le=99)
    interval: Duration | None = None
    bake: Duration = "0s"
    analysis: Analysis = Analysis()

    @model_validator(mode="after")
    def _plan(self) -> Delivery:
        plan(self)
        return self


@dataclass(frozen=True)
class Step:
    weight: int  # percent of requests to the new version
    hold_s: float


@dataclass(frozen=True)
class RolloutPlan:
    strategy: str
    steps: tuple[Step, ...]  # the weighted steps before 100 % (none: all at once)
    bake_s: float
    analysis: Analysis

    @property
    def judged(self) -> bool:
        return bool(self.steps) or self.bake_s > 0

    @classmethod
    def at_once(cls) -> RolloutPlan:
        return cls("all_at_once", (), 0.0, Analysis())

    def describe(self) -> str:
        if not self.steps:
            shape = "all at once"
        elif self.strategy == "canary":
            shape = f"canary {self.steps[0].weight}% for {self.steps[0].hold_s:g} s"
        else:
            shape = f"linear {self.steps[0].weight}% every {self.steps[0].hold_s:g} s"
        return f"{shape}, then bake {self.bake_s:g} s" if self.bake_s else shape


def _preset(name: str) -> tuple[str, int | None, float | None] | None:
    match = _PRESET.match(name)
    if not match:
        return None
    if match[1]:
        return "all_at_once", None, None
    if match[2]:
        return "canary", int(match[2]), int(match[3]) * 60.0
    return "linear", int(match[4]), int(match[5]) * 60.0


def plan(delivery: Delivery) -> RolloutPlan:
    """The steps a Delivery entry means; raises ValueError (a one-line policy error) for one that means nothing."""
    preset = _preset(delivery.strategy)
    if preset is None and delivery.strategy not in STRATEGIES:
        raise ValueError(f"strategy {delivery.strategy!r} is neither all_at_once, canary, linear nor a CodeDeploy "
                         "preset such as Canary10Percent5Minutes or Linear10PercentEvery1Minute")  # fmt: skip
    explicit = delivery.percent is not None or delivery.interval is not None
    if preset is not None and explicit and preset[0] != "all_at_once":
        raise ValueError(f"strategy {delivery.strategy} sets percent and interval itself: remove them")
    kind, percent, hold = preset if preset else (delivery.strategy, delivery.percent, None)
    if hold is None and delivery.interval is not None:
        hold = seconds(delivery.interval)
    bake = seconds(delivery.bake)
    analysis = delivery.analysis
    if kind == "all_at_once":
        return RolloutPlan(kind, (), bake, analysis)
    if percent is None or hold is None:
        raise ValueError(f"strategy {kind} needs percent (1-99) and interval (e.g. 5m)")
    linear = tuple(Step(w, hold) for w in range(percent, 100, percent))
    return RolloutPlan(kind, (Step(percent, hold),) if kind == "canary" else linear, bake, analysis)
