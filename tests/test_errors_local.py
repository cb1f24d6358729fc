"""Errors a user can cause, each with a message that names the thing and the fix."""

import json
import re
import socket
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.actions.git_remote import GitRemote, RefNotFound, RemoteUnreachable
from coderemote_pipeline.assets.jobs import STAGE_ASSETS as STAGES
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.local_stack import EmulatorDown, LocalStackNotRunning, check_parts, load_stack_info
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.targets import local_resources
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import UnknownEnvironmentError
from coderemote_pipeline.rules.release_keys import commit_release_key
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.deploy import DeployRefused, run_deployment

pytestmark = pytest.mark.stack


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broken_stack(settings, tmp_path: Path, **changes) -> Path:
    """A state dir whose stack record points one part at an address where nothing answers."""
    info = json.loads((settings.state_dir / "local" / "stack.json").read_text())
    info.update(changes)
    (tmp_path / "local").mkdir(parents=True)
    (tmp_path / "local" / "stack.json").write_text(json.dumps(info))
    return tmp_path


def _failure(result, step: str) -> str:
    event = next(e for e in result.get_step_failure_events() if e.step_key == step)
    error = event.step_failure_data.error
    return "\n".join(str(e.message) for e in [error, error.cause] if e is not None)


def test_unknown_environment(settings, capsys):
    with pytest.raises(UnknownEnvironmentError, match="unknown environment 'qa': choose one of dev, staging, prod"):
        run_deployment("qa", "main", settings=settings)
    assert main(["deploy", "qa", "main", "--remote", settings.app_remote]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err


def test_ref_missing_on_the_remote(settings, capsys):
    with pytest.raises(RefNotFound, match="'no-such-branch' is not a branch, version tag or commit"):
        run_deployment("dev", "no-such-branch", settings=settings)
    assert main(["deploy", "dev", "v9.9.9", "--remote", settings.app_remote]) == 2
    assert "git ls-remote" in capsys.readouterr().err


def test_a_version_written_without_its_v_names_the_tag_it_meant(tmp_path):
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    git("tag", "v1.2.4", cwd=clone)
    git("push", "-q", "origin", "v1.2.4", cwd=clone)
    with pytest.raises(RefNotFound, match=re.escape("'1.2.4' is not a branch, version tag or commit of the app "
                                                    "remote; its version tag is 'v1.2.4': deploy that")):  # fmt: skip
        GitRemote(str(remote), tmp_path / "mirrors").resolve("1.2.4")


def test_an_unreachable_remote_says_how_to_fix_it_whichever_git_command_found_it(tmp_path):
    for ask in (GitRemote.ls_remote, GitRemote.sync):
        with pytest.raises(RemoteUnreachable, match=r"is unreachable .*Check the URL and that git can read it"):
            ask(GitRemote(str(tmp_path / "nowhere.git"), tmp_path / "mirrors"))


def test_a_tag_outside_the_version_namespace_is_its_commit(tmp_path, capsys):
    """`release-1` names a commit: dev deploys it as that commit; prod's refusal says it is not a version tag."""
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    git("tag", "release-1", cwd=clone)
    git("push", "--quiet", "origin", "release-1", cwd=clone)
    head = git("rev-parse", "HEAD", cwd=clone).strip()
    resolved = GitRemote(str(remote), tmp_path / "mirrors").resolve("release-1")
    assert (resolved.commit, resolved.release_key) == (head, commit_release_key("main", head))
    with pytest.raises(RefNotFound, match="'release-2' is not a branch, version tag or commit"):
        GitRemote(str(remote), tmp_path / "mirrors").resolve("release-2")
    assert main(["deploy", "prod", "release-1", "--remote", str(remote)]) == 2
    assert f"'{commit_release_key('main', head)}' is a commit, not a version tag" in capsys.readouterr().err


def test_a_commit_id_in_capitals_is_that_commit_and_a_short_one_says_how_long(tmp_path):
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    head = git("rev-parse", "HEAD", cwd=clone).strip()
    mirror = GitRemote(str(remote), tmp_path / "mirrors")
    assert mirror.resolve(head[:10].upper()).commit == head  # as some UIs show it
    with pytest.raises(RefNotFound, match=f"'{head[:6]}' is no branch or tag of the app remote, and too short for "
                                          "a commit id: give at least a commit's first 7 characters"):  # fmt: skip
        mirror.resolve(head[:6])


def test_unreachable_remote(settings, tmp_path):
    missing = replace(settings, app_remote=str(tmp_path / "nowhere.git"))
    with pytest.raises(
        RemoteUnreachable,
        match=r"nowhere\.git' is unreachable \(.*not appear to be a git repository\)\. Check the URL",
    ):
        run_deployment("dev", "main", settings=missing)


def test_prod_refuses_commits_and_prereleases(settings, app_remote):
    with pytest.raises(DeployRefused, match="prod deploys only stable version tags"):
        run_deployment("prod", "main", settings=settings)


def test_emulator_not_running(settings, instance, tmp_path):
    state = _broken_stack(settings, tmp_path / "state", moto_endpoint=f"http://127.0.0.1:{_dead_port()}")
    with pytest.raises(EmulatorDown, match=r"AWS emulator \(moto\) at http://127\.0\.0\.1:\d+ is not answering"):
        check_parts(load_stack_info(state))
    broken = replace(settings, state_dir=state)
    instance.add_dynamic_partitions("release", ["main-0000000"])
    result = dg.materialize(
        STAGES,
        selection=["infra_stack"],
        partition_key="dev|main-0000000",
        resources=local_resources(broken),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert "coderemote-pipeline local up" in _failure(result, "infra_stack")


def test_stack_never_started(tmp_path):
    with pytest.raises(LocalStackNotRunning, match="coderemote-pipeline local up"):
        LocalStackResource(state_dir=str(tmp_path)).info()


def test_no_docker_engine(settings, instance, app_remote, tmp_path):
    # A commit never built: a re-run of a built release needs no engine at all (its image is reused by digest).
    (app_remote[1] / "backend" / "app" / "NO_ENGINE").write_text("needs a build\n")
    head = commit_and_push(app_remote[1], "a commit that needs a build")
    partition = f"dev|{commit_release_key('main', head)}"
    instance.add_dynamic_partitions("release", [commit_release_key("main", head)])
    good = dg.materialize(
        STAGES,
        selection=["infra_stack"],
        partition_key=partition,
        resources=local_resources(settings),
        instance=instance,
    )
    assert good.success
    state = _broken_stack(settings, tmp_path / "state", docker_host=f"unix://{tmp_path}/no-engine.sock")
    broken = replace(settings, state_dir=state)
    result = dg.materialize(
        STAGES,
        selection=["api_image"],
        partition_key=partition,
        resources=local_resources(broken),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    message = _failure(result, "api_image")
    assert "no Docker engine reachable at unix://" in message and "local up" in message


def test_dockerfile_that_fails_to_build(settings, instance, tmp_path):
    remote, clone = tmp_path / "broken.git", tmp_path / "broken"
    make_app_repo(EXAMPLE_APP, remote, clone)
    dockerfile = clone / "backend" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY no-such-dir/ /var/task/missing/\n")
    commit = commit_and_push(clone, "break the Dockerfile")
    broken = replace(settings, app_remote=str(remote))
    outcome = run_deployment("staging", "main", settings=broken, instance=instance, echo=lambda _: None)
    assert not outcome.success
    assert "api_image" in outcome.failure and "docker build of Dockerfile failed" in outcome.failure
    assert "build log (last" in outcome.failure and "no-such-dir" in outcome.failure
    assert "lambda_version" not in outcome.stages  # nothing downstream of the failed build ran
    assert commit[:7] in outcome.release


def test_a_state_disk_that_fills_during_a_deploy_says_where_the_env_may_be(settings, instance, monkeypatch, capsys):
    """The instance's storage went away mid-deploy (a disk that filled, a team Postgres killed): the command said only
    that the database was full, exit 2 like a typo, and nothing of the env, which the switch may have changed."""
    import sqlite3

    from coderemote_pipeline.actions import switch
    from coderemote_pipeline.ledger.sqlite_storage import PooledSqliteEventLogStorage

    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", settings.app_remote)
    full, store_event, switch_site = [], PooledSqliteEventLogStorage.store_event, switch.switch_site

    def on_a_full_disk(self, event):
        if full:
            raise sqlite3.OperationalError("database or disk is full")  # what SQLite says once the disk is full
        return store_event(self, event)

    def the_disk_fills(target, release):
        full.append(release)
        return switch_site(target, release)

    with monkeypatch.context() as faults:
        faults.setattr(PooledSqliteEventLogStorage, "store_event", on_a_full_disk)
        faults.setattr(switch, "switch_site", the_disk_fills)
        assert main(["deploy", "dev", "main"]) == 1  # not a typo of the user's: a run was under way
    # Before them, Dagster's own line for each event it could not write ("Exception while writing logger call…").
    err = capsys.readouterr().err.splitlines()[-2:]
    assert err[0] == ("error: the state database cannot grow (database or disk is full): free space on the state "
                      "dir's disk"), err  # fmt: skip
    cut = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: "dev"}), limit=1)[0]
    assert cut.status is dg.DagsterRunStatus.STARTED and cut.tags[names.RELEASE_TAG] == full[0]
    assert err[1].startswith(f"run {cut.run_id[:8]} of dev|{full[0]} was cut off part-way: dev may serve"), err
    assert err[1].endswith(f"`coderemote-pipeline retry {cut.run_id[:8]} --mark-failed` then marks the run failed "
                           "and finishes its deploy, or `coderemote-pipeline rollback dev` goes back"), err  # fmt: skip
    # This process stands in for the command, which would have exited: its run is marked failed as the sensor for
    # dead runs does, and the next deploy finishes the job.
    Lease(instance, "dev").reap(cut.run_id, "its process exited, cut off from the instance")
    assert main(["deploy", "dev", "main"]) == 0
