"""The deploys and rollbacks of an environment over a window, and its delivery figures, read from the ledger only:
no git remote is needed (each run carries its commit's time), and nothing is written."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.ledger.figures import figures
from coderemote_pipeline.rules.delivery import Deploy
from coderemote_pipeline.rules.errors import DeployRefused
from coderemote_pipeline.rules.partitions import check_env


def history(instance: dg.DagsterInstance, env: str, days: float) -> tuple[list[Deploy], dict[str, float]]:
    if days <= 0:
        raise DeployRefused(f"--days {days:g} must be more than 0")
    return figures(instance, check_env(env), days)
