"""Deploy windows: weekly ranges in a time zone when an environment takes no deploy (`deny`), or the only ranges
when it does (`allow`), as Argo CD's sync windows. The `deploy_windows:` entry of an environment in
infra/environments.yaml, validated on load; rollbacks are never held by a window.

    deploy_windows:
      timezone: Europe/Paris
      deny:
        - {from: "Fri 16:00", to: "Mon 08:00", reason: "no prod deploys over the weekend"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from coderemote_pipeline.rules.schema import StrictModel, plain, said

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A day's three letters, its longer short forms (Tues, Thurs) or its whole name, then HH:MM (ASCII digits only).
_WHEN = re.compile(r"(mon(?:day)?|tue(?:s|sday)?|wed(?:s|nesday)?|thu(?:r|rs|rsday)?|fri(?:day)?|sat(?:urday)?"
                   r"|sun(?:day)?)[ \t]+([01]?[0-9]|2[0-3]):([0-5][0-9])", re.IGNORECASE)
WEEK_MIN = 7 * 24 * 60


def week_minute(text: str) -> int:
    """`"Fri 16:00"` → minutes since Monday 00:00."""
    match = _WHEN.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"{said(text)} is not a weekday and a time, e.g. 'Fri 16:00'")
    return DAYS.index(match[1][:3].lower()) * 24 * 60 + int(match[2]) * 60 + int(match[3])


class WindowEntry(StrictModel):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    reason: str = ""

    @model_validator(mode="after")
    def _length(self) -> WindowEntry:
        if week_minute(self.start) == week_minute(self.end):
            raise ValueError("from and to are the same moment: a window needs a length (an allow window of none "
                             "would never let a deploy start)")  # fmt: skip
        return self

    @field_validator("start", "end")
    @classmethod
    def _when(cls, value: str) -> str:
        week_minute(value)
        return value


class DeployWindows(StrictModel):
    timezone: str = "UTC"
    deny: list[WindowEntry] = []
    allow: list[WindowEntry] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder (Europe), not a zone
            shown = f" {said(value)}" if plain(value) else ""
            raise ValueError(f"unknown time zone{shown}: use an IANA name such as Europe/Paris or UTC") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> DeployWindows:
        if self.deny and self.allow:
            raise ValueError("use deny or allow windows, not both: deny says when not, allow says only when")
        return self


@dataclass(frozen=True)
class Closed:
    """Why an environment takes no deploy now, and when it opens again."""

    reason: str
    opens_at: datetime

    def describe(self, env: str) -> str:
        return f"{env} takes no deploys now ({self.reason}); the window ends {self.opens_at:%a %Y-%m-%d %H:%M %Z}"


@dataclass(frozen=True)
class WindowPlan:
    timezone: str
    deny: tuple[tuple[int, int, str], ...]  # (from, to, label) in week minutes; to < from wraps over Sunday
    allow: tuple[tuple[int, int, str], ...]

    @classmethod
    def of(cls, windows: DeployWindows | None) -> WindowPlan:
        if windows is None:
            return cls("UTC", (), ())

        def ranges(entries: list[WindowEntry]) -> tuple[tuple[int, int, str], ...]:
            return tuple((week_minute(e.start), week_minute(e.end), e.reason or f"{e.start} to {e.end}")
                         for e in entries)  # fmt: skip

        return cls(windows.timezone, ranges(windows.deny), ranges(windows.allow))

    def closed(self, now: datetime) -> Closed | None:
        """None when a deploy may start at `now` (an aware datetime), else why not and until when."""
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
        for start, end, label in self.deny:
            if _inside(minute, start, end):
                return Closed(label, _at(local, minute, end))
        if self.allow and not any(_inside(minute, s, e) for s, e, _ in self.allow):
            opens = min(self.allow, key=lambda w: (w[0] - minute) % WEEK_MIN)
            return Closed(f"outside the allowed windows ({', '.join(w[2] for w in self.allow)})",
                          _at(local, minute, opens[0]))  # fmt: skip
        return None


def _inside(minute: int, start: int, end: int) -> bool:
    return start <= minute < end if start <= end else minute >= start or minute < end


def _at(local: datetime, minute: int, target: int) -> datetime:
    ahead = (target - minute) % WEEK_MIN or WEEK_MIN
    return (local + timedelta(minutes=ahead)).replace(second=0, microsecond=0)
