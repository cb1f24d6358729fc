"""A Lambda function's versions: publish the release's image as a version, move the alias, read what a version runs.

Publishing and moving are two steps on purpose: `lambda_version` publishes (update code → wait → publish a
described version) while users still get the previous release, and only `traffic_shift` moves the alias, once the
site is ready too. The alias only ever moves to a version that is already published, so the live API is either the
old release or the new one, never a half-updated `$LATEST`. A version already published for the same release and
digest is reused, which makes re-runs and rollbacks free of new versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.images import ImageRef

WAITER_CONFIG = {"Delay": 1, "MaxAttempts": 300}


@dataclass
class PublishedVersion:
    version: str
    reused: bool
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{'reused' if self.reused else 'published'} version {self.version}"


@dataclass(frozen=True)
class VersionInfo:
    """What a published version runs, as Lambda pinned it."""

    version: str
    image: ImageRef
    variables: dict[str, str]
    release: str
    commit: str


def version_description(release: str, commit: str) -> str:
    return f"{release} {commit[:12]}"


def release_of_description(description: str) -> tuple[str, str]:
    """A version's description is "<release> <commit12>" (version_description)."""
    release, _, commit = description.partition(" ")
    return release, commit


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


def publish(lam: Any, *, function: str, image: ImageRef, release: str, commit: str, env: str) -> PublishedVersion:
    """A published version of `function` running `image` for this release; the alias does not move."""
    started = time.monotonic()
    description = version_description(release, commit)
    existing = find_published(lam, function, description, image.digest)
    if existing is not None:
        return PublishedVersion(existing["Version"], reused=True)
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
    updated = round(time.monotonic() - started, 3)
    version = lam.publish_version(FunctionName=function, Description=description)["Version"]
    published = round(time.monotonic() - started - updated, 3)
    return PublishedVersion(version, reused=False, seconds={"update_s": updated, "publish_s": published})


def alias_version(lam: Any, outputs: dict[str, str]) -> str:
    return lam.get_alias(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Name=outputs[out.LAMBDA_ALIAS_NAME])[
        "FunctionVersion"
    ]


def alias_weights(lam: Any, outputs: dict[str, str]) -> dict[str, int]:
    """version → percent of the alias's requests: its primary version and the routing config's additional one."""
    alias = lam.get_alias(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Name=outputs[out.LAMBDA_ALIAS_NAME])
    extra = {v: round(100 * w) for v, w in alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}).items()}
    return {alias["FunctionVersion"]: 100 - sum(extra.values()), **{v: w for v, w in extra.items() if w > 0}}


def route(lam: Any, outputs: dict[str, str], primary: str, extra: dict[str, int] | None = None) -> None:
    """The alias on `primary`, with `extra` (version → percent, at most one, Lambda's limit) split off it."""
    weights = {v: w / 100 for v, w in (extra or {}).items() if w > 0 and v != primary}
    lam.update_alias(
        FunctionName=outputs[out.LAMBDA_FUNCTION_NAME],
        Name=outputs[out.LAMBDA_ALIAS_NAME],
        FunctionVersion=primary,
        RoutingConfig={"AdditionalVersionWeights": weights},
    )


def version_info(lam: Any, outputs: dict[str, str], version: str) -> VersionInfo:
    """The image (by digest), environment and release a published version runs.

    The digest comes from the version's CodeSha256 (what Lambda pinned at publish time), not from get_function's
    ImageUri, which the emulator reports for $LATEST whatever the qualifier.
    """
    config = lam.get_function_configuration(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Qualifier=version)
    digest = config["CodeSha256"]
    image = ImageRef(
        outputs[out.ECR_REPOSITORY_NAME],
        digest if digest.startswith("sha256:") else f"sha256:{digest}",
        outputs[out.ECR_REPOSITORY_URL],
        0,
    )
    release, commit = release_of_description(config.get("Description", ""))
    return VersionInfo(version, image, dict(config.get("Environment", {}).get("Variables", {})), release, commit)
