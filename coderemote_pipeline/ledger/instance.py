"""The Dagster instance of this installation: DAGSTER_HOME, or the state dir's own (SQLite).

The single-user instance gets the same one-deploy-per-environment queue as the team profile (deploy/dagster.yaml),
so runs launched from the UI or the sensors wait for their environment; runs the CLI executes itself are kept to
one per environment by the lease (ledger/leases.py), which every stage takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from coderemote_pipeline.rules import names

LEGACY_DEFAULT = "telemetry:\n  enabled: false\n"
SINGLE_USER_CONFIG = f"""\
# Written by coderemote-pipeline for a single engineer's instance (SQLite under this directory).
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # One deploy per environment in progress; different environments deploy side by side.
    tag_concurrency_limits:
      - key: "{names.ENV_TAG}"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def dagster_home(state_dir: Path) -> Path:
    """DAGSTER_HOME if set, else the project's own instance inside the state directory."""
    home = Path(os.environ.get("DAGSTER_HOME") or state_dir / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() == LEGACY_DEFAULT:
        config.write_text(SINGLE_USER_CONFIG)
    return home


def open_instance(state_dir: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(dagster_home(state_dir)))
