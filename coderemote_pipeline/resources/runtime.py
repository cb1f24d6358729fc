"""What serves the live alias: the resource's contract, and the health wait both targets use."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.actions.http_probe import expect_status, probe
from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.rules.traffic import Traffic

HEALTH_TIMEOUT_S = 20.0
# An API that answers, but wrongly (a 500), is judged this long after its first wrong answer.
SETTLE_S = 3.0


class ApiRuntime(dg.ConfigurableResource, ABC):
    """The `api_runtime` resource: actions.serving.ApiServing, for the local target or AWS."""

    @abstractmethod
    def prepare(self, served: ServedVersion, *, command: str, health_path: str) -> Activation: ...

    @abstractmethod
    def weigh(self, env: str, weights: dict[str, int]) -> None: ...

    @abstractmethod
    def confirm(self, served: ServedVersion, *, api_url: str, health_path: str) -> Activation: ...

    @abstractmethod
    def traffic(self, env: str, since: float) -> dict[str, Traffic]: ...

    @abstractmethod
    def retire(self, env: str, keep: set[str]) -> None: ...

    @abstractmethod
    def current(self, env: str) -> dict[str, str] | None: ...


def wait_healthy(url: str, timeout_s: float, alive: Callable[[], bool] | None = None) -> float:
    """Seconds until `url` first answers 200. Raises ApiUnhealthy when the server exits, when nothing answers
    within `timeout_s` (a cold start), or SETTLE_S after its first wrong answer (it is up, and unhealthy)."""
    result = probe("health", url, expect_status(200), start_budget_s=timeout_s, settle_s=SETTLE_S, alive=alive)
    if not result.ok:
        raise ApiUnhealthy(f"{url} is not healthy after {result.seconds:.1f} s: {result.detail}")
    return result.seconds
