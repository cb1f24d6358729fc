"""The team's Dagster processes on one machine, for tests and benchmarks: the code server (what the code-location
container runs), the webserver (UI and GraphQL, where deploys are submitted) and the daemon (run queue, sensors,
run monitoring and retries), all on one DAGSTER_HOME written from a profile in deploy/.

Each process leads its own session and is stopped through its PID's process group, so whatever it forked (the
code server's gRPC child, the daemon's workers) goes with it.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from coderemote_pipeline.local_stack.processes import pid_alive, spawn, stop_pid
from coderemote_pipeline.rules.settings import PROJECT_ROOT

PROFILES_DIR = PROJECT_ROOT / "deploy"
LOCATION = "coderemote_pipeline"
BIN = Path(sys.executable).parent
STOP_TIMEOUT_S = 20.0


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


def write_home(home: Path, profile: str = "dagster.yaml", overrides: dict[str, Any] | None = None) -> Path:
    """DAGSTER_HOME with deploy/<profile> as its dagster.yaml, plus install-specific `overrides` (e.g. volumes)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((PROFILES_DIR / profile).read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump(_merge(config, overrides or {}), sort_keys=False))
    return home


def write_workspace(path: Path, port: int, host: str = "127.0.0.1") -> Path:
    """A workspace that loads the code location from a running code server, as the webserver and daemon of a
    team deployment do (they never import the project themselves)."""
    workspace = {"load_from": [{"grpc_server": {"host": host, "port": port, "location_name": LOCATION}}]}
    path.write_text(yaml.safe_dump(workspace, sort_keys=False))
    return path


class Service:
    """A Dagster process of the team's service, started and stopped like every server of the project."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.pid: int | None = None

    def start(self) -> Service:
        self.pid = spawn(self.argv, log_path=self.log, env=self.env, cwd=PROJECT_ROOT)
        return self

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)

    def stop(self) -> None:
        # The group too: the code server's gRPC child, the daemon's run workers.
        stop_pid(self.pid, timeout=STOP_TIMEOUT_S, group=True)
        self.pid = None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def code_server(port: int, env: dict[str, str], log: Path) -> Service:
    argv = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
            "-m", "coderemote_pipeline.definitions", "--location-name", LOCATION]  # fmt: skip
    return Service("code-server", argv, env, log)


def webserver(port: int, workspace: Path, env: dict[str, str], log: Path) -> Service:
    argv = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    return Service("webserver", argv, env, log)


def daemon(workspace: Path, env: dict[str, str], log: Path) -> Service:
    return Service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, log)


def wait_for(what: str, probe, timeout: float, service: Service | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if service is not None and not service.running:
            break
        time.sleep(0.25)
    tail = f"\n--- {service.name} log ---\n{service.tail()}" if service is not None else ""
    raise TimeoutError(f"{what} (after {timeout:.0f}s){tail}")


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.load(response)
    if data.get("errors"):
        raise RuntimeError(f"GraphQL errors: {data['errors']}")
    return data["data"]


LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"  # noqa: E501


def location_loaded(port: int) -> bool:
    """True once the webserver has loaded the code location; raises if it failed to load."""
    try:
        entries = graphql(port, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, OSError, KeyError):
        return False
    for entry in entries:
        loaded = entry.get("locationOrLoadError") or {}
        if loaded.get("__typename") == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {loaded.get('message')}")
        if entry["name"] == LOCATION and loaded.get("__typename") == "RepositoryLocation":
            return True
    return False
