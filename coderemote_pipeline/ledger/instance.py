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
QUEUE = f"""\
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
# What earlier versions wrote: Dagster's default SQLite layout (a file per run), kept by the homes that have it.
PREVIOUS_CONFIG = f"""\
# Written by coderemote-pipeline for a single engineer's instance (SQLite under this directory).
telemetry:
  enabled: false
{QUEUE}"""
STORAGE = "coderemote_pipeline.ledger.sqlite_storage"


def single_user_config(home: Path) -> str:
    """The instance's history in two SQLite files under `home`/history, read over kept connections (see
    ledger/sqlite_storage.py for why), sensor cursors in Dagster's own schedule storage."""
    history, schedules = home.resolve() / "history", home.resolve() / "schedules"
    return f"""\
# Written by coderemote-pipeline for a single engineer's instance (SQLite under this directory).
telemetry:
  enabled: false
run_storage:
  module: {STORAGE}
  class: PooledSqliteRunStorage
  config:
    base_dir: "{history}"
event_log_storage:
  module: {STORAGE}
  class: PooledSqliteEventLogStorage
  config:
    base_dir: "{history / "events"}"
schedule_storage:
  module: dagster._core.storage.schedules
  class: SqliteScheduleStorage
  config:
    base_dir: "{schedules}"
{QUEUE}"""


def dagster_home(state_dir: Path) -> Path:
    """DAGSTER_HOME if set, else the project's own instance inside the state directory."""
    return prepare_home(Path(os.environ.get("DAGSTER_HOME") or state_dir / "dagster_home"))


def prepare_home(home: Path) -> Path:
    """A new home gets the single-user config. One that earlier versions wrote keeps its storage: switching it would
    hide the runs it holds; the bare default they once wrote gains the deploy queue."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(single_user_config(home))
    elif config.read_text() == LEGACY_DEFAULT:
        config.write_text(PREVIOUS_CONFIG)
    return home


def open_instance(state_dir: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(dagster_home(state_dir)))
