"""A deploy outlives its terminal, on the real local stack: its reader leaving (`deploy ... | head -1`) or its
terminal hanging up mid-run does not kill it. The run ends as it would have, the release is live, the lease is
free, and the command exits 0 (cli/outlive.py)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.actions.switch import switch_api
from coderemote_pipeline.actions.target_state import read_target
from coderemote_pipeline.ledger.leases import LEASE_TAKEN, Lease
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.resources.targets import local_resources, target_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.sensors.failed_deploy import PATIENCE_S, canceled_deploy_sensor
from coderemote_pipeline.sensors.waiting_settles import waiting_settles_sensor
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment

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


def _a_live_release(settings, instance, app: Path):
    """A new release of the example app live in dev, deployed here: what an interrupted deploy must leave alone."""
    (app / "clone" / "frontend" / "src" / "outlive.css").write_text(f"/* before the stop {time.time()} */\n")
    commit_and_push(app / "clone", "the release live before the interrupted deploy")
    repo = settings.for_app(str(app / "app.git"), settings.app_layout)
    before = run_deployment("dev", "main", settings=repo, instance=instance, executor="serial", echo=print)
    assert before.success, before.failure
    return before


def _ended_live(instance, commit: str) -> None:
    (run,) = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: "dev", names.COMMIT_TAG: commit}))
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert recorded_live(instance, "dev").commit == commit
    assert Lease(instance, "dev").holder() is None


def test_a_reader_that_leaves_does_not_stop_the_deploy(settings, instance, app):
    commit, cli = _deploy(settings, instance, app, "deployed into a pipe closed after one line", stdout=subprocess.PIPE)
    with _stopped_in_the_end(cli):
        assert cli.stdout.readline().startswith(b"deploying ")
        cli.stdout.close()  # `| head -1`: every later write meets a broken pipe
        assert cli.wait(timeout=300) == 0
    _ended_live(instance, commit)


def test_a_terminal_that_hangs_up_mid_run_does_not_stop_the_deploy(settings, instance, app, tmp_path):
    # What a closed terminal or a dropped SSH session sends.
    commit, code = _signalled_mid_run(settings, instance, app, tmp_path, "deployed through a hang-up", signal.SIGHUP)
    assert code == 0, (tmp_path / "deploy.log").read_text()[-2000:]
    _ended_live(instance, commit)


def test_kill_stops_the_deploy_in_its_stage_and_leaves_dev_whole(settings, instance, app, tmp_path):
    """`kill PID` (SIGTERM) stops a deploy as Ctrl-C does: the stage at work fails without the RetryPolicy's retry,
    the run fails, dev stays on its release, the lease is free, and the command exits 130."""
    before = _a_live_release(settings, instance, app)
    commit, code = _signalled_mid_run(settings, instance, app, tmp_path, "deployed, then killed", signal.SIGTERM)
    shown = (tmp_path / "deploy.log").read_text()
    assert code == 130, shown[-2000:]
    assert "interrupted (Ctrl-C or a stop signal): the deploy stopped here" in shown and "Traceback" not in shown
    (run,) = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: "dev", names.COMMIT_TAG: commit}))
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert not instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert recorded_live(instance, "dev").release == before.release
    assert Lease(instance, "dev").holder() is None


def _terminated_half_switched(settings, instance, app):
    """A deploy run ended CANCELED (the UI's Terminate) with the API switched back to the release before and the site
    not: the env split. Returns the run, its cancel event, the release it must be put back on, the target and the
    resources."""
    repo = settings.for_app(str(app / "app.git"), settings.app_layout)
    first = _a_live_release(settings, instance, app)
    second = _a_live_release(settings, instance, app)
    resources = local_resources(repo)
    target = target_for(resources, repo.app_layout)("dev", recorded_live(instance, "dev").stack_outputs)
    switch_api(target, str(first.stages["lambda_version"]["version"]))  # the API went back, the site did not
    tags = dict(instance.get_run_by_id(second.run_id).tags)
    run = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    instance.report_run_canceled(run)
    (canceled,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED)
    return run, canceled, second, target, resources


def _put_back_whole(instance, run, second, target) -> None:
    (account,) = [e for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                  if second.release in (e.message or "") and "after this failure" in (e.message or "")]  # fmt: skip
    assert f"rolled back automatically: dev serves {second.release} again" in account.message, account.message
    state = read_target(target, probe=False)
    assert (state.release, state.frontend_release) == (second.release, second.release)


def _sensor_settles(instance, run, canceled, resources) -> None:
    with dg.build_run_status_sensor_context(
        "canceled_deploy_sensor", canceled.dagster_event, instance, instance.get_run_by_id(run.run_id),
        resources=resources,
    ) as context:  # fmt: skip
        canceled_deploy_sensor(context)


def test_a_deploy_terminated_from_the_ui_half_switched_is_put_back_whole(settings, instance, app):
    """A run the UI terminates ends CANCELED, which the failure sensor never sees: canceled_deploy_sensor settles
    it as failed_deploy_sensor settles a failed one (here, an API left on the other release than the site)."""
    run, canceled, second, target, resources = _terminated_half_switched(settings, instance, app)
    _sensor_settles(instance, run, canceled, resources)
    _put_back_whole(instance, run, second, target)


def test_a_settle_behind_a_long_ui_build_is_left_to_the_waiting_settles_sensor(settings, instance, app):
    """A stage built alone from the UI (minutes for a real app) holds dev's lease when a deploy is terminated half
    switched. The sensor waits for it only PATIENCE_S: an evaluation outlasting the daemon's gRPC timeout would be
    called again while it still waits. The run is tagged waiting, its log says for what, and waiting_settles_sensor
    puts dev back whole once the build frees the lease."""
    run, canceled, second, target, resources = _terminated_half_switched(settings, instance, app)
    build = dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
                          asset_selection=frozenset({names.key(names.API_IMAGE)}),
                          tags={names.ENV_TAG: "dev", names.RELEASE_TAG: second.release})  # fmt: skip
    instance.add_run(build)
    lease = Lease(instance, "dev")
    lease.acquire(build.run_id, log=print, describe=str)
    try:
        started = time.monotonic()
        _sensor_settles(instance, run, canceled, resources)
        assert time.monotonic() - started < PATIENCE_S + 10
        assert instance.get_run_by_id(run.run_id).tags[names.SETTLE_TAG] == names.SETTLE_WAITING
        said = [e.message for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
        assert any(m.startswith(f"not settled yet: run {build.run_id[:8]} (dev|{second.release}") for m in said), said
        assert read_target(target, probe=False).release != second.release  # still split: nothing was read or put
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            said = waiting_settles_sensor(context).skip_message
        assert said == "settled 0 waiting run(s); 1 still waiting for their env's lease", said
    finally:
        lease.release(build.run_id)
        instance.report_run_failed(build, "the test's build ends")
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert f"settled 1 waiting run(s): {run.run_id[:8]}" in waiting_settles_sensor(context).skip_message
    _put_back_whole(instance, run, second, target)
    assert instance.get_run_by_id(run.run_id).tags[names.SETTLE_TAG] == names.SETTLE_DONE
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert waiting_settles_sensor(context).skip_message == "no settle is waiting"
    assert lease.holder() is None


@contextlib.contextmanager
def _stopped_in_the_end(cli: subprocess.Popen):
    try:
        yield
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)


def _signalled_mid_run(settings, instance, app, tmp_path, what: str, signum: int) -> tuple[str, int]:
    """Deploy a new commit from the CLI, send it `signum` once its run holds dev's lease (mid-run): a hang-up to
    its whole process group, as a terminal does, anything else to the command (`kill PID`). Returns the commit and
    the command's exit status."""
    with open(tmp_path / "deploy.log", "wb") as log:
        commit, cli = _deploy(settings, instance, app, what, stdout=log)
    with _stopped_in_the_end(cli):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and cli.poll() is None and not _holds_the_lease(instance, commit):
            time.sleep(0.02)
        (os.killpg if signum == signal.SIGHUP else os.kill)(cli.pid, signum)
        return commit, cli.wait(timeout=300)


def _holds_the_lease(instance, commit: str) -> bool:
    runs = instance.get_runs(dg.RunsFilter(tags={names.COMMIT_TAG: commit}), limit=1)
    return bool(runs) and any(r.user_message.startswith(LEASE_TAKEN) for r in instance.all_logs(runs[0].run_id))


@pytest.mark.parametrize(
    ("when", "event", "step", "ran"),
    [
        # Dagster holds it until the next step starts, which fails with it; the run goes no further.
        ("between two steps", dg.DagsterEventType.STEP_SUCCESS, "api_image", "api_image"),
        # Before the steps watch for it: it is raised out of the run, which is then marked failed here.
        ("while the run is set up", dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, None, None),
    ],
)
def test_ctrl_c_outside_a_stage_stops_the_deploy_and_leaves_dev_whole(
    settings, instance, app, monkeypatch, when, event, step, ran
):
    """A Ctrl-C that lands in Dagster's code rather than a stage's: the deploy ends as a failed run does
    (environment whole, lease free, the run not left STARTED), reported as interrupted."""
    repo = settings.for_app(str(app / "app.git"), settings.app_layout)
    before = _a_live_release(settings, instance, app)
    (app / "clone" / "backend" / "app" / "outlive.txt").write_text(f"{time.time()}\n")
    commit_and_push(app / "clone", f"interrupted {when}")
    store = type(instance).handle_new_event

    def ctrl_c_after(self, stored, *args, **kwargs):
        store(self, stored, *args, **kwargs)
        done = stored.dagster_event
        if done is not None and done.event_type is event and step in (None, done.step_key):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(type(instance), "handle_new_event", ctrl_c_after)
    stopped = run_deployment("dev", "main", settings=repo, instance=instance, executor="serial", echo=print)
    monkeypatch.undo()
    assert stopped.interrupted and not stopped.success
    assert stopped.failure.split(". ")[0].endswith("interrupted (Ctrl-C or a stop signal): the deploy stopped here")
    assert (ran in stopped.stages if ran else stopped.stages == {}) and "traffic_shift" not in stopped.stages
    assert f"dev serves {before.release} " in stopped.failure and "as one whole release" in stopped.failure
    assert instance.get_run_by_id(stopped.run_id).status is dg.DagsterRunStatus.FAILURE
    assert recorded_live(instance, "dev").release == before.release
    assert Lease(instance, "dev").holder() is None
