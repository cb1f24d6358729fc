"""A deploy outlives its terminal, on the real local stack: its reader leaving (`deploy ... | head -1`) or its
terminal hanging up mid-run does not kill it. The run ends as it would have, the release is live, the lease is
free, and the command exits 0 (cli/outlive.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.ledger.leases import LEASE_TAKEN, Lease
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.rules import names
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("outlive-app")
    make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
    return root


def _deploy(settings, instance, root: Path, what: str, **popen) -> tuple[str, subprocess.Popen]:
    (root / "clone" / "frontend" / "src" / "outlive.css").write_text(f"/* {what} {time.time()} */\n")
    commit = commit_and_push(root / "clone", what)
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "CODEREMOTE_STATE_DIR": str(settings.state_dir),
           "CODEREMOTE_APP_REMOTE": str(root / "app.git"), "CODEREMOTE_WARM": "0"}  # fmt: skip
    env.pop("CODEREMOTE_APP_CONFIG", None)
    argv = [str(BIN / "coderemote-pipeline"), "deploy", "dev", commit, "--executor", "serial"]
    return commit, subprocess.Popen(argv, env=env, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def _ended_live(instance, commit: str) -> None:
    (run,) = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: "dev", names.COMMIT_TAG: commit}))
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert recorded_live(instance, "dev").commit == commit
    assert Lease(instance, "dev").holder() is None


def test_a_reader_that_leaves_does_not_stop_the_deploy(settings, instance, app):
    commit, cli = _deploy(settings, instance, app, "deployed into a pipe closed after one line", stdout=subprocess.PIPE)
    try:
        assert cli.stdout.readline().startswith(b"deploying ")
        cli.stdout.close()  # `| head -1`: every later write meets a broken pipe
        assert cli.wait(timeout=300) == 0
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
    _ended_live(instance, commit)


def test_a_terminal_that_hangs_up_mid_run_does_not_stop_the_deploy(settings, instance, app, tmp_path):
    with open(tmp_path / "deploy.log", "wb") as log:
        commit, cli = _deploy(settings, instance, app, "deployed through a hang-up", stdout=log)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and cli.poll() is None and not _holds_the_lease(instance, commit):
            time.sleep(0.05)
        os.killpg(cli.pid, signal.SIGHUP)  # what a closed terminal or a dropped SSH session sends
        assert cli.wait(timeout=300) == 0, (tmp_path / "deploy.log").read_text()[-2000:]
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
    _ended_live(instance, commit)


def _holds_the_lease(instance, commit: str) -> bool:
    runs = instance.get_runs(dg.RunsFilter(tags={names.COMMIT_TAG: commit}), limit=1)
    return bool(runs) and any(r.user_message.startswith(LEASE_TAKEN) for r in instance.all_logs(runs[0].run_id))
