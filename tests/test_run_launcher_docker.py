"""The on-prem team shape for real: the code-location image built from deploy/Dockerfile on the local engine (on a
locally made base), its code server running in a container, the daemon on deploy/dagster.docker.yaml (Postgres,
the run queue, DockerRunLauncher), and a push to main deployed to dev by a run in a container of that image,
against the session's local stack. Then a run whose container is killed: run monitoring fails it, run retries
re-execute it from failure, in a new container.
"""

import contextlib
import os
import time
from pathlib import Path

import dagster as dg
import docker
import pytest
from team_kit import app_repo

from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.rules.names import STAGES as STAGE_ORDER
from coderemote_pipeline.usecases.code_image import build_code_image
from coderemote_pipeline.usecases.demo import commit_and_push
from coderemote_pipeline.usecases.progress import failure_text
from testkit import services as sv

pytestmark = pytest.mark.stack
IMAGE = "coderemote/code-location:test"
CODE_SERVER = ["python3", "-m", "dagster", "code-server", "start", "-h", "127.0.0.1",
               "-m", "coderemote_pipeline.definitions", "--location-name", sv.LOCATION]  # fmt: skip
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _mounts(*paths: Path) -> list[str]:
    """Bind mounts at the same path inside: the stack's record, the instance's files and the app remote are read
    by path, exactly as on the host."""
    return [f"{p}:{p}" for p in dict.fromkeys(str(Path(p).resolve()) for p in paths)]


class DockerTeam:
    """The image built, its code server in a container, the daemon on deploy/dagster.docker.yaml."""

    def __init__(self, root: Path, postgres, state_dir: Path, local_stack):
        self.root = root
        self.remote, self.clone, self.head = app_repo(root / "app", "docker-launcher")
        self.engine = docker.DockerClient(base_url=local_stack.docker_host, timeout=600)
        started = time.monotonic()
        self.image_id, self.build_phases = build_code_image(self.engine, IMAGE, local_only=True)
        self.build_s = time.monotonic() - started
        postgres.create_database("docker")
        socket_dir = Path(local_stack.docker_host.removeprefix("unix://")).parent
        # `root` holds the app remote and the instance's home (compute logs land there); the engine's socket lets
        # the run build and start API containers on the stack's engine.
        volumes = _mounts(state_dir, root, socket_dir)
        # Run containers carry the stack's label too, so the stack's `down` removes any a failure leaves behind.
        container_kwargs = {"volumes": volumes, "labels": {"coderemote.stack": local_stack.stack_id}}
        self.home = sv.write_home(root / "home", "dagster.docker.yaml", {
            "run_launcher": {"config": {"container_kwargs": container_kwargs}},
            "run_monitoring": {"poll_interval_seconds": 2},  # the profile's 15 s, shortened for the test
        })  # fmt: skip
        settings_env = {
            "CODEREMOTE_TARGET": "local",
            "CODEREMOTE_STATE_DIR": str(state_dir),
            "CODEREMOTE_APP_REMOTE": str(self.remote),
            "GEMINI_API_KEY": "",
            **postgres.env("docker"),
        }
        self.port = free_port()
        self.code_server = self.engine.containers.run(
            IMAGE,
            command=[*CODE_SERVER, "-p", str(self.port)],
            detach=True,
            network_mode="host",
            environment={**settings_env, "DAGSTER_CURRENT_IMAGE": IMAGE, "CODEREMOTE_SENSOR_INTERVAL_S": "2"},
            volumes=volumes,
            labels={"coderemote.stack": local_stack.stack_id},
        )
        workspace = sv.write_workspace(root / "workspace.yaml", self.port)
        env = {**os.environ, **settings_env, "DAGSTER_HOME": str(self.home), "DOCKER_HOST": local_stack.docker_host}
        env.pop("CODEREMOTE_APP_CONFIG", None)
        self.daemon = sv.daemon(workspace, env, root / "daemon.log")
        self._patch = pytest.MonkeyPatch()
        for key, value in postgres.env("docker").items():
            self._patch.setenv(key, value)
        self.instance = dg.DagsterInstance.from_config(str(self.home))

    def wait(self, probe, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(0.5)
        logs = self.code_server.logs(tail=40).decode(errors="replace")
        pytest.fail(f"timed out after {timeout:.0f}s\n--- daemon ---\n{self.daemon.tail()}\n--- code server ---\n"
                    f"{logs}")  # fmt: skip

    def close(self) -> None:
        self.daemon.stop()
        for run in self.instance.get_runs():
            if "docker/container_id" in run.tags:
                _remove(self.engine, run.tags["docker/container_id"])
        _remove(self.engine, self.code_server.id)
        self.instance.dispose()
        self._patch.undo()


@pytest.fixture(scope="module")
def team(postgres, state_dir, local_stack, tmp_path_factory):
    team = DockerTeam(tmp_path_factory.mktemp("docker-launcher"), postgres, state_dir, local_stack)
    try:
        team.wait(lambda: sv.port_answers(team.port), 120)
        team.daemon.start()  # main_push_sensor, in the code server's container, sees main's head on its first tick
        yield team
    finally:
        team.close()


def test_a_deploy_runs_in_a_container_of_the_code_location_image(team):
    instance, engine = team.instance, team.engine
    run = team.wait(lambda: _finished_deploy(instance, team.head), 420)
    assert run.status is dg.DagsterRunStatus.SUCCESS, _why(instance, engine, run)
    assert run.tags["coderemote/trigger"] == "main_push"
    container = engine.containers.get(run.tags["docker/container_id"])
    assert container.image.id == team.image_id and run.tags["dagster/image"] == IMAGE
    assert "api" in container.attrs["Config"]["Cmd"] and "execute_run" in container.attrs["Config"]["Cmd"]
    assert _materialized(instance, run.run_id) == set(STAGE_ORDER)
    assert any(p.suffix in (".out", ".err") for p in (team.home / "storage").rglob("*"))  # compute logs, mounted
    print(f"code-location image: {team.build_s:.1f}s {team.build_phases}")


def test_a_killed_run_container_is_retried_from_failure(team):
    """run_monitoring sees the run's container gone and fails the run; run_retries re-executes it from failure."""
    instance, engine = team.instance, team.engine
    (team.clone / "backend" / "app" / "killed.txt").write_text(f"{time.time()}\n")
    commit = commit_and_push(team.clone, "deployed by a container that gets killed")
    run = team.wait(lambda: _past(instance, commit, "infra_stack"), 240)
    engine.containers.get(run.tags["docker/container_id"]).kill()
    retry = team.wait(lambda: _finished_child(instance, run.run_id), 420)
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    assert retry.status is dg.DagsterRunStatus.SUCCESS, _why(instance, engine, retry)
    assert (
        retry.tags["dagster/retry_number"] == "1"
        and retry.tags["docker/container_id"] != run.tags["docker/container_id"]
    )
    assert "infra_stack" not in _materialized(instance, retry.run_id)  # it had succeeded before the kill
    assert "smoke_result" in _materialized(instance, retry.run_id)


def _materialized(instance, run_id: str) -> set[str]:
    return {
        r.dagster_event.step_key for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


def _past(instance, commit: str, step: str):
    runs = instance.get_runs(dg.RunsFilter(tags={"coderemote/commit": commit}))
    if not runs:
        return None
    done = instance.all_logs(runs[-1].run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return runs[-1] if any(r.dagster_event.step_key == step for r in done) else None


def _finished_child(instance, parent_id: str):
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": parent_id}))
    return runs[0] if runs and runs[0].status in TERMINAL else None


def _why(instance, engine, run) -> str:
    """The run's own account of its failure, then its container's output."""
    lines = []
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is not None and event.event_type is dg.DagsterEventType.STEP_FAILURE:
            lines.append(f"{event.step_key}: {failure_text(event.step_failure_data.error)}")
        elif event is not None and event.event_type_value in ("ENGINE_EVENT", "RUN_FAILURE", "PIPELINE_FAILURE"):
            lines.append(record.message or "")
    with contextlib.suppress(KeyError, docker.errors.NotFound):
        lines.append(engine.containers.get(run.tags["docker/container_id"]).logs(tail=60).decode(errors="replace"))
    return "\n".join(lines)


def _finished_deploy(instance, commit: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags={"coderemote/commit": commit}))
    return runs[-1] if runs and runs[-1].status in TERMINAL else None


def _remove(engine, container_id: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        engine.containers.get(container_id).remove(force=True)
