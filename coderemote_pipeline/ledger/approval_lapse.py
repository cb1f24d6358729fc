"""When an approval stops counting: once its env's approvals expire (`approval_expires`), and once a rollback
fled its release (took the env away from it, or past it), since why it was rolled back is a new fact to review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import dagster as dg

from coderemote_pipeline.ledger.releases import fled_since
from coderemote_pipeline.rules.environments import EnvironmentPolicy


class Given(Protocol):
    """An approval as the event log records it (ledger/approvals.py's Decision)."""

    @property
    def by(self) -> str: ...

    @property
    def timestamp(self) -> float: ...


@dataclass(frozen=True)
class Lapse:
    """The moment at or before which an approval no longer counts, why, and what to say of the newest one when it
    is that old."""

    cutoff: float = 0.0
    cause: str = ""
    newest: str = ""


def lapse_of(
    instance: dg.DagsterInstance, policy: EnvironmentPolicy, release: str, approvals: Sequence[Given], now: float
) -> Lapse:
    """Approvals stop counting once a rollback fled the release (why it was rolled back is a new fact to review),
    and once they expire in env."""
    env, newest = policy.name, approvals[0]
    said = f"{env}|{release} was approved by {newest.by} ({when(newest.timestamp)})"
    expired = now - policy.approval_expires_s if policy.approval_expires_s is not None else 0.0
    lasts = (f"approvals in {env} last {_lifetime(policy.approval_expires_s or 0.0)} (approval_expires in "
             "infra/environments.yaml)")
    expiry = Lapse(expired, lasts, f"{said}, and {lasts}: review it, then approve it again")
    standing = [approval.timestamp for approval in approvals if approval.timestamp > expired]
    if not standing:
        return expiry  # no need to read the live history back to an approval that expired anyway
    fled = fled_since(instance, env, release, min(standing)) or 0.0
    rolled = f"a rollback took {env} away from it, or past it, on {when(fled)}"
    if newest.timestamp <= fled:
        return Lapse(fled, rolled, f"{said}, but {rolled}: no approval carries over to deploying it again. Approve "
                                   "it again once the rollback's cause is fixed")  # fmt: skip
    return Lapse(fled, rolled) if expired <= fled else expiry


def _lifetime(seconds: float) -> str:
    if seconds >= 86_400 and seconds % 86_400 == 0:
        return f"{seconds / 86_400:g} d"
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
