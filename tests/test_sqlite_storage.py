"""The single-user instance's storage (ledger/sqlite_storage.py): kept connections, one event-log file, and the
homes earlier versions wrote left on the storage that holds their runs."""

import os
import subprocess
import sys
import threading

import dagster as dg
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

from coderemote_pipeline.ledger.instance import (
    DAGSTER_QUEUE,
    DEPLOY_QUEUE,
    LEGACY_DEFAULT,
    NO_COMPUTE_LOGS,
    PREVIOUS_CONFIG,
    prepare_home,
)
from coderemote_pipeline.ledger.run_queue import DeployRunQueue
from coderemote_pipeline.ledger.sqlite_storage import PooledSqliteEventLogStorage, PooledSqliteRunStorage


@dg.asset
def stage_like() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"seconds": 0.1})


def _materialize(instance: dg.DagsterInstance) -> str:
    return dg.materialize([stage_like], instance=instance).run_id


def test_a_new_home_keeps_every_run_in_one_event_log_read_by_any_process(tmp_path):
    home = prepare_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        runs = [_materialize(instance) for _ in range(3)]
        assert instance.get_latest_materialization_event(stage_like.key).run_id == runs[-1]
    assert (home / "history" / "events" / "event_log.db").exists()
    assert not (home / "history" / "runs").exists()  # no file per run
    # Another process (the webserver, a CLI command) reads the same history from dagster.yaml alone.
    script = (
        "import dagster as dg, sys; i = dg.DagsterInstance.from_config(sys.argv[1]);"
        "print(len(i.get_runs()), len(i.all_logs(sys.argv[2])))"
    )
    seen = subprocess.run([sys.executable, "-c", script, str(home), runs[0]], capture_output=True, text=True,
                          check=True)  # fmt: skip
    count, events = seen.stdout.split()
    assert int(count) == 3 and int(events) > 5


def test_homes_written_by_earlier_versions_keep_the_storage_holding_their_runs(tmp_path):
    dagsters_queue = PREVIOUS_CONFIG.replace(DEPLOY_QUEUE, DAGSTER_QUEUE)  # what the versions before ours wrote
    for name, written in (("legacy", LEGACY_DEFAULT), ("previous", PREVIOUS_CONFIG), ("dagster", dagsters_queue)):
        home = tmp_path / name
        home.mkdir()
        (home / "dagster.yaml").write_text(written)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run_id = _materialize(instance)
        prepare_home(home)
        assert (home / "dagster.yaml").read_text() == PREVIOUS_CONFIG + NO_COMPUTE_LOGS
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert not isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
            assert instance.get_run_by_id(run_id) is not None and instance.all_logs(run_id)
            assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
            assert isinstance(instance.run_coordinator, DeployRunQueue)


def test_a_home_of_ours_gets_our_queue_in_place_of_dagsters(tmp_path):
    home = prepare_home(tmp_path / "home")
    ours = (home / "dagster.yaml").read_text()
    for earlier in (ours.replace(DEPLOY_QUEUE, DAGSTER_QUEUE),
                    ours.replace(DEPLOY_QUEUE, DAGSTER_QUEUE).removesuffix(NO_COMPUTE_LOGS)):  # fmt: skip
        (home / "dagster.yaml").write_text(earlier)
        prepare_home(home)
        assert (home / "dagster.yaml").read_text() == ours


def test_no_run_of_ours_spawns_log_capture_processes(tmp_path):
    """Capture mirrored stdout through `tail -F` and a Python watcher per stream: four processes a run, for a copy
    of the progress lines the event log holds. A home of ours has none; one written by someone else is kept."""
    home = prepare_home(tmp_path / "home")
    captured = (home / "dagster.yaml").read_text().removesuffix(NO_COMPUTE_LOGS)
    (home / "dagster.yaml").write_text(captured)  # what the previous version wrote
    prepare_home(home)
    assert (home / "dagster.yaml").read_text() == captured + NO_COMPUTE_LOGS
    spawned: list[list[str]] = []
    real_popen = subprocess.Popen.__init__

    def record(self, args, *rest, **kwargs):
        spawned.append(list(args))
        real_popen(self, args, *rest, **kwargs)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
        subprocess.Popen.__init__ = record
        try:
            _materialize(instance)
        finally:
            subprocess.Popen.__init__ = real_popen
    assert spawned == []
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    prepare_home(theirs)
    assert (theirs / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_readers_share_the_kept_connections_with_a_run_and_a_fork_opens_its_own(tmp_path):
    """As a deploy runs: the run writes in the main thread while the progress follower and other readers read."""
    home = prepare_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = _materialize(instance)
        errors: list[BaseException] = []
        done = threading.Event()

        def read() -> None:
            try:
                while not done.is_set():
                    instance.get_runs(limit=5)
                    instance.all_logs(first)
            except BaseException as exc:
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        try:
            for _ in range(3):
                _materialize(instance)
        finally:
            done.set()
            for reader in readers:
                reader.join()
        assert errors == []
        pid = os.fork()
        if pid == 0:  # the child writes through its own connection, then leaves without running pytest's exit
            try:
                _materialize(instance)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's kept connections still work after the child used and closed its own.
        _materialize(instance)
        assert len(instance.get_runs()) == 6


def test_a_run_opens_no_connection_once_the_storage_is_warm(tmp_path, monkeypatch):
    """Dagster asks whether a table exists over a new connection, for each asset event it stores and each dynamic
    partition it looks up (about 1 ms apiece): a table once seen is known."""
    import sqlite3.dbapi2

    home = prepare_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("release", ["v1.0.0"])
        _materialize(instance)
        assert instance.has_dynamic_partition("release", "v1.0.0")
        opened, connect = [], sqlite3.dbapi2.connect  # what SQLAlchemy's sqlite dialect calls
        monkeypatch.setattr(sqlite3.dbapi2, "connect", lambda *a, **k: opened.append(a) or connect(*a, **k))
        _materialize(instance)
        assert all(instance.has_dynamic_partition("release", "v1.0.0") for _ in range(5))
        assert opened == []


def test_kept_connections_commit_without_a_sync_only_in_wal_mode(tmp_path):
    """A deploy's ~300 commits cost 0.2 ms apiece synced: WAL with synchronous=NORMAL never corrupts the database
    (only a power cut may lose its last seconds). With a rollback journal it could: there commits stay synced."""
    import sqlite3

    from coderemote_pipeline.ledger.sqlite_storage import _KeptEngine

    home = prepare_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for storage in (instance.run_storage, instance.event_log_storage):
            assert isinstance(storage, PooledSqliteRunStorage | PooledSqliteEventLogStorage)
            with storage._kept.get().connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    sqlite3.connect(tmp_path / "journal.db").execute("CREATE TABLE t (x)").connection.commit()
    kept = _KeptEngine(f"sqlite:///{tmp_path / 'journal.db'}")
    with kept.get().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, SQLite's default
    kept.dispose()
