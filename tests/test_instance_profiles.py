"""The team instance profiles in deploy/ load into real Dagster instances on a real Postgres server, with the queue
limit of one run per environment, run retries for infrastructure failures only, and the right run launcher; the
SQLite profile stays the default. Plus the pure helpers: which failures are retried, peak runs per env."""

import shutil
import urllib.error

import botocore.exceptions
import dagster as dg
import docker.errors
import pytest
import requests.exceptions
import yaml

from coderemote_pipeline.actions.git_cli import RemoteUnreachable
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.instance import open_instance, queue_note
from coderemote_pipeline.ledger.run_queue import DeployRunQueue, missing_deploy_tags, queue_tags
from coderemote_pipeline.local_stack.errors import DockerEngineDown, EmulatorDown, LocalStackNotRunning, RegistryDown
from coderemote_pipeline.resources.docker_engine import ImageBuildFailed
from coderemote_pipeline.resources.image_registry import RegistryError
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import deployment_partitions_def, partition_key
from coderemote_pipeline.rules.pulumi_update import StackBusy
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.rules.transient import is_transient
from testkit.queue import RunWindow, max_in_progress_per_env
from testkit.services import PROFILES_DIR, write_home

PROFILES = {
    "dagster.yaml": "DefaultRunLauncher",
    "dagster.docker.yaml": "DockerRunLauncher",
    "dagster.ecs.yaml": "EcsRunLauncher",
}


@pytest.fixture(scope="module")
def pg_env(postgres, monkeypatch_module):
    postgres.create_database("profiles")
    for key, value in postgres.env("profiles").items():
        monkeypatch_module.setenv(key, value)
    # The ECS launcher makes boto3 clients when it loads (no call): they need a region, and no real credentials.
    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("CODEREMOTE_TARGET", "CODEREMOTE_STATE_DIR", "CODEREMOTE_APP_REMOTE", "GEMINI_API_KEY"):
        monkeypatch_module.setenv(name, "x")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_loads_on_postgres(profile, pg_env, tmp_path):
    home = write_home(tmp_path / "home", profile)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, DeployRunQueue)
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert limits == [{"key": "coderemote/env", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert type(instance.run_launcher).__name__ == PROFILES[profile]
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.run_monitoring_enabled
        # The storage really is that server: a run written here is read back from Postgres.
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
        assert instance.get_run_by_id(run.run_id) is not None


def test_profiles_differ_only_in_the_run_launcher():
    loaded = {name: yaml.safe_load((PROFILES_DIR / name).read_text()) for name in PROFILES}
    base = {k: v for k, v in loaded["dagster.yaml"].items() if k != "run_launcher"}
    assert "run_launcher" not in loaded["dagster.yaml"]  # the base profile launches runs next to the code server
    for name, config in loaded.items():
        assert {k: v for k, v in config.items() if k != "run_launcher"} == base, name
    assert loaded["dagster.docker.yaml"]["run_launcher"]["config"]["network"] == "host"
    # Credentials are references to the environment, never values in the file.
    assert all(isinstance(v, dict) and "env" in v for v in base["storage"]["postgres"]["postgres_db"].values()
               if v != "postgresql+psycopg2")  # fmt: skip


def test_sqlite_stays_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings("local", tmp_path / "state", str(tmp_path / "app.git"), None)
    with open_instance(settings.state_dir) as instance:
        assert type(instance.run_storage).__name__ == "PooledSqliteRunStorage"
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
        # The team's queue rule on one machine too: runs from the UI and the sensors wait for their environment.
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert limits == [{"key": "coderemote/env", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_the_queue_tags_a_deploy_launched_without_our_tags(tmp_path, monkeypatch):
    """The UI's Materialize button gives a run only the partition's tags: under Dagster's own coordinator it passed
    the one-per-env limit. Ours gives it the env first; a run of ours, or of another job, is left as it came."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with open_instance(tmp_path / "state") as instance:
        assert isinstance(instance.run_coordinator, DeployRunQueue)  # its submit_run: test_team_postgres.py

        def submitted(job_name: str, tags: dict[str, str]) -> dict[str, str]:
            run = instance.create_run_for_job(dg.GraphDefinition(job_name).to_job(), tags=tags)
            return {**run.tags, **missing_deploy_tags(run)}

        ui = dict(deployment_partitions_def.get_tags_for_partition_key(partition_key("dev", "main-abc1234")))
        assert submitted(names.REDEPLOY_JOB, ui) == {**ui, names.ENV_TAG: "dev", names.RELEASE_TAG: "main-abc1234",
                                                     names.TRIGGER_TAG: names.TRIGGER_UI}  # fmt: skip
        bare = {names.PARTITION_TAG: "prod|v1.2.0"}  # a client that sets the partition alone
        assert submitted(names.ROLLBACK_JOB, bare)[names.ENV_TAG] == "prod"
        cli = Deployment.of("dev", "main-abc1234", load_policies(), "abc1234" * 5).tags("cli")
        assert submitted(names.DEPLOY_JOB, cli) == cli
        assert names.ENV_TAG not in submitted(names.APPROVAL_JOB, ui)  # an approval does not wait for a deploy
        # A UI re-execution of a CLI run copies its parent's process: the queue empties it (the daemon executes it).
        again = instance.create_run_for_job(dg.GraphDefinition(names.REDEPLOY_JOB).to_job(),
                                            tags={**cli, names.EXECUTED_BY_TAG: "host/boot/ns:4242"})  # fmt: skip
        assert queue_tags(again) == {names.EXECUTED_BY_TAG: ""}
    # The asset graph's Materialize button: Dagster's implicit asset job, the stages selected, the switch among them;
    # an image alone changes nothing users get (its stage still holds the env's lease).
    stages = frozenset(names.key(stage) for stage in names.STAGES)
    graph = dg.DagsterRun(job_name="__ASSET_JOB", tags=ui, asset_selection=stages)
    assert missing_deploy_tags(graph)[names.ENV_TAG] == "dev"
    image = dg.DagsterRun(job_name="__ASSET_JOB", tags=ui, asset_selection=frozenset({names.key(names.API_IMAGE)}))
    assert missing_deploy_tags(image) == {}
    approval = dg.DagsterRun(job_name="__ASSET_JOB", tags=ui,
                             asset_selection=frozenset({names.key(names.RELEASE_APPROVAL)}))  # fmt: skip
    assert missing_deploy_tags(approval) == {}


def test_an_instance_queued_by_dagster_s_own_coordinator_is_told_what_to_change(cli_env, tmp_path, monkeypatch,
                                                                                    capsys):  # fmt: skip
    """A team instance set up before the queue was ours keeps Dagster's (its dagster.yaml is the team's, never
    rewritten): `status` says what to change; an instance with ours says nothing."""
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with open_instance(tmp_path / "state") as instance:
        assert queue_note(instance) is None
    home = tmp_path / "team"
    home.mkdir()
    (home / "dagster.yaml").write_text("run_coordinator:\n  module: dagster.core.run_coordinator\n"
                                       "  class: QueuedRunCoordinator\n")  # fmt: skip
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == ["dev      nothing deployed", "staging  nothing deployed", "prod     nothing deployed"]
    assert lines[3] == (
        f"note: {home / 'dagster.yaml'} queues runs with QueuedRunCoordinator: a deploy launched from the UI is not "
        "queued behind its environment's deploy. Name the run_coordinator module coderemote_pipeline.ledger."
        "run_queue, class DeployRunQueue (deploy/README.md, Upgrading)"
    )


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:  # a chained exception, as `raise ... from` makes it
        return raised


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "Op")


@pytest.mark.parametrize(
    "exc, transient",
    [
        (EmulatorDown("moto down"), True),
        (DockerEngineDown("no engine"), True),
        (_caused(RegistryError("registry not answering"), urllib.error.URLError("refused")), True),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), True),
        (_client_error("ThrottlingException", 400), True),
        (_client_error("InternalError", 500), True),
        (docker.errors.APIError("boom", response=type("R", (), {"status_code": 502})()), True),
        (ImageBuildFailed("docker build of Dockerfile failed"), False),
        (_client_error("AccessDeniedException", 403), False),
        (docker.errors.APIError("nope", response=type("R", (), {"status_code": 404})()), False),
        (LocalStackNotRunning("no stack"), False),
        (ValueError("bad"), False),
        (RegistryDown("registry restarting"), True),
        (RemoteUnreachable("git remote did not answer"), True),
        (StackBusy("another update is in progress"), True),
        (requests.exceptions.ConnectionError("reset"), True),
        # A deployed API answering 500 is the release's fault, for smoke to judge: not a part to try again.
        (requests.exceptions.HTTPError("500", response=type("R", (), {"status_code": 500})()), False),
    ],
)
def test_only_infrastructure_hiccups_are_retried(exc, transient):
    assert is_transient(exc) is transient


def test_peak_runs_in_progress_per_env():
    success = dg.DagsterRunStatus.SUCCESS
    windows = [
        RunWindow("a", "dev", success, 0.0, 5.0),
        RunWindow("b", "dev", success, 5.0, 9.0),  # starts as the other ends: not at the same time
        RunWindow("c", "prod", success, 1.0, 4.0),
        RunWindow("d", "prod", success, 3.0, 6.0),
    ]
    assert max_in_progress_per_env(windows) == {"dev": 1, "prod": 2}


def test_a_state_dir_moved_or_copied_keeps_its_own_history(tmp_path):
    """The config names the history by absolute path: moved, the instance read none (and made the old place
    again); copied, it wrote into the original's. It follows the state dir it is in."""
    with open_instance(tmp_path / "a") as instance:
        instance.add_run(dg.DagsterRun(job_name="deploy_job"))
    shutil.move(tmp_path / "a", tmp_path / "b")
    with open_instance(tmp_path / "b") as instance:
        assert len(instance.get_runs()) == 1
    assert not (tmp_path / "a").exists()
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    with open_instance(tmp_path / "c") as instance:
        instance.add_run(dg.DagsterRun(job_name="deploy_job"))
    with open_instance(tmp_path / "b") as original, open_instance(tmp_path / "c") as copy:
        assert (len(original.get_runs()), len(copy.get_runs())) == (1, 2)
