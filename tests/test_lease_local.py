"""One deploy per environment on every path, on the real local stack: two CLI deploys of dev started at the same
moment never work on dev at the same time (their lease windows and steps, from the event log), a staging deploy
runs beside them, and the one that finished last is what dev serves. A deploy SIGKILLed while it holds dev's lease
does not block the next one longer than the reclaim time."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.ledger.leases import LEASE_RELEASED, LEASE_TAKEN
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.rules import names
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("lease-app")
    first = make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
    (root / "clone" / "backend" / "app" / "lease.txt").write_text("second\n")
    second = commit_and_push(root / "clone", "a second commit")
    return root, first, second


def _cli(env: dict[str, str], log: Path, *argv: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(BIN / "coderemote-pipeline"), *argv], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _env(settings, instance, remote: Path) -> dict[str, str]:
    # Each command in its own process: a SIGKILL then kills the run itself, not only a warm process's client.
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "CODEREMOTE_STATE_DIR": str(settings.state_dir),
           "CODEREMOTE_APP_REMOTE": str(remote), "CODEREMOTE_WARM": "0"}  # fmt: skip
    env.pop("CODEREMOTE_APP_CONFIG", None)
    return env


def _run_of(instance, env: str, commit: str) -> dg.DagsterRun:
    runs = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env, names.COMMIT_TAG: commit}), limit=1)
    assert runs, f"no {env} run of {commit[:12]}"
    return runs[0]


def _lease_window(instance, run_id: str) -> tuple[float, float]:
    messages = [(r.timestamp, r.user_message) for r in instance.all_logs(run_id) if r.user_message]
    taken = min(t for t, m in messages if m.startswith(LEASE_TAKEN))
    released = max(t for t, m in messages if m.startswith(LEASE_RELEASED))
    return taken, released


def _step_starts(instance, run_id: str) -> list[float]:
    return [r.timestamp for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]


def test_two_deploys_of_dev_take_turns_while_staging_runs_beside_them(settings, instance, app, tmp_path):
    root, first, second = app
    env = _env(settings, instance, root / "app.git")
    procs = [
        _cli(env, tmp_path / "dev-1.log", "deploy", "dev", first, "--executor", "serial"),
        _cli(env, tmp_path / "dev-2.log", "deploy", "dev", second, "--executor", "serial"),
        _cli(env, tmp_path / "staging.log", "deploy", "staging", first, "--executor", "serial"),
    ]
    for proc, log in zip(procs, ("dev-1", "dev-2", "staging"), strict=True):
        assert proc.wait(timeout=600) == 0, (tmp_path / f"{log}.log").read_text()[-3000:]
    a, b = _run_of(instance, "dev", first), _run_of(instance, "dev", second)
    wa, wb = _lease_window(instance, a.run_id), _lease_window(instance, b.run_id)
    earlier, later = sorted([(wa, a), (wb, b)], key=lambda x: x[0][0])
    assert earlier[0][1] <= later[0][0], "two deploys of dev held its lease at the same time"
    # Every step of the later run but the one that waited for the lease started after the earlier one was done.
    assert all(t >= earlier[0][1] for t in _step_starts(instance, later[1].run_id)[1:])
    waited = [r.user_message for r in instance.all_logs(later[1].run_id) if "waiting for run" in r.user_message]
    assert waited and earlier[1].run_id[:8] in waited[0]
    staging = _lease_window(instance, _run_of(instance, "staging", first).run_id)
    assert staging[0] < max(wa[1], wb[1]) and staging[1] > min(wa[0], wb[0]), "staging should run beside dev"
    last = later[1]
    live = recorded_live(instance, "dev")
    assert live.commit == last.tags[names.COMMIT_TAG]
    with urllib.request.urlopen(live.stack_outputs["api_url"] + "/health", timeout=5) as response:
        assert json.load(response)["commit"] == live.commit


def test_a_killed_holder_is_reclaimed(settings, instance, app, tmp_path, monkeypatch):
    root, _, second = app
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "5")
    env = _env(settings, instance, root / "app.git")
    (root / "clone" / "frontend" / "src" / "killed.css").write_text(f"/* {time.time()} */\n")
    commit = commit_and_push(root / "clone", "deployed by a process that is killed")
    killed = _cli(env, tmp_path / "killed.log", "deploy", "dev", commit, "--executor", "serial")
    deadline = time.monotonic() + 120
    holder = None
    while holder is None and time.monotonic() < deadline and killed.poll() is None:
        runs = instance.get_runs(dg.RunsFilter(tags={names.COMMIT_TAG: commit}), limit=1)
        if runs and any(r.user_message.startswith(LEASE_TAKEN) for r in instance.all_logs(runs[0].run_id)):
            holder = runs[0]
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    assert holder is not None, (tmp_path / "killed.log").read_text()[-2000:]
    lines: list[str] = []
    outcome = run_deployment("dev", second, settings=settings.for_app(str(root / "app.git"), settings.app_layout),
                             instance=instance, executor="serial", echo=lines.append)  # fmt: skip
    assert outcome.success, outcome.failure
    assert any("reclaimed dev's deploy lease" in line and holder.run_id[:8] in line for line in lines), lines
    assert instance.get_run_by_id(holder.run_id).status is dg.DagsterRunStatus.FAILURE
