"""The release strategy running itself, end to end: the real `dagster-daemon` ticking the git sensors of this code
location on a temporary DAGSTER_HOME, deploying to the session's real local stack.

A push to main → a successful dev run; a stable tag → held; an approval from the CLI → a successful prod run; a
pre-release tag → no run; a daemon restart → no duplicate run. The daemon runs in its own process group and is
stopped by its PID in teardown.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.ledger.approvals import latest_hold
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.rules.settings import PROJECT_ROOT
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.progress import failure_text
from testkit.services import Service

pytestmark = pytest.mark.stack

INTERVAL_S = 2
BIN = Path(sys.executable).parent
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
SENSORS = ("main_push_sensor", "version_tag_sensor", "approved_release_sensor")


class Daemon(Service):
    """`dagster-daemon run` on this project's workspace (testkit's Service: its own session, stopped by PID)."""

    def __init__(self, env: dict[str, str], log: Path):
        super().__init__("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                         env, log)  # fmt: skip


def _wait(what: str, probe, daemon: Daemon, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n--- daemon log tail ---\n{daemon.tail()}")


def _deploy_runs(instance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if r.job_name in ("deploy_job", "redeploy_job")]


def _finished_run(instance, daemon, env: str, release: str, timeout: float) -> dg.DagsterRun:
    def probe():
        runs = [r for r in _deploy_runs(instance) if r.tags.get("dagster/partition") == f"{env}|{release}"]
        return runs[0] if runs and runs[0].status in TERMINAL else None

    run = _wait(f"a finished deploy run of {env}|{release}", probe, daemon, timeout)
    if run.status is not dg.DagsterRunStatus.SUCCESS:
        failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        details = "; ".join(failure_text(r.dagster_event.step_failure_data.error) for r in failures)
        pytest.fail(f"{env}|{release} run {run.run_id} ended {run.status}: {details}\n{daemon.tail()}")
    return run


def _sensor_states(instance) -> dict:
    return {s.name: s for s in instance.all_instigator_state() if s.name in SENSORS}


def _ticked_since(instance, since: float) -> bool:
    states = _sensor_states(instance)
    return len(states) == len(SENSORS) and all(
        s.instigator_data and (s.instigator_data.last_tick_timestamp or 0) > since for s in states.values()
    )


def test_pushes_and_tags_deploy_through_the_daemon(local_stack, state_dir, tmp_path):
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    first = make_app_repo(EXAMPLE_APP, remote, clone)
    home = tmp_path / "dagster_home"
    home.mkdir()
    prepare_home(home)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CODEREMOTE_STATE_DIR": str(state_dir),
        "CODEREMOTE_APP_REMOTE": str(remote),
        "CODEREMOTE_SENSOR_INTERVAL_S": str(INTERVAL_S),
    }
    env.pop("CODEREMOTE_APP_CONFIG", None)
    daemon = Daemon(env, tmp_path / "daemon.log")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        daemon.start()
        try:
            # The sensors are RUNNING by default: the first tick deploys main's head to dev.
            _finished_run(instance, daemon, "dev", f"main-{first[:7]}", timeout=180)
            (clone / "backend" / "app" / "e2e.txt").write_text("pushed while the daemon runs\n")
            pushed = commit_and_push(clone, "a change merged to main")
            run = _finished_run(instance, daemon, "dev", f"main-{pushed[:7]}", timeout=180)
            assert run.tags["coderemote/trigger"] == "main_push" and run.tags["coderemote/commit"] == pushed

            git("tag", "v1.0.0", cwd=clone)
            git("tag", "v1.1.0-beta.1", cwd=clone)
            git("push", "--quiet", "origin", "v1.0.0", "v1.1.0-beta.1", cwd=clone)
            hold = _wait("the prod hold of v1.0.0", lambda: latest_hold(instance, "prod", "v1.0.0"), daemon, 30)
            assert hold.commit == pushed
            approve = subprocess.run(
                [str(BIN / "coderemote-pipeline"), "approve", "prod", "v1.0.0", "--by", "e2e-tester"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert approve.returncode == 0, approve.stderr
            prod = _finished_run(instance, daemon, "prod", "v1.0.0", timeout=180)
            assert prod.tags["coderemote/trigger"] == "approval" and prod.tags["coderemote/commit"] == pushed
            assert prod.job_name == "redeploy_job"  # the commit dev verified: nothing is rebuilt for prod

            # The pre-release was seen in the same tick as v1.0.0: recorded and explained, never deployed.
            tags_state = _sensor_states(instance)["version_tag_sensor"]
            reasons = [
                t.skip_reason or ""
                for t in instance.get_ticks(tags_state.instigator_origin_id, tags_state.selector_id, limit=50)
            ]
            assert any("v1.1.0-beta.1" in r and "never deployed to prod" in r for r in reasons), reasons
            assert instance.has_dynamic_partition("release", "v1.1.0-beta.1")

            before = sorted(r.run_id for r in _deploy_runs(instance))
            daemon.stop()
            restarted = time.time()
            daemon.start()
            # Two full ticks of every sensor after the restart, then the runs must be exactly those from before.
            _wait("ticks after the restart", lambda: _ticked_since(instance, restarted), daemon, 30)
            second = time.time()
            _wait("second ticks after the restart", lambda: _ticked_since(instance, second), daemon, 30)
        finally:
            daemon.stop()
        runs = _deploy_runs(instance)
        assert sorted(r.run_id for r in runs) == before
        assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(
            [f"dev|main-{first[:7]}", f"dev|main-{pushed[:7]}", "prod|v1.0.0"]
        )
        assert not any("beta" in r.tags["dagster/partition"] for r in runs)
