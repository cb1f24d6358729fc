"""Release keys and the versioning rules of the strategy.

A release key names one deployable state of the app: a version tag (`v1.2.3`, `v2.0.0-beta.1`) or a commit of a
branch (`main-3f9c2ab`). It is the `release` dimension of every stage's partition, so it must be short, readable in
the UI, and unambiguous: a tag key parses as strict semver, a commit key is `<branch-slug>-<7..40 hex>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import semver

from coderemote_pipeline.rules.errors import UserError

COMMIT_KEY_HEX_LEN = 7
_TAG_PREFIX = "v"
_COMMIT_KEY = re.compile(r"^(?P<branch>[a-z0-9][a-z0-9._-]{0,40}?)-(?P<sha>[0-9a-f]{7,40})\Z")
# Dagster partition keys may not contain these; MultiPartitionKey joins dimensions with "|".
_FORBIDDEN = set("|,[]/ \t\n")
# The branch every release is cut from: a stable tag for prod must be on it (the tag sensor, the CLI, the switch).
MAIN_REF = "refs/heads/main"


class ReleaseKeyError(UserError, ValueError):
    """A release key or version tag that the rules refuse; the message says why and what is accepted."""


class ReleaseKind(StrEnum):
    STABLE = "stable"
    PRERELEASE = "prerelease"
    COMMIT = "commit"


@dataclass(frozen=True)
class Release:
    key: str
    kind: ReleaseKind
    version: semver.Version | None = None
    branch: str | None = None
    commit_prefix: str | None = None

    @property
    def is_stable(self) -> bool:
        return self.kind is ReleaseKind.STABLE


def parse_version_tag(tag: str) -> semver.Version:
    """`v1.2.3[-pre]` → Version. Refuses `v1.2`, `vnext`, `v01.2.3`, build metadata and a missing `v`."""
    if not tag.startswith(_TAG_PREFIX):
        raise ReleaseKeyError(f"version tag {tag[:80]!r} must start with 'v' (e.g. v1.2.3)")
    # Build metadata is judged apart: semver >= 3.2 refuses a version string over 255 characters before saying why.
    text, plus, build = tag[len(_TAG_PREFIX) :].partition("+")
    try:
        version = semver.Version.parse(text + (f"+{build}" if plus and len(text) + len(build) < 250 else ""))
    except ValueError:
        # semver's own message repeats the tag unquoted: control characters would reach the terminal raw.
        raise ReleaseKeyError(
            f"version tag {tag[:80]!r} is not semantic versioning vMAJOR.MINOR.PATCH[-PRERELEASE] "
            "(e.g. v1.2.3 or v2.0.0-beta.1)"
        ) from None
    if plus:
        raise ReleaseKeyError(f"version tag {tag[:80]!r} carries build metadata '+{build[:40]}', which is not "
                              "allowed: tag the release without it")  # fmt: skip
    return version


def is_version_tag_name(name: str) -> bool:
    """Whether a tag name is in the `v*` namespace the prod trigger watches (valid or not)."""
    return name.startswith(_TAG_PREFIX)


def commit_release_key(branch: str, commit: str) -> str:
    """`main` + full sha → `main-3f9c2ab`."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise ReleaseKeyError(f"{commit!r} is not a git commit id (7 to 40 lowercase hex characters)")
    slug = re.sub(r"[^a-z0-9._-]+", "-", branch.lower()).strip("-.")[:40] or "commit"
    if slug.startswith(_TAG_PREFIX) and slug[1:2].isdigit():
        slug = f"branch-{slug}"  # a branch named v2 or v1.2.3: its commits' keys never read as version tags
    return f"{slug}-{commit[:COMMIT_KEY_HEX_LEN]}"


def parse_release_key(key: str) -> Release:
    """Parse a release partition key, refusing anything malformed with a message that shows the accepted forms."""
    if not key or any(ch in _FORBIDDEN for ch in key):
        raise ReleaseKeyError(
            f"release key {key!r} is empty or contains one of '|,[]/' or whitespace; "
            "use a version tag (v1.2.3) or a commit key (main-3f9c2ab)"
        )
    if key.startswith(_TAG_PREFIX) and key[1:2].isdigit():
        version = parse_version_tag(key)
        kind = ReleaseKind.PRERELEASE if version.prerelease else ReleaseKind.STABLE
        return Release(key=key, kind=kind, version=version)
    match = _COMMIT_KEY.match(key)
    if not match:
        raise ReleaseKeyError(
            f"release key {key!r} is neither a version tag (v1.2.3, v2.0.0-beta.1) "
            "nor a commit key <branch>-<7+ hex> (main-3f9c2ab)"
        )
    return Release(key=key, kind=ReleaseKind.COMMIT, branch=match["branch"], commit_prefix=match["sha"])


def release_for_tag(tag: str) -> Release:
    version = parse_version_tag(tag)
    kind = ReleaseKind.PRERELEASE if version.prerelease else ReleaseKind.STABLE
    return Release(key=tag, kind=kind, version=version)


def highest_stable(names: Sequence[str]) -> semver.Version | None:
    """The highest stable version among these tag names (others are skipped)."""
    versions = []
    for name in names:
        try:
            release = release_for_tag(name)
        except ReleaseKeyError:
            continue
        if release.is_stable and release.version is not None:
            versions.append(release.version)
    return max(versions, default=None)
