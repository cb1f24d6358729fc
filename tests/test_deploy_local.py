"""Whole deployments through Dagster on the real local stack: the full graph, a no-op re-run, another app layout."""

import json
import shutil
import urllib.request
from dataclasses import replace

import dagster as dg
import docker
import pytest

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.settings import PROJECT_ROOT
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment

ALT_APP = PROJECT_ROOT / "tests" / "fixtures" / "alt-app"
ALT_CONFIG = PROJECT_ROOT / "tests" / "fixtures" / "alt-app.yaml"

pytestmark = pytest.mark.stack


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _builds(info) -> int:
    engine = docker.DockerClient(base_url=info.docker_host)
    return len(engine.images.list(filters={"label": "coderemote.build-key"}))


def _step_windows(instance, run_id):
    windows = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if (
            event
            and event.step_key
            and event.event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
        ):
            windows.setdefault(event.step_key, []).append(record.timestamp)
    return windows


def test_full_deploy_then_noop(settings, instance, app_remote, local_stack, capfd):
    clone = app_remote[1]
    (clone / "frontend" / "src" / "style.css").write_text("body { font-family: sans-serif; color: #123; }\n")
    commit = commit_and_push(clone, "restyle for the full deploy test")
    builds_before = _builds(local_stack)

    # The parallel job, asked for: `auto` picks it only where this app's recorded builds outweigh its step starts.
    first = run_deployment("dev", "main", settings=settings, instance=instance, echo=lambda _: None,
                           executor="parallel")  # fmt: skip
    assert first.success, first.failure
    assert first.job_name == "deploy_job" and first.commit == commit
    # The step workers' own lines (one Dagster DEBUG line per step) stay out of the terminal.
    assert "STEP_WORKER_STARTED" not in capfd.readouterr().err
    # Every stage, and each of the example app's checks (a blocking asset check on its build stage).
    checks = {"check:backend_tests", "check:backend_lint", "check:frontend_check"}
    assert set(first.stages) == {*names.STAGES, names.LIVE_RELEASE, *checks}
    assert first.stages["api_image"]["outcome"] == "built"
    assert first.stages["check:frontend_check"]["ran_ahead"] is False  # its own process: nothing to start ahead
    assert _builds(local_stack) == builds_before + 1
    # The two branches really overlap in time inside the one run.
    windows = _step_windows(instance, first.run_id)
    assert windows["frontend_bundle"][0] < windows["api_image"][1]
    assert windows["api_image"][0] < windows["frontend_bundle"][1]

    api_url = first.stages["infra_stack"]["stack_outputs"]["api_url"]
    frontend_url = first.stages["infra_stack"]["stack_outputs"]["frontend_url"]
    health = json.loads(_get(api_url + "/health"))
    assert health["release"] == first.release and health["commit"] == commit
    assert b"Code Remote" in _get(frontend_url + "/index.html")
    assert json.loads(_get(frontend_url + "/config.json"))["release"] == first.release

    again = run_deployment("dev", "main", settings=settings, instance=instance, echo=lambda _: None)
    assert again.success, again.failure
    assert again.job_name == "redeploy_job"
    assert again.stages["infra_stack"]["change_count"] == 0
    assert again.stages["api_image"]["outcome"] == "reused" and again.stages["api_image"]["built"] is False
    assert again.stages["lambda_version"]["version"] == first.stages["lambda_version"]["version"]
    assert again.stages["lambda_version"]["version_reused"] is True
    assert again.stages["traffic_shift"]["alias_moved"] is False
    assert again.stages["traffic_shift"]["changed_paths"] == []
    assert again.stages["frontend_bundle"]["files_uploaded"] == 0
    assert again.stages["frontend_bundle"]["outcome"] == "snapshot kept"
    assert again.stages["cloudfront_invalidation"]["path_count"] == 0
    assert _builds(local_stack) == builds_before + 1

    # A new commit in one process (what `auto` picks for this app): the frontend builds beside the image, in the
    # same run, and frontend_bundle reports that build as its own work, not the wait for it.
    (clone / "frontend" / "src" / "style.css").write_text("body { font-family: serif; }\n")
    (clone / "backend" / "app" / "ahead.txt").write_text("built beside the frontend\n")
    commit_and_push(clone, "both sides change")
    overlapped = run_deployment("dev", "main", settings=settings, instance=instance, echo=lambda _: None)
    assert overlapped.success, overlapped.failure
    assert overlapped.job_name == "redeploy_job" and overlapped.stages["api_image"]["outcome"] == "built"
    bundle = overlapped.stages["frontend_bundle"]
    assert bundle["outcome"] == "built" and bundle["build_ahead_s"] > 0 and bundle["files_uploaded"] > 0
    assert bundle["build_waited_s"] <= bundle["build_s"] <= bundle["total_s"]
    # So did the frontend's check: started beside the image, collected by frontend_checks.
    ahead = overlapped.stages["check:frontend_check"]
    assert ahead["ran_ahead"] is True and ahead["ran"]
    assert json.loads(_get(frontend_url + "/config.json"))["release"] == overlapped.release

    # `--executor serial`: the same process, one branch after the other, nothing started ahead.
    (clone / "frontend" / "src" / "style.css").write_text("body { font-family: monospace; }\n")
    (clone / "backend" / "app" / "ahead.txt").write_text("built before the frontend\n")
    commit_and_push(clone, "both sides change, one after the other")
    serial = run_deployment("dev", "main", settings=settings, instance=instance, executor="serial",
                            echo=lambda _: None)  # fmt: skip
    assert serial.success, serial.failure
    assert serial.job_name == "redeploy_job" and serial.stages["api_image"]["outcome"] == "built"
    assert instance.get_run_by_id(serial.run_id).tags["coderemote/branches"] == "serial"
    bundle = serial.stages["frontend_bundle"]
    assert bundle["outcome"] == "built" and bundle["build_s"] > 0 and bundle.get("build_ahead_s", 0.0) == 0.0
    assert serial.stages["check:frontend_check"]["ran_ahead"] is False and serial.stages["check:frontend_check"]["ran"]
    assert json.loads(_get(frontend_url + "/config.json"))["release"] == serial.release


def test_another_app_layout_deploys_through_configuration_alone(settings, instance, tmp_path):
    remote, clone = tmp_path / "alt.git", tmp_path / "alt"
    commit = make_app_repo(ALT_APP, remote, clone)
    alt = replace(settings, app_remote=str(remote), app_config=ALT_CONFIG)
    outcome = run_deployment("staging", "main", settings=alt, instance=instance, echo=lambda _: None)
    assert outcome.success, outcome.failure
    outputs = outcome.stages["infra_stack"]["stack_outputs"]
    status = json.loads(_get(outputs["api_url"] + "/status"))
    assert (status["release"], status["commit"], status["env"]) == (outcome.release, commit, "staging")
    index = _get(outputs["frontend_url"] + "/index.html").decode()
    assert outcome.release in index and outputs["api_url"] in index
    assert outcome.stages["frontend_bundle"]["build_mode"] == "build_time"
    # Built with the environment's values beside the image all the same (they are known once infra is), in one
    # process, and its check with it.
    assert outcome.job_name == "redeploy_job" and outcome.stages["frontend_bundle"]["build_ahead_s"] > 0
    assert outcome.stages["check:web_check"]["ran_ahead"] is True
    # Its own checks, not the example app's.
    checks = instance.get_records_for_run(outcome.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    names = {r.event_log_entry.dagster_event.event_specific_data.check_name for r in checks}
    assert names == {"api_tests", "web_check"}
    shutil.rmtree(clone)


def test_a_moved_tag_never_serves_the_old_commits_site_beside_the_new_api(settings, instance, tmp_path):
    """A release's site snapshot is keyed by the release: after its tag moved, the old commit's files were kept
    and served beside the new commit's API, and smoke passed. Now they are rebuilt, and a live release's files are
    never rewritten in place (its deploy fails before the switch, the env stays whole)."""
    remote, clone = tmp_path / "tagged.git", tmp_path / "tagged"
    first = make_app_repo(EXAMPLE_APP, remote, clone)
    mine = replace(settings, app_remote=str(remote))
    git("tag", "v7.0.0", cwd=clone)
    git("push", "--quiet", "origin", "v7.0.0", cwd=clone)
    assert run_deployment("staging", "v7.0.0", settings=mine, instance=instance, echo=lambda _: None).success
    (clone / "frontend" / "src" / "style.css").write_text("body { color: teal; }\n")
    second = commit_and_push(clone, "the tag moves here")
    git("tag", "-f", "v7.0.0", second, cwd=clone)
    git("push", "--quiet", "--force", "origin", "v7.0.0", cwd=clone)

    refused = run_deployment("staging", "v7.0.0", settings=mine, instance=instance, echo=lambda _: None)
    assert not refused.success and "traffic_shift" not in refused.stages
    assert f"v7.0.0 is live here from commit {first[:12]}, and its tag now names {second[:12]}" in refused.failure
    outputs = refused.stages["infra_stack"]["stack_outputs"]
    assert json.loads(_get(outputs["api_url"] + "/health"))["commit"] == first
    assert json.loads(_get(outputs["frontend_url"] + "/config.json"))["commit"] == first

    assert run_deployment("staging", "main", settings=mine, instance=instance, echo=lambda _: None).success
    moved = run_deployment("staging", "v7.0.0", settings=mine, instance=instance, echo=lambda _: None)
    assert moved.success, moved.failure
    assert moved.stages["frontend_bundle"]["outcome"] != "snapshot kept"
    assert json.loads(_get(outputs["api_url"] + "/health"))["commit"] == second
    assert json.loads(_get(outputs["frontend_url"] + "/config.json"))["commit"] == second
    assert b"teal" in _get(outputs["frontend_url"] + "/" + _stylesheet(outputs["frontend_url"]))


def _stylesheet(site: str) -> str:
    index = _get(site + "/index.html").decode()
    return next(p.split('"')[0] for p in index.split('href="')[1:] if ".css" in p.split('"')[0]).removeprefix("./")
