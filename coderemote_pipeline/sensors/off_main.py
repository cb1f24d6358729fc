"""Stable tags whose commit was not on main when the tag arrived, looked at again for a while.

`git push --tags && git push`, or a tag pushed from a laptop a minute before the merge lands: the tag arrives
before main has its commit. Refused for good, that release would never ship unless someone noticed and tagged it
again. Each time main moves within GRACE_S of the tag's arrival, the tag is checked again and deploys once main
has it (the first tick after GRACE_S still looks once, however late, up to LAST_LOOK_S). After that it stays
refused: a hotfix-branch
tag merged into main weeks later is not a release to ship then. A tag that reaches main after a newer version went
out is not deployed over it (a newer tag refused everywhere for its signature did not go out).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GRACE_S = 600.0
# A main that moved since the last check is still looked at once by the first tick after the grace time, as late
# as this: that tick (the sensor's interval, a target-down skip, a daemon stopped for hours) may be the first to
# see a merge made within it. That look ships the tag only if main's merge commit is dated within the grace time
# (late_merge); a fast-forward has no such date and is taken as in time. A waiting tag outlives the grace only
# while no tick runs: each tick after it drops the tag, so this bound only keeps a daemon stopped for days from
# shipping a fast-forwarded hotfix days after its tag.
LAST_LOOK_S = 24 * 3600.0
# The merge's date comes from the merging machine's clock (a laptop, the forge's server), the grace time from the
# daemon's: a merge dated this much past the grace time is still taken as in time, so that a clock running a little
# ahead does not refuse a merge that was in time. Only the late look compares the two.
CLOCK_SKEW_S = 120.0


@dataclass(frozen=True)
class OffMain:
    """The cursor's `off_main`: tag → {commit, since (when first refused), main (main's commit when last checked)}."""

    entries: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, raw: object) -> OffMain:
        good = raw if isinstance(raw, dict) else {}
        return cls({name: e for name, e in good.items() if isinstance(e, dict) and {"commit", "since"} <= set(e)})

    def split(self, tags: dict[str, str], main: str | None, now: float) -> tuple[list[str], OffMain, list[str]]:
        """(tags to check again this tick: main moved and they point where they did; the entries to keep as they
        are; the tags whose grace ran out unseen on main). A tag moved or deleted is dropped: the tag sensor
        reports it."""
        due, kept, expired = [], {}, []
        for name, entry in self.entries.items():
            if tags.get(name) != entry["commit"]:
                continue
            age = now - float(entry["since"])
            if main is not None and main != entry.get("main") and age <= LAST_LOOK_S:
                due.append(name)
            elif age > GRACE_S:
                expired.append(name)
            else:
                kept[name] = entry
        return sorted(due), OffMain(kept), sorted(expired)

    def with_refused(self, refused: list[str], tags: dict[str, str], main: str | None, now: float,
                     before: OffMain) -> tuple[OffMain, list[str]]:  # fmt: skip
        """These entries and each tag refused this tick, since its first refusal (kept from `before`); and the
        refused tags whose grace has run out, dropped."""
        since = {name: float(before.entries.get(name, {}).get("since", now)) for name in refused}
        added = {name: {"commit": tags[name], "main": main, "since": since[name]}
                 for name in refused if now - since[name] <= GRACE_S}  # fmt: skip
        return OffMain({**self.entries, **added}), sorted(set(refused) - set(added))

    def merge_by(self, name: str, now: float) -> float | None:
        """The latest time a merge bringing `name`'s commit into main is in time, once that time has passed (a late
        look must tell an in-time merge from a later one); None within the grace time."""
        deadline = float(self.entries[name]["since"]) + GRACE_S
        return deadline if now > deadline else None

    def waits(self) -> str:
        """What an idle tick adds to its skip reason."""
        return f"; {', '.join(sorted(self.entries))} wait(s) for main to have its commit" if self.entries else ""

    def to_cursor(self) -> dict[str, Any]:
        return {"off_main": self.entries} if self.entries else {}


def refusal(name: str, commit: str) -> str:
    minutes = int(GRACE_S // 60)
    return (
        f"refused tag {name}: its commit {commit[:12]} is not reachable from main. Releases are tags on main: merge "
        "the change (e.g. the hotfix branch) into main, then tag the merge commit. If main is only behind (the tag "
        f"was pushed first), it deploys once main has it, within {minutes} min of the tag"
    )


def expiry(name: str, commit: str) -> str:
    return (
        f"tag {name} (commit {commit[:12]}) was not seen on main within {int(GRACE_S // 60)} min of its push: it "
        "stays refused. Merge the change into main, then tag the merge commit with a new version"
    )


def late_merge(name: str, commit: str, merge_by: float | None, merged_at: Callable[[str], float | None]) -> str | None:
    """The refusal of a tag a late look finds on main through a merge made after its grace time; None when the
    merge was in time or main's history cannot tell (a fast-forward: see merged_at), as within the grace time."""
    if merge_by is None or (at := merged_at(commit)) is None or at <= merge_by + CLOCK_SKEW_S:
        return None
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return (
        f"tag {name} (commit {commit[:12]}) reached main through a merge made {when}, more than "
        f"{int(GRACE_S // 60)} min after the tag's push: it stays refused. To ship it, tag the merge commit with a "
        "new version"
    )
