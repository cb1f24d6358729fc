"""The team deployment on one machine for tests: a DAGSTER_HOME written from a deploy/ profile on the session's
Postgres, and its processes (code server, webserver, daemon) started and stopped by PID."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from testkit import queue
from testkit import services as sv


def app_repo(root: Path, marker: str) -> tuple[Path, Path, str]:
    """(bare remote, clone, head) of the example app with content of its own, so its commit builds afresh."""
    remote, clone = root / "app.git", root / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    (clone / "backend" / "app" / "marker.txt").write_text(f"{marker} {time.time()}\n")
    (clone / "frontend" / "src" / "style.css").write_text(f"/* {marker} */\nbody {{ color: #345; }}\n")
    return remote, clone, commit_and_push(clone, f"content of {marker}")


class Team:
    """One team deployment: env for every process, the instance, and the services (started on demand)."""

    def __init__(self, root: Path, postgres, db: str, state_dir: Path, remote: Path, profile: str = "dagster.yaml"):
        postgres.create_database(db)
        self.root = root
        self.home = sv.write_home(root / "home", profile)
        self.env = {
            **os.environ,
            **postgres.env(db),
            "DAGSTER_HOME": str(self.home),
            "CODEREMOTE_STATE_DIR": str(state_dir),
            "CODEREMOTE_APP_REMOTE": str(remote),
            "CODEREMOTE_SENSOR_INTERVAL_S": "3600",
        }
        self.env.pop("CODEREMOTE_APP_CONFIG", None)
        self.pg_env = postgres.env(db)
        self.code_port, self.web_port = free_port(), free_port()
        self.workspace = sv.write_workspace(root / "workspace.yaml", self.code_port)
        self.code = sv.code_server(self.code_port, self.env, root / "code-server.log")
        self.web = sv.webserver(self.web_port, self.workspace, self.env, root / "webserver.log")
        self.daemon = sv.daemon(self.workspace, self.env, root / "daemon.log")
        self._patch = pytest.MonkeyPatch()
        self.instance: dg.DagsterInstance | None = None

    def open(self) -> dg.DagsterInstance:
        """The instance in this process (its config reads the Postgres credentials from our environment)."""
        for key, value in self.pg_env.items():
            self._patch.setenv(key, value)
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        return self.instance

    def serve(self) -> None:
        """Code server and webserver up, the code location loaded, the git sensors stopped (the tests submit the
        runs); failed_deploy_sensor keeps running."""
        self.code.start()
        sv.wait_for("the code server", lambda: sv.port_answers(self.code_port), 90, self.code)
        self.web.start()
        sv.wait_for("the webserver to load the code location", lambda: sv.location_loaded(self.web_port), 90, self.web)
        queue.stop_sensors(self.web_port, keep=("failed_deploy_sensor",))

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in (self.daemon, self.web, self.code))

    def wait_finished(self, run_ids: list[str], timeout: float) -> list[queue.RunWindow]:
        assert self.instance is not None
        try:
            sv.wait_for("the runs to finish", lambda: queue.all_finished(self.instance, run_ids), timeout)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.logs()}")
        return queue.run_windows(self.instance, run_ids)

    def close(self) -> None:
        for service in (self.daemon, self.web, self.code):
            service.stop()
        if self.instance is not None:
            self.instance.dispose()
        self._patch.undo()
