"""The Docker engine that builds API images and, on the local target, runs them."""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import docker
import docker.errors
import requests.exceptions

from coderemote_pipeline.local_stack.dockerd import STACK_LABEL
from coderemote_pipeline.local_stack.errors import DockerEngineDown
from coderemote_pipeline.resources.local_stack import LocalStackResource

BUILD_LOG_TAIL_LINES = 25
LAMBDA_PYTHON_BASE = "public.ecr.aws/lambda/python:3.12"


class ImageBuildFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    seconds: float
    size_bytes: int


# A thread's clients, by (host, DOCKER_HOST, pid); and each engine's API version, asked once per process.
_THREAD = threading.local()
_VERSIONS: dict[tuple[str | None, str | None, int], str] = {}


def _engine_client(host: str | None, env_host: str | None) -> docker.DockerClient:
    """One client per engine, process and thread. A stage asks for the client several times (a switch: three), and
    its pool reconnects to an engine that restarted. The backend's checks run in threads beside the image's push,
    and docker-py does not promise a client is safe to share between threads: each gets its own, which skips the
    version query (~8 ms) after the first. `env_host`: DOCKER_HOST decides where `from_env` goes; the pid: a forked
    process makes its own clients rather than share its parent's connections."""
    key = (host, env_host, os.getpid())
    clients = _THREAD.__dict__.setdefault("clients", {})
    if (client := clients.get(key)) is None:
        version = _VERSIONS.get(key)
        client = (docker.DockerClient(base_url=host, timeout=300, version=version) if host
                  else docker.from_env(timeout=300, version=version))  # fmt: skip
        _VERSIONS.setdefault(key, client.api.api_version)
        clients[key] = client
    return client


class DockerEngine(dg.ConfigurableResource, ABC):
    @abstractmethod
    def docker_host(self) -> str | None: ...

    @abstractmethod
    def base_image(self) -> str:
        """The image the app's Dockerfile builds FROM (its BASE_IMAGE build argument)."""

    def owner_labels(self) -> dict[str, str]:
        """Labels for the containers a run leaves on this engine only if it dies (a check's): none on an engine
        nobody here owns; the local stack's own, which `local down` removes by."""
        return {}

    def client(self) -> docker.DockerClient:
        host = self.docker_host()
        try:
            client = _engine_client(host, os.environ.get("DOCKER_HOST"))
            client.ping()
        # A kept client whose engine went away fails its ping with requests' ConnectionError, not Docker's own.
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
            raise DockerEngineDown(
                f"no Docker engine reachable at {host or 'DOCKER_HOST / unix:///var/run/docker.sock'} ({exc}). "
                "Start one: `coderemote-pipeline local up` starts dockerd for the local target"
            ) from None
        return client

    def base_image_id(self) -> str:
        name = self.base_image()
        try:
            return self.client().images.get(name).id
        except docker.errors.ImageNotFound:
            raise ImageBuildFailed(
                f"base image {name!r} is not in the Docker engine: `coderemote-pipeline local up` makes it locally"
            ) from None

    def build(
        self, context_dir: Path, dockerfile: str, *, tag: str, buildargs: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Build with the engine; a failure raises with the tail of the build log, which is what the user needs."""
        client = self.client()
        started = time.monotonic()
        log_lines: list[str] = []
        try:
            # Host networking: the local engine runs without a bridge, and RUN steps may still fetch packages.
            stream = client.api.build(
                path=str(context_dir),
                dockerfile=dockerfile,
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,
                network_mode="host",
                decode=True,
            )
            image_id = None
            for chunk in stream:
                if "stream" in chunk:
                    log_lines.extend(chunk["stream"].splitlines())
                if "error" in chunk:
                    log_lines.append(chunk["error"].strip())
                    raise ImageBuildFailed(chunk["error"].strip())
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except (ImageBuildFailed, docker.errors.APIError) as exc:
            tail = "\n".join(line for line in log_lines[-BUILD_LOG_TAIL_LINES:] if line.strip())
            raise ImageBuildFailed(
                f"docker build of {dockerfile} failed: {exc}\n--- build log (last {BUILD_LOG_TAIL_LINES} lines) ---\n"
                f"{tail}"
            ) from None
        image = client.images.get(image_id or tag)
        return BuiltImage(image_id=image.id, seconds=time.monotonic() - started, size_bytes=image.attrs.get("Size", 0))


class LocalDockerEngine(DockerEngine):
    """The local stack's engine and its locally made Python base image (nothing can be pulled here)."""

    stack: LocalStackResource

    def docker_host(self) -> str | None:
        return self.stack.info().docker_host

    def base_image(self) -> str:
        return self.stack.info().base_image

    def owner_labels(self) -> dict[str, str]:
        return {STACK_LABEL: self.stack.info().stack_id}


class HostDockerEngine(DockerEngine):
    """The engine of the machine running the step (DOCKER_HOST or the default socket), building on Lambda's base."""

    host: str | None = None
    base: str = LAMBDA_PYTHON_BASE

    def docker_host(self) -> str | None:
        return self.host

    def base_image(self) -> str:
        return self.base

    def base_image_id(self) -> str:
        # Unlike the local stack's engine, this one can pull: Lambda's base comes from ECR Public once.
        client = self.client()
        try:
            return client.images.get(self.base).id
        except docker.errors.ImageNotFound:
            pass
        try:
            return client.images.pull(self.base).id
        except docker.errors.APIError as exc:
            raise ImageBuildFailed(
                f"base image {self.base!r} is not in the Docker engine and cannot be pulled ({exc}); "
                f"pull it with `docker pull {self.base}`"
            ) from None
