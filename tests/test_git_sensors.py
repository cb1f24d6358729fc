"""The git sensors, tick by tick, against real git repositories (a bare remote and pushes into it).

No deploy runs here: each test evaluates ticks as the daemon would and checks the run requests, the release
partitions registered, the pending approvals recorded, the cursor and the reasons logged.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import replace

import dagster as dg
import pytest
from ledger_kit import record_live
from sensor_kit import apply, settings_for, tick, verified_in_dev

from coderemote_pipeline.actions.git_remote import GitRemote
from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.process_place import process_place
from coderemote_pipeline.resources.targets import local_resources
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import Approval, load_policies
from coderemote_pipeline.rules.release_keys import commit_release_key
from coderemote_pipeline.rules.settings import Settings, SettingsError
from coderemote_pipeline.usecases.retry import carried_tags
from coderemote_pipeline.usecases.rollback import settings_of

MAIN = "main_push_sensor"
TAGS = "version_tag_sensor"


@pytest.fixture
def settings(tmp_path, repo):
    return settings_for(tmp_path / "state", str(repo.remote))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _only_request(result):
    assert len(result.run_requests) == 1, result.logs
    return result.run_requests[0]


def test_sensors_are_wired_running_at_the_configured_interval(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CODEREMOTE_SENSOR_INTERVAL_S", "7")
    loaded = build_defs(Settings.from_env())
    for name in (MAIN, TAGS, "approved_release_sensor"):
        sensor = loaded.resolve_sensor_def(name)
        assert sensor.minimum_interval_seconds == 7 and sensor.default_status is dg.DefaultSensorStatus.RUNNING
        assert {job.name for job in sensor.jobs} == {"deploy_job", "redeploy_job"}  # never rollback_job
    assert {node.name for node in loaded.resolve_job_def("approval_job").nodes_in_topological_order} == {
        "release_approval"
    }
    assert Settings.from_env({}).sensor_interval_s == 30
    with pytest.raises(SettingsError, match="CODEREMOTE_SENSOR_INTERVAL_S='0' must be a whole number of seconds"):
        Settings.from_env({"CODEREMOTE_SENSOR_INTERVAL_S": "0"})


# --- main → dev ---------------------------------------------------------------------------------------------------


def test_first_tick_deploys_the_head_of_main_to_dev(settings, instance, repo):
    head = repo.git("rev-parse", "HEAD")
    release = commit_release_key("main", head)
    result = tick(settings, instance, MAIN, None)
    request = _only_request(result)
    assert request.partition_key == f"dev|{release}"
    assert request.job_name == "redeploy_job"  # one process: the builds overlap there too (ledger/job_choice.py)
    assert request.run_key == f"dev:main@{head}#1"
    assert request.tags["coderemote/commit"] == head and request.tags["coderemote/trigger"] == "main_push"
    assert (request.tags["coderemote/env"], request.tags["coderemote/release"]) == ("dev", release)
    # How it is built, as a CLI deploy records it: a retry of this run from anyone's shell builds from there.
    assert request.tags[names.APP_REMOTE_TAG] == settings.app_remote
    assert request.tags[names.APP_LAYOUT_TAG] == settings.app_layout.to_json()
    elsewhere = settings.for_app("/nowhere/else.git", settings.app_layout)
    assert settings_of(elsewhere, request.tags).app_remote == settings.app_remote
    assert result.partitions == [release]
    assert result.cursor_json == {"main": head, "moves": 1}
    assert result.logged(f"first tick: main is at {head[:12]}")


def _deploy_run(instance, release: str, status: dg.DagsterRunStatus, *, switched: bool = False) -> dg.DagsterRun:
    """A deploy run of dev, ended with `status` (as its events end it: with an end time) unless it is running."""
    run = dg.DagsterRun(job_name="deploy_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                        tags={"coderemote/env": "dev", "coderemote/release": release})  # fmt: skip
    instance.add_run(run)
    if switched:  # it got as far as the switch
        instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.STEP_START.value, run.job_name,
                                                      step_key=names.TRAFFIC_SHIFT), run.run_id)  # fmt: skip
    if status is dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(run, "a stage failed")
    elif status is dg.DagsterRunStatus.SUCCESS:
        instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, run.job_name), run.run_id)
    time.sleep(0.01)
    return run


def test_first_tick_after_a_restart_does_not_redeploy_what_is_live(settings, instance, repo):
    head = repo.git("rev-parse", "HEAD")
    release = commit_release_key("main", head)
    _deploy_run(instance, release, dg.DagsterRunStatus.SUCCESS)
    record_live(instance, "dev", release, head)
    quiet = tick(settings, instance, MAIN, None)
    assert quiet.run_requests == []
    assert quiet.skip and f"{release} (commit {head[:12]}) is already live in dev and its last deploy succeeded" in (
        quiet.skip
    )
    assert quiet.cursor_json == {"main": head, "moves": 1}  # seen: the next push deploys as usual
    # A later deploy of another release failed before the switch (its build): dev is as it was.
    _deploy_run(instance, "main-0000000", dg.DagsterRunStatus.FAILURE)
    assert tick(settings, instance, MAIN, None).run_requests == []
    # One failed at the switch, or after it with auto_rollback off: dev may serve that release. Deploy again...
    _deploy_run(instance, "main-1111111", dg.DagsterRunStatus.FAILURE, switched=True)
    assert _only_request(tick(settings, instance, MAIN, None)).partition_key == f"dev|{release}"
    # ...unless dev was put back on this release since (the failure's settle records it).
    time.sleep(0.01)
    record_live(instance, "dev", release, head, reason="automatic rollback: run 1111 failed")
    assert tick(settings, instance, MAIN, None).run_requests == []
    # Another deploy of dev is running: the tick waits for it to end, then judges again.
    running = _deploy_run(instance, "main-2222222", dg.DagsterRunStatus.STARTED)
    assert "waiting for the dev deploy in progress" in tick(settings, instance, MAIN, None).skip
    instance.report_run_failed(running, "stopped before the switch")
    assert tick(settings, instance, MAIN, None).run_requests == []
    # This release's own last deploy failed: deploy again.
    _deploy_run(instance, release, dg.DagsterRunStatus.FAILURE)
    assert _only_request(tick(settings, instance, MAIN, None)).partition_key == f"dev|{release}"


def test_unchanged_main_requests_nothing(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    again = tick(settings, instance, MAIN, first.cursor)
    assert again.run_requests == [] and again.partitions == []
    assert again.skip == f"main unchanged at {repo.git('rev-parse', 'HEAD')[:12]}"
    assert again.cursor in (None, first.cursor)


def test_several_pushes_between_ticks_deploy_only_the_newest_head(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    skipped = [repo.push("add login page"), repo.push("fix typo in login page")]
    head = repo.push("wire login to the API")
    result = tick(settings, instance, MAIN, first.cursor)
    request = _only_request(result)
    assert request.partition_key == f"dev|{commit_release_key('main', head)}"
    assert request.tags["coderemote/commit"] == head and request.run_key == f"dev:main@{head}#2"
    assert result.partitions == [commit_release_key("main", head)]
    assert result.cursor_json == {"main": head, "moves": 2}
    assert result.logged("deploying the newest head “wire login to the API”")
    line = next(line for line in result.logs if line.startswith("skipped 2 commit(s)"))
    assert f"{skipped[0][:12]} “add login page”" in line and f"{skipped[1][:12]} “fix typo in login page”" in line


def test_force_push_rewinding_main_deploys_the_new_head_again(settings, instance, repo):
    good = repo.git("rev-parse", "HEAD")
    first = tick(settings, instance, MAIN, None)
    repo.push("bad change")
    second = tick(settings, instance, MAIN, first.cursor)
    repo.force_main(good)
    rewound = tick(settings, instance, MAIN, second.cursor)
    request = _only_request(rewound)
    assert request.tags["coderemote/commit"] == good
    # Same commit as the first deploy, yet a new run key: dev must go back to it, not be deduplicated away.
    assert request.run_key != first.run_requests[0].run_key
    assert rewound.cursor_json["main"] == good
    assert rewound.logged(f"force-pushed back from {second.cursor_json['main'][:12]} to {good[:12]} (1 commit(s)")


def test_force_push_rewriting_main_deploys_the_new_head(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    repo.git("commit", "--quiet", "--amend", "--allow-empty", "-m", "initial import, reworded")
    repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
    head = repo.git("rev-parse", "HEAD")
    result = tick(settings, instance, MAIN, first.cursor)
    assert _only_request(result).tags["coderemote/commit"] == head
    assert result.logged("is not in the new history")


def test_a_restart_neither_loses_a_push_nor_requests_twice(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    head = repo.push("pushed while the daemon was down")
    # The daemon died after evaluating this tick but before storing its cursor: the tick is evaluated again from
    # the stored cursor, finds the same push and asks for the same run key, which the daemon launches only once.
    before_crash = tick(settings, instance, MAIN, first.cursor)
    after_restart = tick(settings, instance, MAIN, first.cursor)
    assert _only_request(after_restart).run_key == _only_request(before_crash).run_key
    assert after_restart.run_requests[0].tags["coderemote/commit"] == head


def test_a_push_during_a_dev_deploy_waits_for_it_then_deploys_the_newest_head(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    busy = dg.DagsterRun(
        job_name="deploy_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"coderemote/env": "dev", "coderemote/release": first.partitions[0]},
    )
    instance.add_run(busy)
    pushed = [repo.push("first push during the deploy"), repo.push("second push during the deploy")]
    waiting = tick(settings, instance, MAIN, first.cursor)
    assert waiting.run_requests == [] and waiting.cursor in (None, first.cursor)
    assert waiting.skip == (
        f"main moved to {pushed[1][:12]}; waiting for the dev deploy in progress "
        f"(run {busy.run_id}, {first.partitions[0]}) to end"
    )
    instance.delete_run(busy.run_id)  # the deploy ended
    result = tick(settings, instance, MAIN, first.cursor)
    assert _only_request(result).tags["coderemote/commit"] == pushed[1]
    assert result.logged(
        f"skipped 1 commit(s) pushed between two ticks, not deployed on their own (the new head "
        f"contains them): {pushed[0][:12]}"
    )


def test_a_deploy_killed_mid_step_does_not_hold_dev_back(settings, instance, repo, monkeypatch):
    """A run whose process died holding dev's lease stays STARTED: once its heartbeat is older than the reclaim
    time, the next push deploys (the new run reclaims the lease and marks the dead one failed)."""
    first = tick(settings, instance, MAIN, None)
    killed = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED,
                           tags={"coderemote/env": "dev", "coderemote/release": first.partitions[0]})  # fmt: skip
    instance.add_run(killed)
    Lease(instance, "dev").acquire(killed.run_id, log=print, describe=str)  # then its process was killed
    pushed = repo.push("pushed after the deploy's process died")
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "30")
    held = tick(settings, instance, MAIN, first.cursor)  # its heartbeat is fresh: it may be working
    assert held.run_requests == [] and "waiting for the dev deploy in progress" in held.skip
    # Its last heartbeat, moved back past the shortest reclaim time the settings allow; its worker row went with its
    # process (a row of a pid gone from this host is dropped at once).
    instance.run_storage.set_cursor_values(
        {"coderemote/lease/dev": json.dumps({"run_id": killed.run_id, "at": time.time() - 10, "where": "gone"})}
    )
    Lease(instance, "dev").heart.workers.unmark((killed.run_id, "deploy"))
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    result = tick(settings, instance, MAIN, first.cursor)
    assert _only_request(result).tags["coderemote/commit"] == pushed
    assert result.logged(f"not waiting for it: run {killed.run_id[:8]} holds dev's deploy lease but stopped heart")
    # Marked failed, its lease freed: the run queue (one run of dev at a time) does not hold the new run behind it.
    assert instance.get_run_by_id(killed.run_id).status is dg.DagsterRunStatus.FAILURE
    assert Lease(instance, "dev").holder() is None


def test_a_cli_run_whose_process_is_gone_is_marked_failed_before_the_next_deploy(settings, instance, repo):
    """Killed before it took the lease (no heartbeat to go by): the process it names on this host is gone. A run
    executed on another host or in another pid namespace (a container), or by a live process, is not judged here."""
    first = tick(settings, instance, MAIN, None)
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = process_place()
    tags = {"coderemote/env": "dev", "coderemote/release": first.partitions[0]}
    wheres = (f"{here}:{dead.pid}", f"elsewhere.example/{here.split('/')[1]}:{dead.pid}",
              f"{socket.gethostname()}/4026531999:{dead.pid}", f"{here}:{os.getpid()}")
    runs = {w: dg.DagsterRun("redeploy_job", status=dg.DagsterRunStatus.STARTED,
                             tags={**tags, names.EXECUTED_BY_TAG: w}) for w in wheres}  # fmt: skip
    for run in runs.values():
        instance.add_run(run)
    repo.push("pushed after the CLI was killed")
    result = tick(settings, instance, MAIN, first.cursor)
    gone = runs[wheres[0]]
    assert result.logged(f"not waiting for it: run {gone.run_id[:8]} was executed by process {dead.pid} on this "
                         "host, which is gone; marked failed")  # fmt: skip
    statuses = [instance.get_run_by_id(runs[w].run_id).status for w in wheres]
    assert statuses == [dg.DagsterRunStatus.FAILURE] + [dg.DagsterRunStatus.STARTED] * 3
    assert result.run_requests == [] and "waiting for the dev deploy in progress" in result.skip


def test_a_step_that_outlived_its_cli_process_is_not_marked_failed(settings, instance, repo):
    """A process-per-step run whose CLI was killed: its running step still holds the lease and heartbeats, so it is
    working, whatever became of the process that began it."""
    first = tick(settings, instance, MAIN, None)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = dg.DagsterRun("deploy_job", status=dg.DagsterRunStatus.STARTED,
                           tags={"coderemote/env": "dev", "coderemote/release": first.partitions[0],
                                 names.EXECUTED_BY_TAG: f"{process_place()}:{dead.pid}"})  # fmt: skip
    instance.add_run(orphan)
    Lease(instance, "dev").acquire(orphan.run_id, log=print, describe=str)  # and it heartbeats
    repo.push("pushed while the orphaned step works")
    result = tick(settings, instance, MAIN, first.cursor)
    assert result.run_requests == [] and "waiting for the dev deploy in progress" in result.skip
    assert instance.get_run_by_id(orphan.run_id).status is dg.DagsterRunStatus.STARTED
    assert Lease(instance, "dev").holder().run_id == orphan.run_id


def test_other_branches_do_not_deploy(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    repo.side_commit("feature/xyz", "work in progress")
    assert tick(settings, instance, MAIN, first.cursor).run_requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("{tmp}/nowhere.git", "does not appear to be a git repository"),
        ("file://{tmp}/nowhere.git", "unreachable"),
        ("nosuchscheme://example.invalid/app.git", "'remote-nosuchscheme' is not a git command"),
    ],
)
def test_unreachable_remote_or_bad_url_skips_with_the_reason(tmp_path, instance, url, reason):
    url = url.format(tmp=tmp_path)
    for sensor in (MAIN, TAGS):
        result = tick(settings_for(tmp_path / "state", url), instance, sensor, None)
        assert result.run_requests == [] and result.partitions == []
        assert result.skip.startswith("cannot read the app remote:") and url in result.skip and reason in result.skip


@pytest.mark.stack
def test_a_push_while_the_target_is_down_deploys_once_it_is_back(settings, instance, repo, local_stack, state_dir):
    """No run is requested that could only fail (the local stack down): the tick says why and keeps its cursor."""
    down = local_resources(settings)["readiness"]  # this test's state dir: no stack runs there
    waited = tick(settings, instance, MAIN, None, readiness=down)
    assert waited.run_requests == [] and waited.cursor is None
    assert "deploying once the target is back: No local stack is running for state dir" in waited.skip
    repo.tag("v1.0.0")
    seen = tick(settings, instance, TAGS, None, readiness=down)  # the first tick takes tags as history: no target
    repo.tag("v1.1.0")
    held = tick(settings, instance, TAGS, seen.cursor, readiness=down)
    assert "new tag(s) v1.1.0; acting on them once the target is back" in held.skip and held.cursor == seen.cursor
    up = local_resources(replace(settings, state_dir=state_dir))["readiness"]  # the session's running stack
    back = tick(settings, instance, MAIN, waited.cursor, readiness=up)
    assert _only_request(back).partition_key.startswith("dev|main-") and back.cursor_json["moves"] == 1
    acted = tick(settings, instance, TAGS, seen.cursor, readiness=up)
    assert "v1.1.0" in acted.cursor_json["tags"] and "once the target is back" not in (acted.skip or "")


def test_a_git_error_mid_tick_skips_and_keeps_the_cursor(settings, instance, repo):
    first = tick(settings, instance, MAIN, None)
    repo.push("next")
    # Make the mirror unusable: a file where the bare repository should be, so the fetch of main fails.
    mirror = GitRemote(settings.app_remote, settings.work_dir / "git").mirror
    mirror.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(mirror, ignore_errors=True)
    mirror.write_text("not a repository")
    result = tick(settings, instance, MAIN, first.cursor)
    assert result.run_requests == [] and "could not be read" in result.skip
    assert result.cursor in (None, first.cursor)  # the push is decided again on the next tick: not lost


# --- v* tags → prod -----------------------------------------------------------------------------------------------


def _baseline(settings, instance):
    result = tick(settings, instance, TAGS, None)
    assert result.run_requests == [] and result.partitions == [] and result.events == []
    return result


def test_first_tick_takes_existing_tags_as_history(settings, instance, repo):
    repo.tag("v0.9.0")
    result = _baseline(settings, instance)
    assert result.cursor_json == {"tags": {"v0.9.0": repo.git("rev-parse", "HEAD")}, "accepted": ["v0.9.0"]}
    assert "first tick: 1 existing v* tag(s) taken as already handled (v0.9.0)" in result.skip


def test_stable_tag_is_registered_and_held_for_prod_approval(settings, instance, repo):
    baseline = _baseline(settings, instance)
    head = repo.git("rev-parse", "HEAD")
    repo.tag("v1.0.0", annotated=True)  # annotated: the sensor must use the peeled commit, not the tag object
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.run_requests == []  # prod requires approval: nothing runs yet
    assert result.partitions == ["v1.0.0"]
    (hold,) = result.events
    assert isinstance(hold, dg.AssetObservation) and hold.asset_key == dg.AssetKey("release_approval")
    assert hold.partition == "prod|v1.0.0"
    assert hold.metadata["status"].value == "pending" and hold.metadata["commit"].value == head
    assert result.cursor_json == {"tags": {"v1.0.0": head}, "accepted": ["v1.0.0"]}
    assert result.logged("holding prod|v1.0.0") and "coderemote-pipeline approve prod v1.0.0`" in result.skip


@pytest.fixture
def no_approval(monkeypatch):
    """Every env's policy with approval: none, so that what a tag meets is the gate or a window, then a deploy."""
    relaxed = {n: replace(p, approval=Approval.NONE) for n, p in load_policies().items()}
    monkeypatch.setattr("coderemote_pipeline.resources.environments.load_policies", lambda _dir: relaxed)


def test_stable_tag_deploys_prod_directly_where_no_approval_is_required(settings, instance, repo, no_approval):
    baseline = _baseline(settings, instance)
    head = repo.git("rev-parse", "HEAD")
    repo.tag("v1.0.0")
    # prod's promotion gate (verified_in: dev) comes first: a commit that never passed smoke in dev is not launched.
    gated = tick(settings, instance, TAGS, baseline.cursor)
    assert gated.run_requests == []
    assert gated.logged(f"not deploying prod|v1.0.0 (commit {head[:12]}) yet: prod is held")
    assert gated.cursor_json["waiting"] == {"v1.0.0": ["prod"]}  # known, and decided again each tick
    apply(instance, gated)  # as the daemon does: the release is registered
    assert tick(settings, instance, TAGS, gated.cursor).run_requests == []
    verified_in_dev(instance, head)
    result = tick(settings, instance, TAGS, gated.cursor)  # the tick after the gate opened, from the last cursor
    request = _only_request(result)
    assert request.partition_key == "prod|v1.0.0" and request.run_key == f"prod:v1.0.0@{head}"
    assert request.tags["coderemote/trigger"] == "stable_tag" and request.tags["coderemote/commit"] == head
    assert "waiting" not in result.cursor_json
    assert tick(settings, instance, TAGS, result.cursor).run_requests == []


def test_a_tag_pushed_while_an_older_one_waits_for_the_gate_goes_out_instead(settings, instance, repo, no_approval):
    """The newest tag goes out, as the newest head of main does: an older one the gate still held never deploys
    over it once both commits pass in dev."""
    baseline = _baseline(settings, instance)
    older = repo.git("rev-parse", "HEAD")
    repo.tag("v1.9.0")
    first = tick(settings, instance, TAGS, baseline.cursor)
    apply(instance, first)
    newer = repo.push("the next release")
    repo.tag("v1.10.0")
    second = tick(settings, instance, TAGS, first.cursor)
    apply(instance, second)
    assert second.logged("v1.9.0 waits no more for prod: a tag pushed since went there instead")
    assert second.cursor_json["waiting"] == {"v1.10.0": ["prod"]}
    for commit in (older, newer):
        verified_in_dev(instance, commit)
    result = tick(settings, instance, TAGS, second.cursor)
    assert [r.partition_key for r in result.run_requests] == ["prod|v1.10.0"]


def test_of_two_tags_pushed_together_the_older_never_deploys_over_the_newer(settings, instance, repo, no_approval):
    baseline = _baseline(settings, instance)
    older = repo.git("rev-parse", "HEAD")
    repo.tag("v1.9.0")  # its commit not verified in dev yet: the gate holds it
    verified_in_dev(instance, repo.push("the next release"))
    repo.tag("v1.10.0")
    both = tick(settings, instance, TAGS, baseline.cursor)
    assert [r.partition_key for r in both.run_requests] == ["prod|v1.10.0"] and "waiting" not in both.cursor_json
    apply(instance, both)
    verified_in_dev(instance, older)
    assert tick(settings, instance, TAGS, both.cursor).run_requests == []


def _refused_off_main(settings, instance, repo, tag: str):
    """A new stable tag on a hotfix branch nobody merged: the tag sensor's tick that refuses it."""
    baseline = _baseline(settings, instance)
    repo.tag(tag, repo.side_commit("hotfix/off-main", "a hotfix nobody merged"))
    refused = tick(settings, instance, TAGS, baseline.cursor)
    assert refused.logged(f"refused tag {tag}")
    return refused


def test_a_refused_tag_deleted_and_pushed_again_on_main_is_a_new_tag(settings, instance, repo):
    refused = _refused_off_main(settings, instance, repo, "v1.0.1")
    repo.git("push", "--quiet", "origin", ":refs/tags/v1.0.1")
    deleted = tick(settings, instance, TAGS, refused.cursor)
    assert "gone" not in deleted.cursor_json  # never released: nothing to remember
    repo.tag("v1.0.1", repo.push("the fix, merged"), force=True)  # tagged again, as the refusal said, on main
    result = tick(settings, instance, TAGS, deleted.cursor)
    assert result.partitions == ["v1.0.1"] and not result.logged("moved")
    (hold,) = result.events
    assert hold.partition == "prod|v1.0.1"


def test_prerelease_tag_is_recorded_never_deployed(settings, instance, repo):
    baseline = _baseline(settings, instance)
    repo.tag("v2.0.0-beta.1")
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.run_requests == [] and result.events == []
    assert result.partitions == ["v2.0.0-beta.1"]
    assert "v2.0.0-beta.1" in result.cursor_json["tags"]
    assert result.logged("is a pre-release: recorded as release v2.0.0-beta.1, never deployed to prod")


def test_malformed_tags_are_skipped_with_the_reason_once(settings, instance, repo):
    baseline = _baseline(settings, instance)
    for name in ("v1.2", "vnext", "v01.2.3"):
        repo.tag(name)
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.run_requests == [] and result.partitions == [] and result.events == []
    for name in ("v1.2", "vnext", "v01.2.3"):
        assert result.logged(f"skipped tag {name} "), result.logs
    assert result.logged("'v01.2.3' is not semantic versioning")
    assert set(result.cursor_json["tags"]) == {"v1.2", "vnext", "v01.2.3"}
    again = tick(settings, instance, TAGS, result.cursor)
    assert again.logs == [] and again.skip == "no new v* tags (3 known)"


def test_tag_not_reachable_from_main_is_refused(settings, instance, repo):
    baseline = _baseline(settings, instance)
    hotfix = repo.side_commit("hotfix/critical-fix", "fix: critical security patch")
    repo.tag("v1.0.1", hotfix)
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.run_requests == [] and result.partitions == [] and result.events == []
    assert result.logged(f"refused tag v1.0.1: its commit {hotfix[:12]} is not reachable from main")
    assert result.cursor_json["tags"] == {"v1.0.1": hotfix}


def test_moved_tag_is_reported_not_redeployed(settings, instance, repo):
    baseline = _baseline(settings, instance)
    first = repo.git("rev-parse", "HEAD")
    repo.tag("v1.0.0")
    seen = tick(settings, instance, TAGS, baseline.cursor)
    moved_to = repo.push("after the release")
    repo.tag("v1.0.0", moved_to, force=True)
    result = tick(settings, instance, TAGS, seen.cursor)
    assert result.run_requests == [] and result.partitions == [] and result.events == []
    assert result.logged(f"tag v1.0.0 moved from {first[:12]} to {moved_to[:12]}: NOT redeployed")
    assert result.cursor_json["tags"] == {"v1.0.0": moved_to}
    assert tick(settings, instance, TAGS, result.cursor).logs == []  # reported once


def test_older_version_tagged_after_a_newer_one_deploys_like_any_new_tag(settings, instance, repo):
    good = repo.git("rev-parse", "HEAD")
    repo.push("the release that went wrong")
    repo.tag("v1.3.0")
    baseline = _baseline(settings, instance)
    repo.tag("v1.2.4", good)  # the strategy's rollback option 1: a new patch version at the previous good commit
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.partitions == ["v1.2.4"]
    (hold,) = result.events
    assert hold.partition == "prod|v1.2.4" and hold.metadata["commit"].value == good
    assert result.logged("v1.2.4 is older than v1.3.0, already tagged: deploying it like any new tag")


def test_deleted_tag_is_noted(settings, instance, repo):
    repo.tag("v1.0.0")
    baseline = _baseline(settings, instance)
    repo.git("push", "--quiet", "origin", ":refs/tags/v1.0.0")
    result = tick(settings, instance, TAGS, baseline.cursor)
    assert result.run_requests == [] and result.cursor_json["tags"] == {}
    assert result.logged("tag v1.0.0 was deleted from the remote")


def test_a_tag_deleted_then_pushed_at_another_commit_is_a_moved_tag(settings, instance, repo):
    first = repo.git("rev-parse", "HEAD")
    repo.tag("v1.0.0")
    baseline = _baseline(settings, instance)
    repo.git("push", "--quiet", "origin", ":refs/tags/v1.0.0")
    deleted = tick(settings, instance, TAGS, baseline.cursor)
    assert deleted.cursor_json["gone"] == {"v1.0.0": first}
    moved_to = repo.push("after the release")
    repo.tag("v1.0.0", moved_to, force=True)
    result = tick(settings, instance, TAGS, deleted.cursor)
    assert result.run_requests == [] and result.partitions == [] and result.events == []
    assert result.logged(f"tag v1.0.0 moved from {first[:12]} to {moved_to[:12]}: NOT redeployed")
    assert result.cursor_json["tags"] == {"v1.0.0": moved_to} and "gone" not in result.cursor_json
    # Deleted and pushed again at the same commit: the tag it was, nothing to say or do.
    repo.git("push", "--quiet", "origin", ":refs/tags/v1.0.0")
    again = tick(settings, instance, TAGS, tick(settings, instance, TAGS, result.cursor).cursor)
    assert again.run_requests == [] and again.events == [] and again.logs == []


def test_a_refused_tag_is_not_counted_as_the_newest_release(settings, instance, repo):
    refused = _refused_off_main(settings, instance, repo, "v1.3.0")
    repo.tag("v1.0.1")
    result = tick(settings, instance, TAGS, refused.cursor)
    assert result.partitions == ["v1.0.1"]
    assert not result.logged("older than"), result.logs  # v1.3.0 was refused: it is no release to compare with


def test_a_retry_carries_the_override_the_approvers_and_checks_skipped_on_purpose():
    """Dagster gives a re-execution only the tags it is passed: what the retry must keep of its run, and no more."""
    kept = {names.OVERRIDE_TAG: "outage", names.OVERRIDE_BY_TAG: "pat", names.APPROVED_BY_TAG: "alice",
            names.SKIP_CHECKS_TAG: "tests later", names.SKIP_CHECKS_BY_TAG: "pat"}  # fmt: skip
    run = dg.DagsterRun(job_name="deploy_job", tags={**kept, names.TRIGGER_TAG: "cli", names.REQUEST_TAG: "x"})
    assert carried_tags(run) == kept
