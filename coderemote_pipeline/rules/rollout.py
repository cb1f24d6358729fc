"""How an environment takes a new release: all at once, or in canary or linear steps judged on live traffic, then a
bake window at 100 %. The `delivery:` entry of an environment in infra/environments.yaml, validated on load.

CodeDeploy's predefined Lambda configurations are accepted by name (`Canary10Percent5Minutes`,
`CodeDeployDefault.LambdaLinear10PercentEvery1Minute`, `AllAtOnce`, …) as presets of the same plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field, StrictFloat, StrictInt, model_validator

from coderemote_pipeline.rules.schema import StrictModel, nearest, plain, said

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_PRESET = re.compile(r"^(?:CodeDeployDefault\.)?(?:Lambda)?(?:(AllAtOnce)|Canary([0-9]+)Percent([0-9]+)Minutes?"
                     r"|Linear([0-9]+)PercentEvery([0-9]+)Minutes?)\Z")  # fmt: skip
STRATEGIES = ("all_at_once", "canary", "linear")
PRESETS = ("AllAtOnce", "Canary10Percent5Minutes", "Canary10Percent10Minutes", "Canary10Percent15Minutes",
           "Canary10Percent30Minutes", "Linear10PercentEvery1Minute", "Linear10PercentEvery2Minutes",
           "Linear10PercentEvery3Minutes", "Linear10PercentEvery10Minutes")  # fmt: skip
# A step shorter than a second judges no traffic, one over a day is a typo; a bake over a week is never meant.
MIN_INTERVAL_S, MAX_INTERVAL_S, MAX_BAKE_S, MAX_EVERY_S = 1.0, 86_400.0, 7 * 86_400.0, 3600.0


def seconds(value: str | int | float) -> float:
    """`"5m"` → 300.0. A number without its unit is refused: "15" could be seconds or minutes."""
    text = str(value).strip()
    match = _DURATION.match(text)
    if not match and text.startswith("-") and _DURATION.match(text[1:]):
        raise ValueError(f"{said(text, 'a duration')} is negative: give a length of time, e.g. 30s, 5m, 1h, 3d")
    if not match:
        raise ValueError(f"{said(text, 'a duration')} needs a unit: ms, s, m, h or d (e.g. 30s, 5m, 1h, 3d)")
    return float(match[1]) * _UNITS[match[2]]


def _duration(low: float, high: float, bounds: str) -> BeforeValidator:
    def check(value: object) -> str:
        # A bare number (`bake: 15`) reaches here as an int: it gets the missing-unit answer, not a type error.
        if not low <= seconds(str(value)) <= high:
            raise ValueError(f"must be {bounds}")
        return str(value).strip()

    return BeforeValidator(check)


Interval = Annotated[str, _duration(MIN_INTERVAL_S, MAX_INTERVAL_S, "between 1s and 24h")]
Bake = Annotated[str, _duration(0.0, MAX_BAKE_S, "between 0s and 7d")]
Every = Annotated[str, _duration(0.001, MAX_EVERY_S, "between 1ms and 1h")]
# An approval's life (environments.<env>.approval_expires): CodePipeline's manual approvals last 7 days.
Lifetime = Annotated[str, _duration(60.0, 30 * 86_400.0, "between 1m and 30d")]


class Analysis(StrictModel):
    """When a step of the new version passes, judged on its own traffic (5xx share and p99 latency)."""

    max_error_rate: StrictFloat = Field(0.01, ge=0, le=1)
    max_p99_ms: StrictFloat = Field(2000.0, gt=0)
    # No data is not a pass: a step that saw fewer requests of the new version than this fails.
    min_requests: StrictInt = Field(20, ge=1)
    every: Every = "30s"


class Delivery(StrictModel):
    strategy: str = "all_at_once"
    percent: StrictInt | None = Field(None, ge=1, le=99)
    interval: Interval | None = None
    bake: Bake = "0s"
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


def _number(digits: str) -> int:
    # Bounded before int(): a preset with a thousand digits is refused by the range check, not by Python's limit.
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 9 else 10**9


def _preset(name: str) -> tuple[str, int | None, float | None] | None:
    match = _PRESET.match(name)
    if not match:
        return None
    if match[1]:
        return "all_at_once", None, None
    if match[2]:
        return "canary", _number(match[2]), _number(match[3]) * 60.0
    return "linear", _number(match[4]), _number(match[5]) * 60.0


def _check_preset(name: str, percent: int, hold: float) -> None:
    named = f"strategy {said(name)}" if plain(name) else "the strategy"
    if not 1 <= percent <= 99:
        raise ValueError(f"{named}: its percent must be 1-99")
    if not MIN_INTERVAL_S <= hold <= MAX_INTERVAL_S:
        raise ValueError(f"{named}: its minutes must be 1-1440 (intervals are 1s to 24h)")


def plan(delivery: Delivery) -> RolloutPlan:
    """The steps a Delivery entry means; raises ValueError (a one-line policy error) for one that means nothing."""
    name = delivery.strategy
    preset = _preset(name)
    if preset is None and name not in STRATEGIES:
        shown, hint = f" {said(name)}" if plain(name) else "", nearest(name, [*STRATEGIES, *PRESETS])
        raise ValueError(f"strategy{shown} is neither all_at_once, canary, linear nor a CodeDeploy preset such as "
                         f"Canary10Percent5Minutes or Linear10PercentEvery1Minute{hint}")  # fmt: skip
    kind, percent, hold = preset if preset else (name, delivery.percent, None)
    explicit = [key for key in ("percent", "interval") if getattr(delivery, key) is not None]
    if explicit and kind == "all_at_once":
        keys = " and ".join(explicit)
        raise ValueError(f"{keys} {'mean' if len(explicit) > 1 else 'means'} nothing to a release taken all at once: "
                         f"remove {keys}, or use strategy canary or linear")  # fmt: skip
    if explicit and preset is not None:
        raise ValueError(f"strategy {said(name, 'the preset')} sets percent and interval itself: remove "
                         f"{' and '.join(explicit)}")  # fmt: skip
    if preset is not None and kind != "all_at_once":
        _check_preset(name, int(percent or 0), float(hold or 0))
    if hold is None and delivery.interval is not None:
        hold = seconds(delivery.interval)
    bake = seconds(delivery.bake)
    if kind == "all_at_once":
        return RolloutPlan(kind, (), bake, delivery.analysis)
    if percent is None or hold is None:
        raise ValueError(f"strategy {kind} needs percent (1-99) and interval (e.g. 5m)")
    linear = tuple(Step(w, hold) for w in range(percent, 100, percent))
    return RolloutPlan(kind, (Step(percent, hold),) if kind == "canary" else linear, bake, delivery.analysis)
