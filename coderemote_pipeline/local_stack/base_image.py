"""The local Python base image, made on this machine because no registry can be pulled from.

`mmdebstrap` builds a Debian root filesystem from the package mirror (~35 s); the tarball is cached outside
the state dir so a fresh stack only pays for `docker import` (a few seconds). The image stands in for the
Lambda Python base image: the API Dockerfile takes it as its BASE_IMAGE build argument on the local target.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from coderemote_pipeline.local_stack.errors import BaseImageError
from coderemote_pipeline.local_stack.processes import log_tail

BASE_IMAGE_REPOSITORY = "coderemote/python-base"
BASE_IMAGE_TAG = "bookworm"
BASE_IMAGE = f"{BASE_IMAGE_REPOSITORY}:{BASE_IMAGE_TAG}"
ROOTFS_LABEL = "coderemote.rootfs"
MMDEBSTRAP_TIMEOUT_SECONDS = 900

# `essential` is the smallest variant that still has a shell and dpkg; python3 (not python3-minimal) because
# the API serves HTTP with the standard library. No apt inside: the app has no third-party dependencies.
MMDEBSTRAP_ARGS = (
    "--variant=essential",
    "--include=python3,ca-certificates",
    # Merge /usr ourselves; otherwise apt satisfies `usr-is-merged` with usrmerge, which drags in full perl.
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    # Docs, man pages and translations are a third of the tree and slow every import.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
    "bookworm",
)
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "WORKDIR /var/task",
)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coderemote-pipeline"


def rootfs_key() -> str:
    """Names the tarball after its recipe, so changing the recipe never reuses a stale cache."""
    return hashlib.sha256("\0".join(MMDEBSTRAP_ARGS).encode()).hexdigest()[:12]


def rootfs_tarball_path(cache_dir: Path) -> Path:
    return cache_dir / f"python-base-bookworm-{rootfs_key()}.tar"


@contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    # Two stacks (or two test sessions) coming up at once would otherwise both run mmdebstrap into one file.
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(cache_dir / "python-base.lock", "w")  # noqa: SIM115 - held across the yield
    except OSError as error:
        raise BaseImageError(f"The image cache dir {cache_dir} is not usable: {error}") from error
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_rootfs_tarball(cache_dir: Path) -> Path:
    """The cached root filesystem tarball, built with mmdebstrap when absent."""
    tarball = rootfs_tarball_path(cache_dir)
    with _cache_lock(cache_dir):
        if tarball.exists():
            return tarball
        partial = tarball.with_suffix(".partial.tar")
        log_path = cache_dir / "mmdebstrap.log"
        # SUITE is given and no MIRROR: mmdebstrap then uses deb.debian.org plus the updates and security
        # suites. stdin must not be a pipe, or mmdebstrap would read a sources.list from it.
        argv = ["mmdebstrap", *MMDEBSTRAP_ARGS, str(partial)]
        with open(log_path, "wb") as log:
            try:
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=MMDEBSTRAP_TIMEOUT_SECONDS,
                    check=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
                partial.unlink(missing_ok=True)
                raise BaseImageError(
                    f"Building the Python base image's root filesystem failed ({error}); "
                    f"see {log_path}:\n{log_tail(log_path)}"
                ) from error
        # Renamed only when complete: a killed build never leaves a truncated tarball that looks cached.
        partial.rename(tarball)
        return tarball


def base_image_id(client: docker.DockerClient) -> str | None:
    """The id of the base image in this engine if it is there and built from the current recipe."""
    try:
        image = client.images.get(BASE_IMAGE)
    except ImageNotFound:
        return None
    labels = image.labels or {}
    return str(image.id) if labels.get(ROOTFS_LABEL) == rootfs_key() else None


def ensure_base_image(client: docker.DockerClient, cache_dir: Path) -> str:
    """Import the base image into the engine unless it is already there; returns its image id."""
    existing = base_image_id(client)
    if existing is not None:
        return existing
    tarball = ensure_rootfs_tarball(cache_dir)
    changes = [*IMAGE_CHANGES, f"LABEL {ROOTFS_LABEL}={rootfs_key()}"]
    try:
        client.api.import_image_from_file(
            str(tarball), repository=BASE_IMAGE_REPOSITORY, tag=BASE_IMAGE_TAG, changes=changes
        )
    except DockerException as error:
        raise BaseImageError(f"Importing {tarball} as {BASE_IMAGE} failed: {error}") from error
    imported = base_image_id(client)
    if imported is None:
        raise BaseImageError(f"{BASE_IMAGE} is missing from the engine right after importing {tarball}")
    return imported
