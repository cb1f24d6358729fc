"""The deploys and rollbacks of an environment over a window, and its delivery figures, read from the ledger only:
no git remote is needed (each run carries its commit's time), and nothing is written."""

from __future__ import annotations

import math

import dagster as dg

from coderemote_pipeline.ledger.figures import figures
from coderemote_pipeline.rules.delivery import Deploy
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.errors import DeployRefused

# Ten years: more than any ledger holds, and far below where a window's start leaves the dates Python and SQL
# can hold (a million days reaches year -711).
MAX_DAYS = 3650


def check_days(days: float) -> float:
    """A window of a finite number of days, more than 0 and at most MAX_DAYS."""
    if not math.isfinite(days) or not 0 < days <= MAX_DAYS:
        raise DeployRefused(f"--days {days:g} must be a number of days more than 0 and at most {MAX_DAYS} "
                            "(e.g. --days 30)")  # fmt: skip
    return days


def history(instance: dg.DagsterInstance, env: str, days: float) -> tuple[list[Deploy], dict[str, float]]:
    return figures(instance, check_env(env), check_days(days))
