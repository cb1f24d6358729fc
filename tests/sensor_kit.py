"""Helpers for sensor tests: a real git remote to push into, and one sensor tick evaluated as the daemon would."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from ledger_kit import record_smoke

from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.readiness import TargetReadiness
from coderemote_pipeline.rules.release_keys import commit_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import git


class AppRepo:
    """A bare remote (what the sensors watch) and a working clone that pushes into it."""

    def __init__(self, root: Path):
        self.remote, self.clone = root / "app.git", root / "clone"
        subprocess.run(["git", "init", "--bare", "--quiet", "-b", "main", str(self.remote)], check=True)
        subprocess.run(["git", "clone", "--quiet", str(self.remote), str(self.clone)], check=True, capture_output=True)
        self.git("checkout", "--quiet", "-B", "main")
        # The layout the default app config names, so `deploy` gets past its path checks (nothing builds here).
        for path, text in {"backend/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
                           "frontend/package.json": "{}\n"}.items():  # fmt: skip
            (self.clone / path).parent.mkdir(parents=True, exist_ok=True)
            (self.clone / path).write_text(text)
        self.git("add", "-A")

    def git(self, *args: str) -> str:
        return git(*args, cwd=self.clone)

    def commit(self, message: str) -> str:
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, message: str) -> str:
        sha = self.commit(message)
        self.git("push", "--quiet", "origin", "HEAD:main")
        return sha

    def force_main(self, commit: str) -> None:
        self.git("reset", "--quiet", "--hard", commit)
        self.git("push", "--quiet", "--force", "origin", "HEAD:main")

    def tag(self, name: str, commit: str = "HEAD", *, annotated: bool = False, force: bool = False) -> None:
        self.git("tag", *(["-a", "-m", name] if annotated else []), *(["-f"] if force else []), name, commit)
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", f"refs/tags/{name}")

    def side_commit(self, branch: str, message: str) -> str:
        """A commit on another branch (pushed), main untouched: e.g. a hotfix branch not merged yet."""
        self.git("checkout", "--quiet", "-b", branch)
        sha = self.commit(message)
        self.git("push", "--quiet", "origin", branch)
        self.git("checkout", "--quiet", "main")
        return sha


def settings_for(state_dir: Path, remote: str) -> Settings:
    return Settings(target="local", state_dir=state_dir, app_remote=remote, app_config=None)


@dataclass
class Tick:
    run_requests: list[dg.RunRequest]
    skip: str | None
    cursor: str | None
    partitions: list[str]
    events: list[Any]
    logs: list[str] = field(default_factory=list)

    @property
    def cursor_json(self) -> dict[str, Any]:
        return json.loads(self.cursor) if self.cursor else {}

    def logged(self, fragment: str) -> bool:
        return any(fragment in line for line in self.logs)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


class ReachableAws(AwsResource):
    """The target as the sensors' decision tests take it: there. Whether it is, the sensors ask the real resources
    (test_git_sensors.py, against the local stack and without it; test_aws_target.py for the aws target)."""

    def _session_kwargs(self) -> dict[str, Any]:
        return {}

    def endpoint_url(self) -> str | None:
        return None

    @property
    def object_acl(self) -> str | None:
        return None

    def check_reachable(self) -> None:
        return None


def tick(
    settings: Settings,
    instance: dg.DagsterInstance,
    sensor: str,
    cursor: str | None,
    readiness: TargetReadiness | None = None,
) -> Tick:
    """Evaluate one tick of `sensor` from `cursor`, with the code location's own definitions and resources."""
    defs = build_defs(settings)
    app_source = AppSource(**settings.app_source_fields())
    logs: list[str] = []
    resources = {"app_source": app_source, "environments": Environments(infra_dir=str(settings.infra_dir)),
                 "readiness": readiness or TargetReadiness(aws=ReachableAws())}  # fmt: skip
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs,
        sensor_name=sensor,
        resources=resources,
    ) as context:
        context.log.addHandler(_Collect(logs))
        data = defs.resolve_sensor_def(sensor).evaluate_tick(context)
    partitions = [key for request in data.dynamic_partitions_requests or [] for key in request.partition_keys]
    return Tick(
        run_requests=list(data.run_requests or []),
        skip=data.skip_message,
        cursor=data.cursor,
        partitions=partitions,
        events=list(data.asset_events or []),
        logs=logs,
    )


def apply(instance: dg.DagsterInstance, result: Tick) -> None:
    """What the daemon does with a tick's output besides launching runs: register partitions, store events."""
    if result.partitions:
        instance.add_dynamic_partitions("release", result.partitions)
    for event in result.events:
        instance.report_runless_asset_event(event)


def verified_in_dev(instance: dg.DagsterInstance, commit: str) -> None:
    """Record that `commit` passed smoke in dev, as a dev deploy would: prod's promotion gate then lets it through."""
    record_smoke(instance, "dev", commit_release_key("main", commit), commit)


@contextlib.contextmanager
def cli_environment(root: Path, remote: Path, monkeypatch, infra: Path | None = None):
    """(settings, instance) exactly as the CLI sees them: DAGSTER_HOME and CODEREMOTE_* in the environment."""
    home = root / "dagster_home"
    home.mkdir()
    prepare_home(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(root / "state"))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", str(remote))
    if infra is not None:
        monkeypatch.setenv("CODEREMOTE_INFRA_DIR", str(infra))
    monkeypatch.delenv("CODEREMOTE_APP_CONFIG", raising=False)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield Settings.from_env(), instance

