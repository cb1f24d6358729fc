"""The app's own checks gate every release, on the real local stack: a commit whose tests fail never goes live, a
check that hangs is stopped at its limit, a failing frontend check stops the release before the switch, a commit
that passed its checks in dev is not checked again for prod, and `--skip-checks --reason` is on the record."""

import json
import threading
import time
import urllib.request
from dataclasses import replace

import dagster as dg
import pytest

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment

pytestmark = pytest.mark.stack
QUIET = {"echo": lambda _: None}


def _serves(instance, env: str) -> tuple[str, str]:
    outputs = recorded_live(instance, env).stack_outputs
    with urllib.request.urlopen(outputs["api_url"] + "/health", timeout=5) as api:
        release = json.load(api)["release"]
    with urllib.request.urlopen(outputs["frontend_url"] + "/config.json", timeout=5) as site:
        return release, json.load(site)["release"]


def _evaluations(instance, run_id: str) -> dict[str, dict]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    found = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        found[evaluation.check_name] = {"passed": evaluation.passed, **meta}
    return found


@pytest.fixture(scope="module")
def app(settings, instance, tmp_path_factory):
    root = tmp_path_factory.mktemp("checks-app")
    make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
    mine = replace(settings, app_remote=str(root / "app.git"))
    good = run_deployment("dev", "main", settings=mine, instance=instance, **QUIET)
    assert good.success, good.failure
    evaluations = _evaluations(instance, good.run_id)
    assert set(evaluations) == {"backend_tests", "backend_lint", "frontend_check"}
    assert all(e["passed"] and e["ran"] for e in evaluations.values())
    assert evaluations["backend_tests"]["network_isolated"] and evaluations["backend_tests"]["seconds"] > 0
    # The backend's checks (each its own container and copy of the tree) ran at once; the frontend's share a tree.
    assert [evaluations[n]["side_by_side"] for n in ("backend_tests", "backend_lint", "frontend_check")] == [
        True, True, False]  # fmt: skip
    # One process (auto): the frontend's check started beside the image build, the backend's beside its push, and
    # their steps collected them.
    assert good.job_name == names.REDEPLOY_JOB
    assert [evaluations[n]["ran_ahead"] for n in ("backend_tests", "backend_lint", "frontend_check")] == [
        True, True, True]  # fmt: skip
    return mine, root / "clone", good


def test_a_failing_backend_test_never_goes_live(app, instance):
    settings, clone, good = app
    test_file = clone / "backend" / "tests" / "test_api.py"
    original = test_file.read_text()
    test_file.write_text(original + "\n\nclass Broken(unittest.TestCase):\n    def test_the_release_is_ready(self):\n"
                         "        self.assertEqual('ready', 'not ready', 'the release is not ready')\n")  # fmt: skip
    (clone / "frontend" / "src" / "style.css").write_text("body { color: green; }\n")
    commit_and_push(clone, "a failing test")
    failed = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    test_file.write_text(original)
    assert not failed.success and "backend_checks: 1 check(s) failed, nothing went live" in failed.failure
    assert "check backend_tests (`python3 -m unittest discover -s tests`) exited 1" in failed.failure
    assert "the release is not ready" in failed.failure  # the tail of the check's own output
    assert "traffic_shift" not in failed.stages
    assert _serves(instance, "dev") == (good.release, good.release)
    # Stopped before release: on the history, but no change failure (dev served its release throughout).
    listed = next(d for d in deploys(instance, "dev") if d.run_id == failed.run_id)
    assert (listed.failed_step, listed.outcome) == ("backend_checks", "stopped")
    evaluations = _evaluations(instance, failed.run_id)
    assert evaluations["backend_tests"]["passed"] is False and evaluations["backend_tests"]["exit_code"] == 1
    assert evaluations["backend_tests"]["ran_ahead"]  # it failed ahead, and failed its step as it would have there
    assert "the release is not ready" in evaluations["backend_tests"]["output"]
    # The lint beside it ran to its own verdict: a failure of one side-by-side check cuts no other short.
    assert evaluations["backend_lint"]["passed"] is True and evaluations["backend_lint"]["side_by_side"]


def test_a_check_that_hangs_is_stopped_at_its_limit(app, instance, tmp_path):
    settings, clone, good = app
    config = tmp_path / "app.yaml"
    config.write_text("checks:\n  - name: backend_hangs\n    side: backend\n"
                      "    command: python3 -c \"import time; time.sleep(120)\"\n    timeout_s: 2\n")  # fmt: skip
    (clone / "backend" / "app" / "HANG").write_text("x\n")
    commit_and_push(clone, "a check that hangs")
    hung = run_deployment("dev", "main", settings=replace(settings, app_config=config), instance=instance, **QUIET)
    assert not hung.success and "check backend_hangs" in hung.failure
    assert "was stopped at its limit of 2 s" in hung.failure
    assert _serves(instance, "dev") == (good.release, good.release)


def test_a_failing_frontend_check_stops_the_release_before_the_switch(app, instance):
    settings, clone, good = app
    script = clone / "frontend" / "src" / "app.js"
    original = script.read_text()
    script.write_text(original + "\nfunction broken( {\n")
    commit_and_push(clone, "a frontend that does not parse")
    failed = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    script.write_text(original)
    assert not failed.success and "frontend_checks: 1 check(s) failed" in failed.failure
    assert "check frontend_check (`node tools/check.mjs`) exited 1" in failed.failure and "src/app.js" in failed.failure
    assert "traffic_shift" not in failed.stages
    # It failed ahead, beside the image build, and failed its step exactly as it would have there.
    assert _evaluations(instance, failed.run_id)["frontend_check"]["ran_ahead"] is True
    assert _serves(instance, "dev") == (good.release, good.release)


def test_checks_run_once_per_commit_and_skip_checks_is_on_the_record(app, instance, capsys, monkeypatch):
    settings, clone, _ = app
    commit = commit_and_push(clone, "a good commit again")
    dev = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    assert dev.success, dev.failure
    git("tag", "v7.0.0", cwd=clone)
    git("push", "--quiet", "origin", "v7.0.0", cwd=clone)
    record_decision(settings, instance, "prod", parse_release_key("v7.0.0"), by="checker", decision="approve",
                    reason="")  # fmt: skip
    prod = run_deployment("prod", "v7.0.0", settings=settings, instance=instance, **QUIET)
    assert prod.success, prod.failure and prod.commit == commit
    reused = _evaluations(instance, prod.run_id)
    # Not one check ran for prod: each result is dev's, for the same commit and build inputs.
    assert {name: (e["ran"], e["reused_from_run"]) for name, e in reused.items()} == {
        name: (False, dev.run_id) for name in ("backend_tests", "backend_lint", "frontend_check")
    }

    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", settings.app_remote)
    (clone / "backend" / "app" / "HOTFIX").write_text("urgent\n")
    hotfix = commit_and_push(clone, "a hotfix")
    assert main(["deploy", "dev", hotfix, "--skip-checks", "--reason", "outage, tests later", "--by", "pat"]) == 0
    capsys.readouterr()
    run = instance.get_runs(dg.RunsFilter(tags={names.COMMIT_TAG: hotfix}), limit=1)[0]
    skipped = _evaluations(instance, run.run_id).values()
    assert all(not e["ran"] and e["skipped"] == "outage, tests later" for e in skipped)
    assert main(["history", "dev"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if hotfix[:12] in x)
    assert "checks skipped: outage, tests later (pat)" in line

    # Its checks were skipped where it was built: the next env promotes dev's image by digest, under a name of its own
    # repository the engine has never pulled, and runs the backend's checks in it (once a 404 "No such image").
    staging = run_deployment("staging", hotfix, settings=settings, instance=instance, **QUIET)
    assert staging.success, staging.failure
    ran = _evaluations(instance, staging.run_id)
    assert {name: (e["passed"], e["ran"]) for name, e in ran.items()} == {
        name: (True, True) for name in ("backend_tests", "backend_lint", "frontend_check")
    }


def test_a_check_longer_than_the_reclaim_time_keeps_the_lease_alive(app, instance, tmp_path, monkeypatch):
    """A check is a step of its own between two stages: it heartbeats the env's deploy lease as a stage does, so
    no other deploy may reclaim the lease (and mark this run failed) while the check works. Last of the module: its
    release goes live in dev, which the tests above compare with the fixture's."""
    settings, clone, _ = app
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "4")
    config = tmp_path / "app.yaml"
    config.write_text("checks:\n  - name: backend_slow\n    side: backend\n"
                      "    command: python3 -c \"import time; time.sleep(7)\"\n")  # fmt: skip
    (clone / "backend" / "app" / "SLOW").write_text("x\n")
    commit_and_push(clone, "a check slower than the reclaim time")
    silences: list[float] = []
    done = threading.Event()

    def watch() -> None:  # its own instance: the run uses the test's from this thread
        with dg.DagsterInstance.from_ref(instance.get_ref()) as mine:
            lease = Lease(mine, "dev")
            while not done.wait(0.25):
                holder = lease.holder()
                if holder is not None and holder.beat is not None:
                    silences.append(time.time() - holder.beat)
                    assert lease.working(holder.run_id) or silences[-1] <= 4, silences[-1]

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        slow = run_deployment("dev", "main", settings=replace(settings, app_config=config), instance=instance, **QUIET)
    finally:
        done.set()
        watcher.join()
    assert slow.success, slow.failure
    assert _evaluations(instance, slow.run_id)["backend_slow"]["seconds"] >= 7
    assert len(silences) > 20 and max(silences) < 3.5, max(silences)  # heartbeats every 2 s, the check's 7 s too


# A run that fails before collecting its backend checks: the process exits with one still running in its container.
_EXITS_WITH_A_CONTAINER_RUNNING = """
import os, signal, sys, time
from pathlib import Path
from coderemote_pipeline.actions import app_checks, checks_ahead
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.app_layout import CheckSpec
from coderemote_pipeline.rules.settings import Settings

state, name = Path(sys.argv[1]), sys.argv[2]
engine = resources_for(Settings("local", state, "unused", None))["docker"]
client = engine.client()
spec = CheckSpec(name=name, side="backend", command="sleep 60")

def export(dest):
    dest.mkdir(parents=True)
    return dest

checks_ahead.start("run-failed", [(spec, "k-slow")], export,
                   lambda tree, spec, key: app_checks.run_in_image(client, engine.base_image(), tree, spec, key,
                                                                   engine.owner_labels()),
                   state / "scratch", together=True)
while not client.containers.list(filters={"label": f"coderemote.check={name}", "status": "running"}):
    time.sleep(0.05)
if sys.argv[3:] == ["killed"]:
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_that_exits_removes_the_containers_of_its_checks(settings, local_stack):
    import subprocess
    import sys

    import docker

    name = f"left_behind_{time.time_ns() % 10**9}"
    subprocess.run([sys.executable, "-c", _EXITS_WITH_A_CONTAINER_RUNNING, str(settings.state_dir), name],
                   check=True, timeout=120)  # fmt: skip
    client = docker.DockerClient(base_url=local_stack.docker_host)
    assert client.containers.list(all=True, filters={"label": f"coderemote.check={name}"}) == []


def test_the_check_containers_a_killed_process_leaves_are_the_stacks_for_local_down_to_remove(settings, local_stack):
    """A process killed with SIGKILL (or an engine killed under it) cannot remove its checks' containers: they carry
    the local stack's label, by which `local down` removes its containers (they once stayed, Created or running)."""
    import subprocess
    import sys

    import docker

    from coderemote_pipeline.local_stack import STACK_LABEL

    name = f"killed_{time.time_ns() % 10**9}"
    killed = subprocess.run([sys.executable, "-c", _EXITS_WITH_A_CONTAINER_RUNNING, str(settings.state_dir), name,
                             "killed"], timeout=120)  # fmt: skip
    assert killed.returncode == -9
    client = docker.DockerClient(base_url=local_stack.docker_host)
    left = client.containers.list(all=True, filters={"label": f"coderemote.check={name}"})
    try:
        assert [c.labels.get(STACK_LABEL) for c in left] == [local_stack.stack_id]
    finally:
        for container in left:
            container.remove(force=True)


def test_each_thread_talks_to_the_engine_through_a_client_of_its_own(settings, local_stack):
    """The backend's checks run in threads beside the image's push: docker-py does not promise a client is safe to
    share, so each thread gets one (the engine's API version asked once, not per thread)."""
    from coderemote_pipeline.resources.targets import local_resources

    engine = local_resources(settings)["docker"]
    mine = engine.client()
    assert engine.client() is mine
    theirs: list = []
    thread = threading.Thread(target=lambda: theirs.extend([engine.client(), engine.client()]))
    thread.start()
    thread.join(timeout=30)
    assert theirs[0] is theirs[1] and theirs[0] is not mine
    assert theirs[0].api.api_version == mine.api.api_version and theirs[0].ping()
