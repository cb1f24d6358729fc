"""What serves the live alias: Lambda itself on AWS; on the local target, a container of the alias's image."""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import dagster as dg
import docker.errors

from coderemote_pipeline.actions.http_probe import expect_status, probe
from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.image_registry import ImageRegistry
from coderemote_pipeline.resources.local_stack import LocalStackResource

HEALTH_TIMEOUT_S = 20.0
# An API that answers, but wrongly (a 500), is judged this long after its first wrong answer.
SETTLE_S = 3.0
LOG_TAIL_LINES = 30


class ApiRuntime(dg.ConfigurableResource, ABC):
    @abstractmethod
    def activate(self, served: ServedVersion, *, api_url: str, command: str, health_path: str) -> Activation:
        """Make `served` the version answering at `api_url`; return once it answers its health path."""

    @abstractmethod
    def current(self, env: str) -> dict[str, str] | None:
        """What is serving the env right now (version, digest), as the runtime itself reports it."""


def wait_healthy(url: str, timeout_s: float, alive: Callable[[], bool] | None = None) -> float:
    """Seconds until `url` first answers 200. Raises ApiUnhealthy when the server exits, when nothing answers
    within `timeout_s` (a cold start), or SETTLE_S after its first wrong answer (it is up, and unhealthy)."""
    result = probe("health", url, expect_status(200), start_budget_s=timeout_s, settle_s=SETTLE_S, alive=alive)
    if not result.ok:
        raise ApiUnhealthy(f"{url} is not healthy after {result.seconds:.1f} s: {result.detail}")
    return result.seconds


def _running(container) -> bool:
    container.reload()
    return container.status in ("created", "running")


class LocalContainerRuntime(ApiRuntime):
    """One container per environment running the alias's image with the function's environment, host network."""

    stack: LocalStackResource
    docker: DockerEngine
    registry: ImageRegistry

    def _name(self, env: str) -> str:
        return f"coderemote-{self.stack.info().stack_id}-{env}-api"

    def _find(self, env: str):
        client = self.docker.client()
        try:
            return client.containers.get(self._name(env))
        except docker.errors.NotFound:
            return None

    def current(self, env: str) -> dict[str, str] | None:
        container = self._find(env)
        if container is None or container.status != "running":
            return None
        labels = container.labels
        return {k.removeprefix("coderemote."): v for k, v in labels.items() if k.startswith("coderemote.")}

    def activate(self, served: ServedVersion, *, api_url: str, command: str, health_path: str) -> Activation:
        started = time.monotonic()
        # A hash, not the variables themselves: labels are public (`docker inspect`, `status`), and the function's
        # environment holds secrets such as GEMINI_API_KEY.
        fingerprint = hashlib.sha256(
            json.dumps({"digest": served.image.digest, "vars": served.variables}, sort_keys=True).encode()
        ).hexdigest()
        container = self._find(served.env)
        if (
            container is not None
            and container.status == "running"
            and container.labels.get("coderemote.fingerprint") == fingerprint
            and container.labels.get("coderemote.version") == served.version
        ):
            wait_healthy(api_url + health_path, HEALTH_TIMEOUT_S)
            return Activation(True, time.monotonic() - started, None, f"container {container.short_id} already serves")
        client = self.docker.client()
        if container is not None:
            # Same port on the host network: the old container must release it before the new one binds.
            container.remove(force=True)
        port = api_url.rsplit(":", 1)[1]
        info = self.stack.info()
        container = client.containers.run(
            self.registry.run_reference(served.image),
            command=shlex.split(command),
            name=self._name(served.env),
            detach=True,
            network_mode="host",
            environment={**served.variables, "HOST": "127.0.0.1", "PORT": port},
            labels={
                "coderemote.stack": info.stack_id,
                "coderemote.env": served.env,
                "coderemote.version": served.version,
                "coderemote.digest": served.image.digest,
                "coderemote.release": served.variables.get("APP_RELEASE", ""),
                "coderemote.fingerprint": fingerprint,
            },
        )
        try:
            cold_start = wait_healthy(api_url + health_path, HEALTH_TIMEOUT_S, alive=lambda: _running(container))
        except ApiUnhealthy as exc:
            container.reload()
            logs = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace")
            raise ApiUnhealthy(
                f"API container for {served.env} (image {served.image.digest[:19]}, status {container.status}) "
                f"is not healthy: {exc}\n--- container log (last {LOG_TAIL_LINES} lines) ---\n{logs}"
            ) from None
        return Activation(False, time.monotonic() - started, cold_start, f"started container {container.short_id}")
