"""Moving a Lambda function to a release: update code → wait → publish a described version → move the alias.

The order is the safety property: the alias only ever moves to a version that is already published, so the live
API is either the old release or the new one, never a half-updated `$LATEST`. A version already published for the
same release and digest is reused, which makes re-runs and rollbacks free of new versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from coderemote_pipeline.resources.image_registry import ImageRef

WAITER_CONFIG = {"Delay": 1, "MaxAttempts": 300}


@dataclass
class PublishedVersion:
    version: str
    previous_version: str
    alias_moved: bool
    reused: bool
    variables: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        how = "reused version" if self.reused else "published version"
        moved = f"alias moved {self.previous_version} → {self.version}" if self.alias_moved else "alias already there"
        return f"{how} {self.version}; {moved}"


def version_description(release: str, commit: str) -> str:
    return f"{release} {commit[:12]}"


def _digest_matches(code_sha: str, digest: str) -> bool:
    return code_sha in (digest, digest.removeprefix("sha256:"))


def find_published(lam: Any, function: str, description: str, digest: str) -> dict[str, Any] | None:
    """The newest published version with this description and image digest."""
    matches = [
        version
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function)
        for version in page["Versions"]
        if version["Version"] != "$LATEST"
        and version.get("Description") == description
        and _digest_matches(version.get("CodeSha256", ""), digest)
    ]
    return max(matches, key=lambda v: int(v["Version"]), default=None)


def publish_release_version(
    lam: Any, *, function: str, alias: str, image: ImageRef, release: str, commit: str, env: str
) -> PublishedVersion:
    seconds: dict[str, float] = {}
    started = time.monotonic()
    description = version_description(release, commit)
    existing = find_published(lam, function, description, image.digest)
    previous = lam.get_alias(FunctionName=function, Name=alias)["FunctionVersion"]
    if existing is not None:
        version = existing["Version"]
        reused = True
    else:
        current = lam.get_function_configuration(FunctionName=function)
        variables = {
            **current.get("Environment", {}).get("Variables", {}),
            "APP_RELEASE": release,
            "APP_COMMIT": commit,
            "APP_ENV": env,
        }
        waiter = lam.get_waiter("function_updated_v2")
        lam.update_function_code(FunctionName=function, ImageUri=image.uri)
        waiter.wait(FunctionName=function, WaiterConfig=WAITER_CONFIG)
        lam.update_function_configuration(FunctionName=function, Environment={"Variables": variables})
        waiter.wait(FunctionName=function, WaiterConfig=WAITER_CONFIG)
        seconds["update_s"] = round(time.monotonic() - started, 3)
        version = lam.publish_version(FunctionName=function, Description=description)["Version"]
        seconds["publish_s"] = round(time.monotonic() - started - seconds["update_s"], 3)
        reused = False
    moved = previous != version
    if moved:
        lam.update_alias(FunctionName=function, Name=alias, FunctionVersion=version)
    served = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    return PublishedVersion(
        version=version,
        previous_version=previous,
        alias_moved=moved,
        reused=reused,
        variables=dict(served.get("Environment", {}).get("Variables", {})),
        seconds=seconds,
    )
