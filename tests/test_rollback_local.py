"""Rollback on the real local stack: back to v1.0.0 and forward to v1.1.0 without building anything, automatic
rollback of a release whose health check fails, and drift when someone moves the alias by hand."""

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import dagster as dg
import docker
import pytest
from app_bugs import plant, smoke_fails

from coderemote_pipeline.actions.failure_report import settle_failed_run
from coderemote_pipeline.actions.target_state import drift, read_target, split_parts
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.ledger.live import env_outputs, recorded_live
from coderemote_pipeline.ledger.process_place import process_place
from coderemote_pipeline.local_stack import LocalStack, load_stack_info
from coderemote_pipeline.local_stack.processes import stop_pid
from coderemote_pipeline.resources.targets import local_resources, target_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.deploy import DeployRefused, Override, run_deployment
from coderemote_pipeline.usecases.progress import QUIET as RUN_QUIET
from coderemote_pipeline.usecases.rollback import AlreadyLive, rollback, rollback_target

pytestmark = pytest.mark.stack
QUIET = {"echo": lambda _: None}


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _builds(settings: Settings, info) -> tuple[int, int]:
    """(API images built, frontend builds made) so far under this state dir."""
    images = docker.DockerClient(base_url=info.docker_host).images.list(filters={"label": "coderemote.build-key"})
    frontend = settings.work_dir / "builds" / "frontend"
    return len(images), len(list(frontend.iterdir())) if frontend.exists() else 0


def _tag(clone: Path, tag: str) -> None:
    git("tag", tag, cwd=clone)
    git("push", "--quiet", "origin", tag, cwd=clone)


def _deploy_prod(settings, instance, tag, force_reason=None):
    record_decision(settings, instance, "prod", parse_release_key(tag), by="test-suite", decision="approve", reason="")
    override = Override(reason=force_reason, by="test-suite") if force_reason else None
    return run_deployment("prod", tag, settings=settings, instance=instance, override=override, **QUIET)


def _verify_in_dev(settings, instance):
    outcome = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    assert outcome.success, outcome.failure


@pytest.fixture(scope="module")
def prod(settings, instance, tmp_path_factory):
    """prod with v1.0.0 then v1.1.0 deployed from a repository of its own, each verified in dev first."""
    root = tmp_path_factory.mktemp("rollback-app")
    clone = root / "clone"
    make_app_repo(EXAMPLE_APP, root / "app.git", clone, message="v1.0.0 content")
    mine = Settings(settings.target, settings.state_dir, str(root / "app.git"), None)
    _verify_in_dev(mine, instance)
    _tag(clone, "v1.0.0")
    first = _deploy_prod(mine, instance, "v1.0.0")
    assert first.success, first.failure
    (clone / "frontend" / "src" / "style.css").write_text("/* 1.1 */\nbody { color: #222; }\n")
    (clone / "backend" / "app" / "VERSION").write_text("1.1\n")
    commit_and_push(clone, "v1.1.0 content")
    _verify_in_dev(mine, instance)
    _tag(clone, "v1.1.0")
    second = _deploy_prod(mine, instance, "v1.1.0")
    assert second.success, second.failure
    return mine, clone, first, second


def _rollback(settings, instance, to=None):
    return rollback("prod", to, settings=settings, instance=instance, **QUIET)


def test_rollback_and_roll_forward_rebuild_nothing(prod, instance, local_stack):
    settings, _, v100, v110 = prod
    outputs = v110.stages["infra_stack"]["stack_outputs"]
    builds = _builds(settings, local_stack)

    # Each prod deploy says whose approvals it went out on; a rollback goes out on none.
    assert instance.get_run_by_id(v110.run_id).tags[names.APPROVED_BY_TAG] == "test-suite"
    assert {d.run_id: d.approved_by for d in deploys(instance, "prod")}[v110.run_id] == "test-suite"
    back = _rollback(settings, instance)
    assert back.success, back.failure
    assert names.APPROVED_BY_TAG not in instance.get_run_by_id(back.run_id).tags
    # The process executing it, for a sensor to tell it gone if this process dies.
    assert instance.get_run_by_id(back.run_id).tags[names.EXECUTED_BY_TAG] == f"{process_place()}:{os.getpid()}"
    assert back.release == "v1.0.0" and "infra_stack" not in back.stages
    # rollback_job: the stages after infra, and none of the app's checks (on the record of the run that built it).
    assert back.job_name == "rollback_job" and not [s for s in back.stages if s.startswith("check:")]
    assert not instance.get_records_for_run(back.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    assert _builds(settings, local_stack) == builds  # no image build, no frontend build
    assert back.stages["api_image"]["outcome"] == "reused"
    assert back.stages["api_image"]["digest"] == v100.stages["api_image"]["digest"]
    assert back.stages["lambda_version"]["version"] == v100.stages["lambda_version"]["version"]
    assert back.stages["lambda_version"]["version_reused"] and back.stages["traffic_shift"]["alias_moved"]
    assert back.stages["frontend_bundle"]["outcome"] == "snapshot kept"
    assert back.stages["frontend_bundle"]["files_uploaded"] == 0
    assert back.stages["traffic_shift"]["previous_site"] == "v1.1.0"
    assert _get_json(outputs["api_url"] + "/health")["release"] == "v1.0.0"
    assert _get_json(outputs["frontend_url"] + "/config.json")["release"] == "v1.0.0"
    with urllib.request.urlopen(outputs["frontend_url"] + "/index.html", timeout=5) as response:
        assert hashlib.sha256(response.read()).hexdigest() == v100.stages["frontend_bundle"]["index_sha256"]
    assert recorded_live(instance, "prod").reason == "rolled back to v1.0.0"
    assert recorded_live(instance, "prod").fled[0] == "v1.1.0"  # the rollback's record names what it fled
    try:  # a second rollback goes further back (other modules' prod releases) or nowhere, never to what this fled
        assert rollback_target(instance, "prod", None)[0] != "v1.1.0"
    except DeployRefused as refused:
        assert "rolled back from: v1.1.0" in str(refused)
    # Deploying what a rollback fled needs a new approval; rolling back to it (forward here) does not.
    with pytest.raises(DeployRefused, match="but a rollback took prod away from it, or past it, on "):
        run_deployment("prod", "v1.1.0", settings=settings, instance=instance, **QUIET)

    forward = _rollback(settings, instance, to="v1.1.0")
    assert forward.success, forward.failure
    assert _builds(settings, local_stack) == builds
    assert forward.stages["lambda_version"]["version"] == v110.stages["lambda_version"]["version"]
    assert forward.stages["frontend_bundle"]["outcome"] == "snapshot kept"
    assert _get_json(outputs["api_url"] + "/health")["release"] == "v1.1.0"
    assert _get_json(outputs["frontend_url"] + "/config.json")["release"] == "v1.1.0"


def test_rollback_job_from_the_ui_takes_only_a_release_that_passed_there(prod, instance):
    """Launched without a commit, a rollback_job of a release prod never served would have deployed it from git,
    its checks skipped and recorded as a rollback."""
    settings, clone, _, _ = prod
    _tag(clone, "v1.0.9")  # tagged, never deployed anywhere
    instance.add_dynamic_partitions("release", ["v1.0.9"])
    job = build_defs(settings).resolve_job_def(names.ROLLBACK_JOB)
    result = job.execute_in_process(instance=instance, partition_key="prod|v1.0.9", raise_on_error=False,
                                    run_config=RUN_QUIET)  # fmt: skip
    assert not result.success
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert any("v1.0.9 never passed smoke in prod: rollback_job puts back only a release that passed there" in f
               for f in failures), failures  # fmt: skip
    assert recorded_live(instance, "prod").release != "v1.0.9"


def test_an_api_that_cannot_start_never_takes_traffic(prod, instance):
    settings, clone, _, _ = prod
    live_before = recorded_live(instance, "prod").release
    server = clone / "backend" / "app" / "server.py"
    good = plant(server, 'raise SystemExit("boom: the API cannot start")')
    commit_and_push(clone, "a release whose API does not start")
    server.write_text(good)
    _tag(clone, "v1.2.0")
    # Never verified in dev (it would have failed there too): pushed through the gate on purpose.
    outcome = _deploy_prod(settings, instance, "v1.2.0", force_reason="test: a release that cannot start")
    assert not outcome.success
    assert "traffic_shift: the switch of prod|v1.2.0 failed" in outcome.failure
    assert f"prod is back on {live_before}" in outcome.failure
    outputs = env_outputs(instance, "prod")
    assert _get_json(outputs["api_url"] + "/health")["release"] == live_before
    assert _get_json(outputs["frontend_url"] + "/config.json")["release"] == live_before
    assert recorded_live(instance, "prod").release == live_before


def test_failed_smoke_rolls_back_automatically(prod, instance):
    settings, clone, _, _ = prod
    live_before = recorded_live(instance, "prod").release
    server = clone / "backend" / "app" / "server.py"
    # Healthy (HTTP 200), but it reports another release than the one deployed: smoke catches it after the switch.
    good = plant(server, 'os.environ["APP_RELEASE"] = "nope"')
    commit_and_push(clone, "a release that misreports itself")
    server.write_text(good)
    commit_and_push(clone, "restore the server")  # the clone moves on; the tag below names the broken commit
    _tag(clone, "v1.3.0")
    git("tag", "-f", "v1.3.0", "HEAD~1", cwd=clone)
    git("push", "--quiet", "--force", "origin", "v1.3.0", cwd=clone)
    outcome = _deploy_prod(settings, instance, "v1.3.0", force_reason="test: a release that fails smoke")
    assert not outcome.success
    assert "smoke_result" in outcome.failure
    assert f"rolled back automatically: prod serves {live_before}" in outcome.failure
    outputs = env_outputs(instance, "prod")
    assert _get_json(outputs["api_url"] + "/health")["release"] == live_before
    assert _get_json(outputs["frontend_url"] + "/config.json")["release"] == live_before
    live = recorded_live(instance, "prod")
    assert live.release == live_before and live.reason.startswith("automatic rollback: smoke failed")


def test_moving_the_alias_by_hand_is_drift(prod, instance, settings, monkeypatch, capsys, tmp_path):
    mine, _, v100, _ = prod
    outputs = env_outputs(instance, "prod")
    resources = local_resources(mine)
    target = target_for(resources)("prod", outputs)
    lam = target.lam
    recorded = recorded_live(instance, "prod")
    assert drift(recorded, read_target(target)) == []
    hand_moved = str(v100.stages["lambda_version"]["version"])
    assert hand_moved != str(recorded.version)
    lam.update_alias(FunctionName=outputs["lambda_function_name"], Name="live", FunctionVersion=hand_moved)
    try:
        problems = drift(recorded, read_target(target, probe=False))
        assert problems and f"alias points to version {hand_moved} (v1.0.0)" in problems[0]
        monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(mine.state_dir))
        monkeypatch.setenv("CODEREMOTE_APP_REMOTE", mine.app_remote)
        monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
        assert main(["status", "prod"]) == 3
        shown = capsys.readouterr().out
        # The headline names the release whose version it shows beside the recorded one, and the way back.
        assert "DRIFT" in shown and f"version {hand_moved} (v1.0.0)" in shown, shown
        assert f"fix: `coderemote-pipeline rollback prod --to {recorded.release}`" in shown, shown
    finally:
        lam.update_alias(
            FunctionName=outputs["lambda_function_name"], Name="live", FunctionVersion=str(recorded.version)
        )


def test_rollback_promote_and_retry_with_a_stack_part_down_make_no_run(prod, instance, monkeypatch, capsys):
    """`deploy` refuses in one line while a part of the stack is down; these ran, failed in traffic_shift, and history
    counted a failed change nobody made. Now each is refused as deploy is, before any run exists."""
    mine = prod[0]
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(mine.state_dir))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", mine.app_remote)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    live = recorded_live(instance, "dev")
    failed = dg.DagsterRun(job_name=names.ROLLBACK_JOB, status=dg.DagsterRunStatus.FAILURE,
                           tags={names.ENV_TAG: "dev", names.RELEASE_TAG: live.release})  # fmt: skip
    instance.add_run(failed)
    before = {run.run_id for run in instance.get_runs()}
    info = load_stack_info(mine.state_dir)
    assert stop_pid(info.registry_pid, expect="docker-registry")
    try:
        for argv in (["rollback", "dev"], ["promote", "dev", "staging"], ["retry", failed.run_id[:8]]):
            assert main(argv) == 2, argv
            out = capsys.readouterr()
            lines = out.err.splitlines()
            assert "Traceback" not in out.err + out.out and len(lines) == 1, out.err
            assert lines[0].startswith(f"error: Image registry at {info.registry_host} is not answering"), lines
            assert lines[0].endswith("start it with `coderemote-pipeline local up`"), lines
        assert {run.run_id for run in instance.get_runs()} == before
        assert recorded_live(instance, "dev") == live
    finally:
        instance.delete_run(failed.run_id)
        LocalStack(mine.state_dir).up()  # the registry restarts on its port, its storage intact


def _serves(instance, release: str) -> None:
    outputs = env_outputs(instance, "prod")
    assert _get_json(outputs["api_url"] + "/health")["release"] == release
    assert _get_json(outputs["frontend_url"] + "/config.json")["release"] == release


def _move_alias(settings, instance, version: str):
    target = target_for(local_resources(settings))("prod", env_outputs(instance, "prod"))
    target.lam.update_alias(FunctionName=target.outputs["lambda_function_name"], Name="live", FunctionVersion=version)
    return target


def test_rollback_to_the_recorded_release_puts_a_split_env_back_whole(prod, instance):
    """The repair a failure prints (`rollback prod --to <recorded>`) was refused as "already live" while prod was
    split; it now puts the recorded release back through the stages. On a whole env it still changes nothing."""
    settings, _, v100, v110 = prod
    live = recorded_live(instance, "prod")
    other = v100 if live.release != "v1.0.0" else v110
    with pytest.raises(AlreadyLive, match=f"{live.release} is already live in prod"):
        _rollback(settings, instance, to=live.release)
    target = _move_alias(settings, instance, str(other.stages["lambda_version"]["version"]))
    assert split_parts(read_target(target, probe=False))
    lines: list[str] = []
    fixed = rollback("prod", live.release, settings=settings, instance=instance, echo=lines.append)
    assert fixed.success, fixed.failure
    assert lines[0].startswith(f"prod does not serve its recorded release {live.release} whole (the API serves ")
    assert lines[0].endswith("): putting it back")
    now = read_target(target, probe=False)
    assert not split_parts(now) and drift(recorded_live(instance, "prod"), now) == []
    _serves(instance, live.release)


def test_a_rollback_whose_smoke_fails_stays_on_the_release_it_went_back_to(prod, instance, monkeypatch):
    """prod rolls back automatically after a failed smoke; a rollback's failed smoke took prod back to the release
    the rollback fled, and the settle after it did too. Now it stays where it went, recorded, and says so."""
    settings, _, v100, _ = prod
    fled = recorded_live(instance, "prod").release
    assert fled != "v1.0.0"
    smoke_fails(monkeypatch)
    back = _rollback(settings, instance, to="v1.0.0")
    monkeypatch.undo()
    assert not back.success
    assert f"this was a rollback: prod stays on v1.0.0, not back on {fled}, which the rollback fled" in back.failure
    assert "prod serves v1.0.0 (alias version" in back.failure and "as one whole release" in back.failure  # settle
    _serves(instance, "v1.0.0")
    live = recorded_live(instance, "prod")
    assert live.release == "v1.0.0" and live.version == v100.stages["lambda_version"]["version"]
    assert live.by_rollback and live.fled[0] == fled and "its smoke failed" in live.reason


def test_the_release_a_failed_rollback_stayed_on_is_put_back_whole_by_rollback_to_it(prod, instance):
    """After the test above prod is recorded on v1.0.0, whose latest smoke failed. Split off it (the alias moved),
    the repair the messages print (`rollback prod --to v1.0.0`) was held for a new approval: a release whose last
    smoke failed did not count as one that served prod."""
    settings, _, _, v110 = prod
    assert recorded_live(instance, "prod").release == "v1.0.0"
    target = _move_alias(settings, instance, str(v110.stages["lambda_version"]["version"]))
    assert split_parts(read_target(target, probe=False))
    lines: list[str] = []
    fixed = rollback("prod", "v1.0.0", settings=settings, instance=instance, echo=lines.append)
    assert fixed.success, fixed.failure
    assert lines[0].startswith("prod does not serve its recorded release v1.0.0 whole")
    assert not split_parts(read_target(target, probe=False))
    _serves(instance, "v1.0.0")


def test_a_failed_rollback_run_that_left_prod_split_is_settled_on_its_target(prod, instance):
    """A rollback run to v1.1.0 died after moving the API only. Its settle put prod back on the recorded release,
    which is what the rollback fled; now it finishes the rollback's switch and records it."""
    settings, _, _, v110 = prod
    fled = recorded_live(instance, "prod").release
    assert fled != "v1.1.0"
    died = dg.DagsterRun(job_name=names.ROLLBACK_JOB, status=dg.DagsterRunStatus.FAILURE,
                         tags={names.ENV_TAG: "prod", names.RELEASE_TAG: "v1.1.0"})  # fmt: skip
    instance.add_run(died)
    _move_alias(settings, instance, str(v110.stages["lambda_version"]["version"]))
    settled = settle_failed_run(instance, died, load_policies(settings.infra_dir)["prod"],
                                target_for(local_resources(settings)))  # fmt: skip
    assert settled.whole and not settled.rolled_back
    assert settled.text.startswith("prod serves v1.1.0, the release this rollback went back to (version ")
    assert f"not back on {fled}, which it fled; recorded as live" in settled.text
    _serves(instance, "v1.1.0")
    live = recorded_live(instance, "prod")
    assert live.release == "v1.1.0" and live.by_rollback and live.fled == [fled] and live.run_id == died.run_id
