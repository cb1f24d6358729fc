"""What serves the live alias on the local target: a container per published version, behind the API edge.

Each version of an environment runs as its own container (host network, a port of its own) with the function's
environment; the env's API URL is the haproxy edge (local_stack/api_edge.py), whose two slots point at the
containers of at most two versions, with weights — the local twin of a Lambda alias's routing config. A new version
is started and found healthy before any request reaches it, and the old one keeps serving until the edge has moved
its share away, so a deploy drops no request. The previous version's container stays warm (weight 0): going back
to it is a weight change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import time
from pathlib import Path

import docker.errors

from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.local_stack import api_edge, moto_server
from coderemote_pipeline.local_stack.edges import EdgePaths, slots_locked
from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.image_registry import ImageRegistry
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.runtime import HEALTH_TIMEOUT_S, ApiRuntime, wait_healthy
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.traffic import Traffic

LOG_TAIL_LINES = 30
# Requests already sent to a version the edge just stopped routing to finish within this.
DRAIN_S = 1.0


def _fingerprint(served: ServedVersion) -> str:
    # A hash, not the variables themselves: labels are public (`docker inspect`, `status`).
    body = json.dumps({"digest": served.image.digest, "vars": served.variables}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


class LocalContainerRuntime(ApiRuntime):
    """Containers of the env's versions, and the edge's weights between them."""

    stack: LocalStackResource
    docker: DockerEngine
    registry: ImageRegistry

    def _edge(self) -> EdgePaths:
        return EdgePaths(Path(self.stack.state_dir) / "local")

    def _name(self, env: str, version: str) -> str:
        return f"coderemote-{self.stack.info().stack_id}-{env}-v{version}"

    def _containers(self, env: str) -> list:
        labels = [f"coderemote.stack={self.stack.info().stack_id}", f"coderemote.env={env}"]
        return self.docker.client().containers.list(all=True, filters={"label": labels})

    def _running(self, env: str, version: str):
        found = [c for c in self._containers(env) if c.labels.get("coderemote.version") == version]
        return next((c for c in found if c.status == "running"), None)

    def prepare(self, served: ServedVersion, *, command: str, health_path: str) -> Activation:
        started = time.monotonic()
        container = self._running(served.env, served.version)
        if container is not None and container.labels.get("coderemote.fingerprint") == _fingerprint(served):
            port = container.labels["coderemote.port"]
            wait_healthy(f"http://127.0.0.1:{port}{health_path}", HEALTH_TIMEOUT_S)
            return Activation(True, time.monotonic() - started, None, f"container {container.short_id} is warm")
        if container is not None:
            container.remove(force=True)
        return self._start(served, command, health_path, started)

    def _start(self, served: ServedVersion, command: str, health_path: str, started: float) -> Activation:
        info = self.stack.info()
        port = free_port(exclude=[*info.api_ports.values(), *info.site_ports.values()])
        client = self.docker.client()
        with contextlib.suppress(docker.errors.NotFound):  # a stopped container of that name (an engine restart)
            client.containers.get(self._name(served.env, served.version)).remove(force=True)
        container = client.containers.run(
            self.registry.run_reference(served.image),
            command=shlex.split(command),
            name=self._name(served.env, served.version),
            detach=True,
            network_mode="host",
            environment={**served.variables, **_lambda_context(served, info), "HOST": "127.0.0.1",
                         "PORT": str(port)},
            labels={"coderemote.stack": info.stack_id, "coderemote.env": served.env,
                    "coderemote.version": served.version, "coderemote.digest": served.image.digest,
                    "coderemote.release": served.variables.get("APP_RELEASE", ""),
                    "coderemote.fingerprint": _fingerprint(served), "coderemote.port": str(port)},
        )  # fmt: skip
        try:
            cold = wait_healthy(f"http://127.0.0.1:{port}{health_path}", HEALTH_TIMEOUT_S,
                                alive=lambda: _alive(container))  # fmt: skip
        except ApiUnhealthy as exc:
            container.reload()
            logs = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace")
            status = container.status
            container.remove(force=True)
            raise ApiUnhealthy(
                f"API container for {served.env} version {served.version} (image {served.image.digest[:19]}, "
                f"status {status}) is not healthy: {exc}\n--- container log (last {LOG_TAIL_LINES} lines) ---\n{logs}"
            ) from None
        return Activation(False, time.monotonic() - started, cold, f"started container {container.short_id}")

    def weigh(self, env: str, weights: dict[str, int]) -> None:
        """Point the edge's slots at the named versions' containers, with their weights, in one go."""
        ports = {c.labels.get("coderemote.version"): int(c.labels["coderemote.port"]) for c in self._containers(env)
                 if c.status == "running" and "coderemote.port" in c.labels}  # fmt: skip
        missing = [v for v, w in weights.items() if w > 0 and v not in ports]
        if missing:
            raise ApiUnhealthy(f"no container serves version(s) {', '.join(missing)} of {env}: prepare them first")
        with slots_locked(self._edge()) as state:
            slots = state.slots(env)
            wanted = dict(weights)
            for slot in slots.values():  # a version keeps the slot it has
                if slot.version in wanted:
                    slot.port, slot.weight = ports.get(slot.version, api_edge.PLACEHOLDER), wanted.pop(slot.version)
                elif slot.version not in weights:
                    slot.weight = 0
            for version, weight in wanted.items():
                free = next(s for s in slots.values() if s.version not in weights)
                free.version, free.port, free.weight = version, ports.get(version, api_edge.PLACEHOLDER), weight
            api_edge.apply(self._edge().admin_socket, env, slots)

    def confirm(self, served: ServedVersion, *, api_url: str, health_path: str) -> Activation:
        started = time.monotonic()
        wait_healthy(api_url + health_path, HEALTH_TIMEOUT_S)
        return Activation(True, time.monotonic() - started, None, f"the edge routes {served.env} to {served.version}")

    def traffic(self, env: str, since: float) -> dict[str, Traffic]:
        with slots_locked(self._edge()) as state:
            slots = {name: slot.version for name, slot in state.slots(env).items()}
        by_slot = api_edge.traffic(self._edge().admin_socket, env, since)
        found: dict[str, Traffic] = {}
        for name, version in slots.items():
            if version:
                found[version] = found.get(version, Traffic()) + by_slot.get(name, Traffic())
        return found

    def retire(self, env: str, keep: set[str]) -> None:
        doomed = [c for c in self._containers(env) if c.labels.get("coderemote.version") not in keep]
        with slots_locked(self._edge()) as state:
            routed = {slot.version for slot in state.slots(env).values()}
        # Only a version the edge still holds in a slot can have requests in flight; one whose slot went to another
        # version had no weight since the switch before (its last requests ended long ago).
        if any(c.labels.get("coderemote.version") in routed for c in doomed):
            time.sleep(DRAIN_S)
        for container in doomed:
            container.remove(force=True)

    def current(self, env: str) -> dict[str, str] | None:
        with slots_locked(self._edge()) as state:
            live = sorted((s for s in state.slots(env).values() if s.weight > 0), key=lambda s: -s.weight)
        if not live or self._running(env, live[0].version) is None:
            return None
        container = self._running(env, live[0].version)
        labels = {k.removeprefix("coderemote."): v for k, v in container.labels.items() if k.startswith("coderemote.")}
        labels["weights"] = ",".join(f"{s.version}:{s.weight}" for s in live)
        return labels


def _lambda_context(served: ServedVersion, info) -> dict[str, str]:
    """What Lambda gives a function besides its variables, for the API to read its secret at start: the region,
    the role's credentials (the emulator's placeholder ones) and, locally, where Secrets Manager answers."""
    if out.GEMINI_SECRET_ARN_VARIABLE not in served.variables:
        return {}
    return {"AWS_REGION": info.region, "AWS_ENDPOINT_URL_SECRETS_MANAGER": info.moto_endpoint,
            **moto_server.DUMMY_CREDENTIALS}  # fmt: skip


def _alive(container) -> bool:
    container.reload()
    return container.status in ("created", "running")
