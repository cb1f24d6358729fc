"""What serves an environment's API, as the actions layer needs to know it: a version made live, and how.

`ApiServing` is the shape of the `api_runtime` resource (a container per environment on the local target, Lambda
behind its Function URL on AWS); the actions that switch or restore an environment take it as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from coderemote_pipeline.rules.errors import InfrastructureError
from coderemote_pipeline.rules.images import ImageRef


class ApiUnhealthy(RuntimeError):
    pass


@dataclass(frozen=True)
class ServedVersion:
    env: str
    function: str
    version: str
    image: ImageRef
    variables: dict[str, str]


@dataclass(frozen=True)
class Activation:
    reused: bool
    seconds: float
    cold_start_s: float | None
    detail: str
    healthy: bool = True


class ApiServing(Protocol):
    def activate(self, served: ServedVersion, *, api_url: str, command: str, health_path: str) -> Activation:
        """Make `served` the version answering at `api_url`; return once it answers its health path."""

    def current(self, env: str) -> dict[str, str] | None:
        """What is serving the env right now (version, digest), as the runtime itself reports it."""


@dataclass(frozen=True)
class EnvTarget:
    """Everything an action needs to change one environment: its stack outputs, clients and runtime."""

    env: str
    outputs: dict[str, str]
    lam: Any
    s3: Any
    cf: Any
    runtime: ApiServing
    acl: str | None
    container_command: str
    health_path: str


class TargetUnreadable(InfrastructureError):
    """What an environment serves cannot be read now (the emulator or AWS does not answer)."""
