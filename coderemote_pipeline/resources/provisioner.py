"""Infrastructure of one environment: `pulumi up` on AWS (pulumi_provisioner.py), the emulator provisioner on the
local target (emulator_provisioner.py).

Both return the same stack outputs (`stack_outputs.ALL_KEYS`), so no stage downstream knows which one ran.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from coderemote_pipeline.rules.stack_config import StackConfig

BOOTSTRAP_TAG = "bootstrap"


@dataclass
class InfraResult:
    outputs: dict[str, str]
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Resources changed; Pulumi summarises changes per kind ("create: 20"), so this may exceed len(changes).
    change_count: int | None = None

    @property
    def resources_changed(self) -> int:
        return len(self.changes) if self.change_count is None else self.change_count


class InfraProvisioner(dg.ConfigurableResource, ABC):
    @abstractmethod
    def ensure(self, env: str, config: StackConfig, log: Callable[[str], None]) -> InfraResult:
        """Bring the env's stack to its declared state (idempotent) and return its outputs."""

    @abstractmethod
    def preview(self, env: str, config: StackConfig) -> list[str]:
        """What `ensure` would change, without changing anything (`pulumi preview`)."""

    @abstractmethod
    def refresh(self, env: str, config: StackConfig) -> list[str]:
        """Read what the env's stack really is, and say how it differs from what was applied (`pulumi refresh`)."""

    def history(self, env: str) -> list[str]:
        """The stack's own update history, where the target keeps one (Pulumi's backend); the pipeline's own
        record of every infra update is the ledger's (usecases/infra.py)."""
        return []
