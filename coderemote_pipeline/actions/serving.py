"""What serves an environment's API, as the actions layer needs to know it: a version made live, and how.

`ApiServing` is the shape of the `api_runtime` resource (a container per environment on the local target, Lambda
behind its Function URL on AWS); the actions that switch or restore an environment take it as a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from coderemote_pipeline.rules.errors import InfrastructureError
from coderemote_pipeline.rules.images import ImageRef
from coderemote_pipeline.rules.traffic import Traffic


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
    """What serves an environment's API, version by version, and how requests are split between versions."""

    def prepare(self, served: ServedVersion, *, command: str, health_path: str) -> Activation:
        """`served` ready to take traffic, taking none yet (locally: its container up and healthy)."""

    def weigh(self, env: str, weights: dict[str, int]) -> None:
        """Split the env's requests by weight (version → percent of requests); unnamed versions get none."""

    def confirm(self, served: ServedVersion, *, api_url: str, health_path: str) -> Activation:
        """Once `served` takes all requests: the API URL answers as it (on AWS: the Function URL follows)."""

    def traffic(self, env: str, since: float) -> dict[str, Traffic]:
        """Per version, what it answered since `since` (epoch seconds): requests, 5xx answers, latencies."""

    def retire(self, env: str, keep: set[str]) -> None:
        """Stop what serves versions outside `keep` (after their requests drained)."""

    def current(self, env: str) -> dict[str, str] | None:
        """What is serving the env right now (version, digest, weights), as the runtime itself reports it."""


class SiteServing(Protocol):
    """What serves the site (the `site_edge` resource): it follows the live-release pointer, forgets paths."""

    def follow(self, env: str, outputs: dict[str, str], release: str) -> str: ...

    def forget(self, env: str, paths: list[str]) -> None: ...

    def forget_command(self, env: str, paths: list[str]) -> str: ...

    def serves(self, env: str, outputs: dict[str, str]) -> str | None: ...


@dataclass(frozen=True)
class EnvTarget:
    """Everything an action needs to change one environment: its stack outputs, clients and runtime."""

    env: str
    outputs: dict[str, str]
    lam: Any
    s3: Any
    cf: Any
    runtime: ApiServing
    site: SiteServing
    acl: str | None
    container_command: str
    health_path: str
    aws_cli: tuple[str, ...] = ("aws",)  # the AWS CLI's first words for this target, in commands printed for people
    # Called right before each write that changes what users get: raises once this writer no longer holds the env's
    # deploy lease (ledger/lease_fence.py). A person's read-only command has no lease to lose.
    fence: Callable[[], None] = lambda: None


class TargetUnreadable(InfrastructureError):
    """What an environment serves cannot be read now (the emulator or AWS does not answer)."""


class TargetMissing(InfrastructureError):
    """The environment's function or alias is not in the target any more (an emulator that was killed, not stopped,
    restarts empty; on AWS, someone deleted it). `missing`: what is gone, without the fix (callers add their own)."""

    def __init__(self, message: str, missing: str = "") -> None:
        super().__init__(message)
        self.missing = missing or message
