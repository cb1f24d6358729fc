"""The team profile (deploy/dagster.yaml) on a real Postgres server, against the session's local stack:

- a full dev deploy by the CLI with distinctive AWS and Gemini secrets in its environment, then no log, event or
  metadata anywhere holds them;
- deploys submitted at once through the webserver's GraphQL API: never two of one environment at the same time,
  different environments at the same time (the queued run coordinator's tag limit, the real `dagster-daemon`);
- a daemon restart with runs queued loses and duplicates nothing;
- a run that fails gets, from failed_deploy_sensor in the daemon, the account of what its environment serves.
"""

import contextlib
import itertools
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import docker
import pytest
from team_kit import Team, app_repo

from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.local_stack.dockerd import engine_paths
from coderemote_pipeline.resources.aws import EmulatorAws
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.rules.names import (
    APP_LAYOUT_TAG,
    APP_REMOTE_TAG,
    COMMIT_TAG,
    COMMIT_TIME_TAG,
    ENV_TAG,
    RELEASE_TAG,
    TRIGGER_TAG,
    TRIGGER_UI,
)
from coderemote_pipeline.rules.names import STAGES as STAGE_ORDER
from testkit import queue
from testkit.services import wait_for

pytestmark = pytest.mark.stack
IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # what the asset graph's Materialize button launches
MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION
QUEUED = dg.DagsterRunStatus.QUEUED
BIN = Path(sys.executable).parent
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIACODEREMOTELEAK7Q",
    "AWS_SECRET_ACCESS_KEY": "leak-test-secret-9f8e7d6c5b4a39281706",
    "GEMINI_API_KEY": "gemini-leak-test-key-3a1b2c4d5e6f",
}


@pytest.fixture(scope="module")
def team(postgres, state_dir, local_stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    remote, _, commit = app_repo(root / "app", "team-postgres")
    team = Team(root, postgres, "team", state_dir, remote)
    team.commit, team.remote = commit, remote
    team.open()
    try:
        yield team
    finally:
        team.close()


def _all_rows(postgres, db: str) -> str:
    """Every row of every table of the instance's database, as text (events with their metadata, runs, tags...)."""
    with contextlib.closing(postgres.connect(db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = [row[0] for row in cur.fetchall()]
        text = []
        for table in tables:
            cur.execute(f'SELECT t::text FROM "{table}" t')
            text += [row[0] for row in cur.fetchall()]
    return "\n".join(text)


def _files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_full_dev_deploy_on_postgres_leaks_no_secret(team, postgres, state_dir, local_stack):
    deploy = subprocess.run(
        # A process per step: the step workers' logs are among the places searched.
        [str(BIN / "coderemote-pipeline"), "deploy", "dev", "main", "--executor", "parallel"],
        env={**team.env, **SECRETS},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    runs = team.instance.get_runs()
    assert len(runs) == 1 and runs[0].tags["coderemote/env"] == "dev" and runs[0].job_name == "deploy_job"
    stages = {r.dagster_event.step_key for r in team.instance.all_logs(runs[0].run_id, of_type=MATERIALIZED)}
    assert stages == set(STAGE_ORDER)
    rows = _all_rows(postgres, "team")
    assert runs[0].run_id in rows and "smoke_result" in rows  # the history really is in that Postgres database

    # The key is in the emulator's Secrets Manager; the function's environment names the secret only...
    aws = EmulatorAws(stack=LocalStackResource(state_dir=str(state_dir)))
    function = aws.client("lambda").get_function_configuration(FunctionName="code-remote-dev-api", Qualifier="live")
    variables = function["Environment"]["Variables"]
    assert "GEMINI_API_KEY" not in variables
    stored = aws.client("secretsmanager").get_secret_value(SecretId=variables["GEMINI_API_KEY_SECRET_ARN"])
    assert stored["SecretString"] == SECRETS["GEMINI_API_KEY"] and stored["Name"] == "code-remote-dev/gemini-api-key"
    # ...and the API read it from there at start: it says so, and neither its container nor Docker's files hold it.
    with urllib.request.urlopen(f"http://127.0.0.1:{local_stack.api_ports['dev']}/health", timeout=5) as response:
        assert json.loads(response.read())["gemini_key"] == "configured"
    engine = docker.DockerClient(base_url=local_stack.docker_host)
    api = next(c for c in engine.containers.list() if c.labels.get("coderemote.env") == "dev")
    docker_files = _files_text(engine_paths(state_dir / "local" / "docker").data_root / "containers")
    # ...and no log, event, metadata, tag, label, container or error message anywhere holds any of the three values.
    places = {
        "the API container's configuration (docker inspect)": json.dumps(api.attrs),
        "Docker's own files of the containers": docker_files,
        "CLI output": deploy.stdout + deploy.stderr,
        "compute logs and instance files": _files_text(team.home),
        "event log and run storage (Postgres)": rows,
        "local stack logs": _files_text(state_dir / "local" / "logs"),
        "container logs": "\n".join(c.logs().decode(errors="replace") for c in engine.containers.list(all=True)),
        "container labels": json.dumps([c.labels for c in engine.containers.list(all=True)]),
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{local_stack.api_ports['dev']}/health", timeout=5) as response:
        places["API health"] = response.read().decode()
    leaks = [f"{name} in {where}" for where, text in places.items() for name, value in SECRETS.items() if value in text]
    assert not leaks, leaks


@dataclass
class Batch:
    ids: list[str]
    before: set[str]
    queued_at_stop: list[str]
    windows: dict[str, queue.RunWindow]


@pytest.fixture(scope="module")
def batch(team) -> Batch:
    """Three dev deploys and one staging deploy submitted at once through GraphQL, and the daemon restarted while
    some of them wait in the queue: the two tests below read this one batch (each run costs seconds)."""
    team.serve()
    gql = queue.client(team.web_port)
    before = {r.run_id for r in team.instance.get_runs()}
    release = f"main-{team.commit[:7]}"
    # Submitted before the daemon starts, so its first dequeue sees all four at once.
    ids = [queue.submit_deploy(gql, env, release, team.commit, job_name="redeploy_job", trigger="queue-test")
           for env in ("dev", "dev", "dev", "staging")]  # fmt: skip
    # With none of our tags, from a job's Launchpad and from the asset graph: the queue must still hold them.
    ids.append(queue.submit_as_ui(gql, "dev", release))
    ids.append(queue.submit_as_ui(gql, "dev", release, job_name=IMPLICIT_ASSET_JOB, assets=list(STAGE_ORDER)))
    team.daemon.start()
    wait_for("a dev run in progress with others queued", lambda: _started_and_queued(team.instance, ids), 90)
    team.daemon.stop()
    queued = [r.run_id for r in team.instance.get_runs(dg.RunsFilter(run_ids=ids, statuses=[QUEUED]))]
    time.sleep(3)  # longer than the dequeue interval: with no daemon, nothing leaves the queue
    assert [r.run_id for r in team.instance.get_runs(dg.RunsFilter(run_ids=ids, statuses=[QUEUED]))] == queued
    team.daemon.start()
    windows = team.wait_finished(ids, timeout=300)
    return Batch(ids, before, queued, {w.run_id: w for w in windows})


def test_one_deploy_per_environment_at_a_time(batch, team):
    assert all(w.status is dg.DagsterRunStatus.SUCCESS for w in batch.windows.values()), team.logs()
    devs = [batch.windows[i] for i in (*batch.ids[:3], *batch.ids[4:])]
    staging = batch.windows[batch.ids[3]]
    for a, b in itertools.combinations(devs, 2):
        assert queue.overlap(a, b) == 0.0, (a, b)  # never two dev deploys at the same time...
    assert sum(queue.overlap(staging, d) for d in devs) > 0.0, (staging, devs)  # ...while staging runs beside one
    assert queue.max_in_progress_per_env(batch.windows.values()) == {"dev": 1, "staging": 1}


def test_a_deploy_launched_from_the_ui_is_tagged_like_the_clis(batch, team):
    """It was outside the env's queue, history, the promotion gate, retry and the settle net: none of them saw it."""
    release = f"main-{team.commit[:7]}"
    for run_id in batch.ids[4:]:
        tags = team.instance.get_run_by_id(run_id).tags
        assert {k: tags.get(k) for k in (ENV_TAG, RELEASE_TAG, TRIGGER_TAG, COMMIT_TAG)} == {
            ENV_TAG: "dev", RELEASE_TAG: release, TRIGGER_TAG: TRIGGER_UI, COMMIT_TAG: team.commit}  # fmt: skip
        assert tags[APP_REMOTE_TAG] == str(team.remote) and json.loads(tags[APP_LAYOUT_TAG])["backend_context"]
        assert COMMIT_TIME_TAG in tags
    assert set(batch.ids[4:]) <= {d.run_id for d in deploys(team.instance, "dev")}


def test_daemon_restart_with_runs_queued_loses_and_duplicates_nothing(batch, team):
    assert batch.queued_at_stop, "nothing was left in the queue when the daemon stopped"
    assert all(w.status is dg.DagsterRunStatus.SUCCESS for w in batch.windows.values()), team.logs()
    assert {r.run_id for r in team.instance.get_runs()} == batch.before | set(batch.ids)  # nothing lost or added
    for run_id in batch.ids:  # each launched and executed exactly once
        assert len(team.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)) == 1, run_id


def _started_and_queued(instance, ids) -> bool:
    statuses = {r.status for r in instance.get_runs(dg.RunsFilter(run_ids=ids))}
    return dg.DagsterRunStatus.STARTED in statuses and QUEUED in statuses


def test_a_failed_run_says_what_its_environment_serves(team, batch):
    assert team.daemon.running, "runs after the queue tests (the batch fixture)"
    gql = queue.client(team.web_port)
    release = f"main-{team.commit[:7]}"
    # staging serves this release (the tests above); a commit release to prod is refused by prod's policy.
    refused = queue.submit_deploy(gql, "prod", release, team.commit, job_name="redeploy_job")
    (window,) = team.wait_finished([refused], timeout=120)
    assert window.status is dg.DagsterRunStatus.FAILURE

    def settled():
        events = team.instance.all_logs(refused, of_type=dg.DagsterEventType.ENGINE_EVENT)
        return next((e.message for e in events if (e.message or "").startswith("after this failure:")), None)

    message = wait_for("failed_deploy_sensor's account in the run's log", settled, 60)
    # This instance never deployed prod (other tests' prod lives in other instances).
    assert message == "after this failure: nothing was ever deployed to prod from this instance: nothing of it is live"
