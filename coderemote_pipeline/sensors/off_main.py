"""Stable tags whose commit was not on main when the tag arrived, looked at again for a while.

`git push --tags && git push`, or a tag pushed from a laptop a minute before the merge lands: the tag arrives
before main has its commit. Refused for good, that release would never ship unless someone noticed and tagged it
again. Each time main moves within GRACE_S of the tag's arrival, the tag is checked again and deploys once main
has it. After that it stays refused: a hotfix-branch tag merged into main weeks later is not a release to ship
then. A tag that reaches main after a newer version was released is not deployed over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GRACE_S = 600.0


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
        are; the tags whose grace ran out). A tag moved or deleted is dropped: the tag sensor reports it."""
        due, kept, expired = [], {}, []
        for name, entry in self.entries.items():
            if tags.get(name) != entry["commit"]:
                continue
            if now - float(entry["since"]) > GRACE_S:
                expired.append(name)
            elif main is not None and main != entry.get("main"):
                due.append(name)
            else:
                kept[name] = entry
        return sorted(due), OffMain(kept), sorted(expired)

    def with_refused(self, refused: list[str], tags: dict[str, str], main: str | None, now: float,
                     before: OffMain) -> OffMain:  # fmt: skip
        """These entries and each tag refused this tick, since its first refusal (kept from `before`)."""
        added = {name: {"commit": tags[name], "main": main,
                        "since": before.entries.get(name, {}).get("since", now)} for name in refused}  # fmt: skip
        return OffMain({**self.entries, **added})

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
        f"tag {name} (commit {commit[:12]}) is still not on main {int(GRACE_S // 60)} min after it was pushed: it "
        "stays refused. Merge the change into main, then tag the merge commit with a new version"
    )
