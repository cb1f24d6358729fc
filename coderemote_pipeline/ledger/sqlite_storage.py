"""The single-user instance's SQLite storage, with connections kept open instead of opened per statement.

Dagster's SQLite storages create an engine and open a connection for every read and every event they store
(`NullPool`), and its default event log writes each run to a file of its own, and asset events twice. A deploy
writes about 70 events: measured on this 2-core machine (2026-12), an empty 9-step run of our shape took 0.44 s on
the default storage, 0.32 s with one event-log file (Dagster's own `ConsolidatedSqliteEventLogStorage`, WAL) and
0.14 s when its connections are also kept. Same tables, same alembic migrations, same queries: the webserver, the
daemon and every CLI command read it with the classes below, named in dagster.yaml (ledger/instance.py).

A kept connection never crosses a fork: each process (a step worker, a forked command) opens its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    SQLITE_EVENT_LOG_FILENAME,
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

# Two connections stay open per database; more threads at once (the webserver) open extra ones, closed on return.
KEPT = 2


def _unsynced_commits(connection: Any, _record: Any) -> None:
    """Each commit written to the WAL without an fsync; the WAL is synced when it is checkpointed into the database.
    A deploy commits some 300 times (events, run status, lease beats): 0.2 ms apiece synced on this machine's disk,
    0.01 ms not (a 4-step run of trivial assets 0.064 -> 0.049 s). Safe in WAL mode, which Dagster's SQLite storages
    set: a process killed at any moment loses nothing, and the database is never corrupted; only a power cut or a
    kernel crash may lose the last seconds of events, as it would the deploy that wrote them."""
    cursor = connection.cursor()
    try:
        # Only there: with a rollback journal (a database made some other way), unsynced commits risk corruption.
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class _KeptEngine:
    """One engine per database file and process, its pool bounded only by what runs at once."""

    def __init__(self, conn_string: str) -> None:
        self._conn_string = conn_string
        self._engine: Engine | None = None
        self._pid = 0

    def get(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            # A forked child must not use its parent's open connections: it makes its own pool, and leaves the
            # parent's alone (closing them here would close the parent's file handles too).
            self._engine = create_engine(
                self._conn_string,
                poolclass=QueuePool,
                pool_size=KEPT,
                max_overflow=-1,
                # The pool hands a connection to one thread at a time; SQLite's own check would refuse the hand-over.
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(self._engine, "connect", _unsynced_commits)
            self._pid = os.getpid()
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.get().connect() as conn, conn.begin():
            yield conn


class _KeepsConnections:
    """What both storages add: a kept engine, closed with the storage."""

    _kept: _KeptEngine

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._kept.dispose()


class PooledSqliteEventLogStorage(_KeepsConnections, ConsolidatedSqliteEventLogStorage):
    """Every run's events in one WAL database (`event_log.db` under `base_dir`), over kept connections."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        # Before the parent's __init__: a new database is indexed there, through _connect.
        self._kept = _KeptEngine(create_db_conn_string(base_dir, SQLITE_EVENT_LOG_FILENAME))
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    def _connect(self) -> AbstractContextManager[Connection]:
        return self._kept.transaction()

    def has_table(self, table_name: str) -> bool:
        # Dagster's asks over a new connection each time, and asks often: each asset event stored, each dynamic
        # partition looked up, each concurrency check (about 1 ms apiece here). A table once there stays: a wipe
        # deletes rows, and migrations only add tables.
        if table_name in self._tables:
            return True
        with self._kept.transaction() as conn:
            found = bool(conn.dialect.has_table(conn, table_name))
        if found:
            self._tables.add(table_name)
        return found


class PooledSqliteRunStorage(_KeepsConnections, SqliteRunStorage):
    """Dagster's SQLite run storage (`runs.db` under `base_dir`), over kept connections."""

    def __init__(self, conn_string: str, inst_data: Any = None) -> None:
        self._kept = _KeptEngine(conn_string)
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteRunStorage:  # type: ignore[override]
        # The parent's names SqliteRunStorage itself; from_local builds `cls`.
        return cls.from_local(inst_data=inst_data, **config_value)

    def connect(self) -> AbstractContextManager[Connection]:
        return self._kept.transaction()
