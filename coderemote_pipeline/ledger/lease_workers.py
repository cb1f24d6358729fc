"""Which processes are at work under an environment's deploy lease: one row per process and (run, step), each
written only by its own process.

deploy_job runs two steps of one run at once, in two processes. When they shared one value (read, add yourself,
write), one could overwrite the other's fresh entry; and once a process known to have exited stopped counting as
at work, a lost entry plus a dead writer showed nobody at work while a step still worked: a second deploy went on
beside it. A row per process cannot be lost that way. Rows live in the run storage's key-value table beside the
lease's beat (ledger/lease_beat.py), read by their common prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from dagster._core.storage.runs.schema import KeyValueStoreTable
from sqlalchemy import and_, select

from coderemote_pipeline.ledger.process_place import alive_here, gone_from_here, process_place

# Rows older than this are of processes that were killed mid-step (or elsewhere): dropped by the next reader.
FORGET_S = 120.0

Work = tuple[str, str]  # (run_id, step)


def token() -> str:
    """This process as the rows name it: its pid where that pid means it (the host, its boot, its pid namespace)."""
    return f"{os.getpid()}@{process_place() or socket.gethostname()}"


def alive(worker: str, seen_at: float) -> bool:
    """The worker's process, last seen at `seen_at`, is known to still run (on this host, boot and pid namespace),
    however long it has been silent: stopped (Ctrl-Z, SIGSTOP, a debugger), it may go on where it was."""
    pid, _, place = worker.partition("@")
    return pid.isdigit() and alive_here(place, int(pid), seen_at)


def gone(worker: str) -> bool:
    """The worker's process is known to have exited (it was on this host, boot and pid namespace)."""
    pid, _, place = worker.partition("@")
    return pid.isdigit() and gone_from_here(place, int(pid))


class Workers:
    """The rows of one environment's lease, in one run storage."""

    def __init__(self, storage, key: str):
        self._storage, self._prefix = storage, f"{key}/at/"

    def _key(self, work: Work) -> str:
        return f"{self._prefix}{token()}/{work[0]}/{work[1]}"

    def mark(self, work: Work) -> None:
        """This process works for `work`, now."""
        value = {"run_id": work[0], "step": work[1], "worker": token(), "at": time.time()}
        self._storage.set_cursor_values({self._key(work): json.dumps(value)})

    def unmark(self, work: Work) -> None:
        """This process no longer works for `work`."""
        with self._storage.connect() as conn:
            conn.execute(KeyValueStoreTable.delete().where(KeyValueStoreTable.c.key == self._key(work)))

    def read(self) -> dict[Work, dict[str, float]]:
        """Per (run, step), each process's last beat for it. Rows of processes long silent or known gone are
        dropped, each only if unchanged since it was read."""
        column = KeyValueStoreTable.c
        with self._storage.connect() as conn:
            rows = conn.execute(select(column.key, column.value).where(column.key.like(f"{self._prefix}%"))).all()
        now, found, dropped = time.time(), {}, []
        for key, value in rows:
            if not key.startswith(self._prefix):
                continue  # LIKE's "_" matched another env's name
            row = json.loads(value)
            if gone(row["worker"]) or (now - float(row["at"]) > FORGET_S and not alive(row["worker"], row["at"])):
                dropped.append((key, value))
                continue
            found.setdefault((row["run_id"], row["step"]), {})[row["worker"]] = float(row["at"])
        if dropped:  # housekeeping: a storage refusing it (busy, read-only) must not fail the read
            with contextlib.suppress(Exception), self._storage.connect() as conn:
                for key, value in dropped:  # a value rewritten meanwhile is a live process's: kept
                    conn.execute(KeyValueStoreTable.delete().where(and_(column.key == key, column.value == value)))
        return found
