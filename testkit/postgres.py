"""A throwaway Postgres server for the team profile's tests and benchmarks: Debian's `postgresql` binaries on a
temporary directory and a free port, started and stopped by its own PID (never a system service).

initdb refuses to run as root, so when we are root the cluster belongs to the `postgres` user the Debian package
creates; its directory is made directly under the system temp dir, because that user cannot enter pytest's
private (0700) temp tree. Durability is switched off (fsync, synchronous_commit): the data goes with the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from coderemote_pipeline.local_stack.processes import free_port, log_tail, pid_alive, spawn, stop_pid

PG_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class PostgresUnavailable(RuntimeError):
    pass


def postgres_bin() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin/postgres")), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise PostgresUnavailable(
            f"no Postgres server under {PG_ROOT}: install Debian's `postgresql` (apt-get install postgresql)"
        )
    return versions[-1].parent


@dataclass
class PostgresCluster:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coderemote-pg-")))
    db: str = "dagster"
    user: str = "dagster"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    port: int = 0
    pid: int | None = None

    @property
    def _owner(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, user=self._owner, check=False, timeout=120)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(argv[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> PostgresCluster:
        bin_dir = postgres_bin()
        data, sockets, log = self.root / "data", self.root / "sockets", self.root / "postgres.log"
        sockets.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._owner:
            owner = pwd.getpwnam(self._owner)
            for path in (self.root, sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        pwfile.unlink()
        self.port = free_port()
        argv = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sockets),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]  # fmt: skip
        self.pid = spawn(argv, log_path=log, user=self._owner)
        self._wait(log)
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            conn.cursor().execute(f'CREATE DATABASE "{self.db}"')
        return self

    def connect(self, db: str | None = None):
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=db or self.db
        )

    def create_database(self, name: str) -> None:
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            conn.cursor().execute(f'CREATE DATABASE "{name}"')

    def _wait(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not pid_alive(self.pid):
                break
            with contextlib.suppress(psycopg2.OperationalError):
                self.connect("postgres").close()
                return
            time.sleep(0.2)
        self.stop()
        raise PostgresUnavailable(f"Postgres on port {self.port} did not start:\n{log_tail(log)}")

    def env(self, db: str | None = None) -> dict[str, str]:
        """The variables the team profile reads its credentials from (deploy/dagster.yaml)."""
        return {
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_DB": db or self.db,
            "DAGSTER_PG_PORT": str(self.port),
        }

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our postmaster by its PID, SIGKILL of its group if it hangs; then its files."""
        stop_pid(self.pid, timeout=STOP_TIMEOUT_S, stop_signal=signal.SIGINT, group=True)
        self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)
