"""The Dagster instance of this installation: DAGSTER_HOME, or the state dir's own (SQLite).

The single-user instance gets the same one-deploy-per-environment queue as the team profile (deploy/dagster.yaml),
so runs launched from the UI or the sensors wait for their environment; runs the CLI executes itself are kept to
one per environment by the lease (ledger/leases.py), which every stage takes.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import dagster as dg
import yaml
from dagster_shared.check import CheckError

from coderemote_pipeline.ledger.instance_problems import config_problem, unset_variable
from coderemote_pipeline.ledger.run_queue import DeployRunQueue
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.errors import UserError, has_controls
from coderemote_pipeline.rules.schema import ConfigError, read_config_text, yaml_problem

LEGACY_DEFAULT = "telemetry:\n  enabled: false\n"
# Dagster's queued coordinator, which earlier versions named: ours tags a deploy launched from the UI with its
# environment before the queue's limit reads it (ledger/run_queue.py).
DAGSTER_QUEUE = "  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
DEPLOY_QUEUE = "  module: coderemote_pipeline.ledger.run_queue\n  class: DeployRunQueue\n"
QUEUE = f"""\
run_coordinator:
{DEPLOY_QUEUE}  config:
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
# Dagster's default compute log manager mirrors a run's stdout and stderr through a `tail -F` and a Python watcher
# process per stream: four processes per run (per step under the multiprocess executor), measured at 30-240 ms of a
# half-second rollback on this 2-core machine (2026-12). What it captured here was only the CLI's own progress
# lines, which the event log holds already (the stages report through their log, metadata and failure text), and
# its `tail` can drop the last of them on the way to the terminal (dagster-io/dagster#23336). The team profile
# (deploy/) keeps capture: its runs are containers with no terminal of their own.
NO_COMPUTE_LOGS = """\
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


def single_user_config(home: Path) -> str:
    """The instance's history in two SQLite files under `home`/history, read over kept connections (see
    ledger/sqlite_storage.py for why), sensor cursors in Dagster's own schedule storage, no compute log capture."""
    return _captured_config(home) + NO_COMPUTE_LOGS


def _captured_config(home: Path) -> str:
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


class InstanceUnusable(UserError, RuntimeError):
    """The instance's directory or its dagster.yaml cannot be used; the message names which and the fix."""


def _home_variable() -> str:
    return "DAGSTER_HOME" if os.environ.get("DAGSTER_HOME") else "CODEREMOTE_STATE_DIR"


def dagster_home(state_dir: Path) -> Path:
    """DAGSTER_HOME if set, else the project's own instance inside the state directory."""
    # Dagster expands a leading ~ in DAGSTER_HOME: so do we, for the CLI and the daemon to share one instance.
    home = Path(os.path.expanduser(os.environ.get("DAGSTER_HOME") or state_dir / "dagster_home"))
    if not home.is_absolute() and os.environ.get("DAGSTER_HOME"):
        raise InstanceUnusable(f"DAGSTER_HOME={str(home)[:120]!r} is not an absolute path, which Dagster's UI and "
                               "daemon refuse: set it to one")  # fmt: skip
    try:
        return prepare_home(home)
    except OSError as exc:
        why = exc.strerror or "not usable"
        raise InstanceUnusable(f"the Dagster instance directory {str(home)!r} cannot be used ({why}): set "
                               f"{_home_variable()} to a directory you can write") from None  # fmt: skip


def _check_writable_name(home: Path) -> None:
    """The config we write names the storage by the resolved path, in a YAML string that a quote or a backslash
    would break out of (and a control character garble): refused before writing, never for a team's own config."""
    where = str(home.resolve())
    if has_controls(where) or any(c in where for c in '"\\'):
        raise InstanceUnusable(f"the instance directory {where[:120]!r} holds a quote, a backslash or a control "
                               f"character: set {_home_variable()} to a plain path")  # fmt: skip


def prepare_home(home: Path) -> Path:
    """A new home gets the single-user config. One that earlier versions wrote keeps its storage: switching it would
    hide the runs it holds; the bare default they once wrote gains the deploy queue, each config of ours drops
    compute log capture and gets our queue in place of Dagster's. A config someone else wrote is left as it is."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        _check_writable_name(home)
        config.write_text(single_user_config(home))
        return home
    try:
        # Not a plain read: a FIFO there would block the command, a binary file raise a decode error.
        written = read_config_text(config, str(config))
    except ConfigError as exc:
        raise InstanceUnusable(f"{exc}: fix it, or move it away for a new one to be written") from None
    ours = _here(written, home).replace(DAGSTER_QUEUE, DEPLOY_QUEUE)
    if ours == LEGACY_DEFAULT:
        ours = PREVIOUS_CONFIG + NO_COMPUTE_LOGS
    elif ours in (PREVIOUS_CONFIG, _captured_config(home)):
        ours += NO_COMPUTE_LOGS
    elif ours not in (PREVIOUS_CONFIG + NO_COMPUTE_LOGS, single_user_config(home)):
        return home
    if ours != written:
        _check_writable_name(home)
        config.write_text(ours)
    return home


_OUR_HISTORY = re.compile(r'\Arun_storage:\n.*?base_dir: "(?P<home>[^"\n]+)/history"$', re.MULTILINE | re.DOTALL)


def _here(written: str, home: Path) -> str:
    """A config of ours names its storage by absolute path: in a state dir moved or copied elsewhere, it would read
    the old place's history (a copy writes into the original's), or none (a move). It names this home's instead."""
    header = "# Written by coderemote-pipeline for a single engineer's instance (SQLite under this directory).\n"
    body = written.removeprefix(header).removeprefix("telemetry:\n  enabled: false\n")
    found = _OUR_HISTORY.search(body) if written.startswith(header) else None
    if found is None or Path(found["home"]) == home.resolve():
        return written
    return written.replace(f'base_dir: "{found["home"]}/', f'base_dir: "{home.resolve()}/')


_STORAGE_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                             errno.ENOSPC, errno.EDQUOT})  # fmt: skip


def _storage_error(exc: OSError, home: Path) -> bool:
    """An error of the instance's files, which the user fixes by moving a file or choosing another home: one under
    the home, one the home's dagster.yaml names (a base_dir elsewhere), or one the file system refused."""
    if exc.errno in _STORAGE_ERRNOS:
        return True
    if not isinstance(exc.filename, str | bytes):
        return False
    failed = Path(os.fsdecode(exc.filename))
    if failed.resolve().is_relative_to(home.resolve()):
        return True
    try:
        named = (home / "dagster.yaml").read_text(errors="replace")
    except OSError:
        return False
    # The path itself or a directory above it, as the config writes it (the root and top directories say nothing).
    return any(str(place) in named for place in (failed, *failed.parents) if len(place.parts) > 2)


def open_instance(state_dir: Path) -> dg.DagsterInstance:
    home = dagster_home(state_dir)
    try:
        instance = dg.DagsterInstance.from_config(str(home))
    except OSError as exc:  # a file where the storage's directory goes, a directory it may not write
        if not _storage_error(exc, home):
            raise  # a network error of a team database, or a bug: its own text and traceback say more
        where, why = f" ({exc.filename})" if exc.filename else "", exc.strerror or "not usable"
        raise InstanceUnusable(f"the instance's storage cannot be opened{where}: {why}. Move that away, or "
                               f"set {_home_variable()} to a directory you can write") from None  # fmt: skip
    except CheckError as exc:
        # A `module:`/`class:` of a storage, launcher or coordinator that does not import: Dagster says it as a
        # failed internal check, with a traceback.
        said = str(exc).removeprefix("Failure condition: ")
        if "to parse to dictionary" in said:  # its text follows: a file that is no config at all
            raise InstanceUnusable(f"{home / 'dagster.yaml'}: expected a mapping of keys at the top level: fix it, "
                                   "or move it away for a new one to be written") from None  # fmt: skip
        if "configurable class" not in said:
            raise
        raise InstanceUnusable(f"{home / 'dagster.yaml'}: {said[:240]}: fix the module or class name, or move the "
                               "file away for a new one to be written") from None  # fmt: skip
    except (dg.DagsterInvalidConfigError, yaml.YAMLError) as exc:
        # Dagster's own text runs to a page, with the file's values in it: the file and the first problem suffice.
        if isinstance(exc, dg.DagsterInvalidConfigError):
            problem = config_problem(exc)
        else:
            problem = "not valid YAML" + yaml_problem(exc, _text_or_nothing(home / "dagster.yaml"))
        if variable := unset_variable(exc):
            # The team profile reads its database settings from the environment: the fix is the variable.
            raise InstanceUnusable(f"{home / 'dagster.yaml'} reads {variable} from the environment, which is not "
                                   f"set or not valid: set {variable} (deploy/README.md)") from None  # fmt: skip
        raise InstanceUnusable(f"{home / 'dagster.yaml'} is not a valid Dagster instance config ({problem[:160]}): "
                               "fix it, or move it away for a new one to be written") from None  # fmt: skip
    if instance.run_monitoring_settings.get("free_slots_after_run_end_seconds"):
        # The daemon would free the slots of an ended run: an environment's deploy lease, which a failed run keeps
        # for its retry and its settle holds while it puts the environment back whole (ledger/leases.py).
        instance.dispose()
        raise InstanceUnusable(f"{home / 'dagster.yaml'} sets run_monitoring.free_slots_after_run_end_seconds, which "
                               "would free an environment's deploy lease while a failed run is being put back: "
                               "remove it (stale leases are reclaimed without it)")  # fmt: skip
    return instance


def _text_or_nothing(config: Path) -> str:
    try:
        return read_config_text(config, str(config))
    except ConfigError:
        return ""


def queue_note(instance: dg.DagsterInstance) -> str | None:
    """What to change when the instance's runs are not queued by ours: a team instance set up before the queue was
    ours keeps Dagster's until its dagster.yaml is edited (prepare_home rewrites only configs we wrote)."""
    coordinator = instance.run_coordinator
    if isinstance(coordinator, DeployRunQueue):
        return None
    how = "queues" if isinstance(coordinator, dg.QueuedRunCoordinator) else "launches"
    return (f"note: {Path(instance.root_directory) / 'dagster.yaml'} {how} runs with {type(coordinator).__name__}: "
            "a deploy launched from the UI is not queued behind its environment's deploy. Name the run_coordinator "
            "module coderemote_pipeline.ledger.run_queue, class DeployRunQueue (deploy/README.md, Upgrading)")
