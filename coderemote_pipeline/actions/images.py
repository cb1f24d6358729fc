"""The API image of a commit, found, promoted or built, in that order of preference.

An image is identified by its build inputs (the context's git tree, the Dockerfile, the base image, the commit),
not by the environment: a commit is built once, and every other environment gets the very same digest by a copy
between repositories. Each function here is one step of `api_image`; `registry`, `docker` and `app_source` are that
stage's resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from coderemote_pipeline.actions.scratch import scratch_dir
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.aws_errors import error_code
from coderemote_pipeline.rules.env_names import ENVIRONMENTS
from coderemote_pipeline.rules.images import ImageRef


def build_tag(build_key: str) -> str:
    return f"build-{build_key[:16]}"


@dataclass(frozen=True)
class Resolved:
    ref: ImageRef | None
    build_key: str = ""
    tagged: bool = False  # already tagged with the release


def recorded(registry: Any, repository: str, release: str, digest: str | None) -> ImageRef | None:
    """The image this partition recorded, still tagged with the release and still whole (a re-run, a rollback):
    reused without the engine or a build key, so a newer base image never forces a rebuild."""
    if not digest:
        return None
    ref = registry.find(repository, release)
    if ref is None or ref.digest != digest or not registry.has_layers(ref):
        return None
    return ref


def by_build_key(registry: Any, repository: str, build_key: str) -> ImageRef | None:
    ref = registry.find(repository, build_tag(build_key))
    return ref if ref is not None and registry.has_layers(ref) else None


def promotable(registry: Any, env: str, build_key: str) -> tuple[str, ImageRef] | None:
    """An image with the same build key already pushed for another environment."""
    for other in ENVIRONMENTS:
        if other == env:
            continue
        try:
            ref = by_build_key(registry, out.ecr_repository_name(other), build_key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "RepositoryNotFoundException":
                continue  # that environment was never provisioned
            raise
        if ref is not None:
            return other, ref
    return None


def promote(registry: Any, source: ImageRef, repository: str, build_key: str, release: str) -> ImageRef:
    """Copy the image into the env's repository by digest (registry blob mounts, or ECR's layer API)."""
    return registry.copy(source, repository, [build_tag(build_key), release])


def build(app_source: Any, docker: Any, *, commit: str, build_key: str) -> Any:
    """Build the exported backend of `commit` with the engine: the only path that makes new bytes."""
    with scratch_dir(app_source.scratch_root(), "build") as tmp:
        context_dir = app_source.export_backend(commit, tmp / "context")
        return docker.build(
            context_dir,
            app_source.dockerfile,
            tag=f"coderemote-build:{build_key[:16]}",
            buildargs={"BASE_IMAGE": docker.base_image(), "GIT_COMMIT": commit},
            labels={"org.opencontainers.image.revision": commit, "coderemote.build-key": build_key},
        )


def push(
    registry: Any, docker: Any, image_id: str, *, repository: str, build_key: str, release: str, size_bytes: int
) -> ImageRef:
    """Push the built image; what it adds to the base image decides how its layers are compressed."""
    client = docker.client()
    fresh = size_bytes - int(client.images.get(docker.base_image()).attrs.get("Size", 0))
    return registry.push(client, image_id, repository, [build_tag(build_key), release], fresh_bytes=fresh)
