"""A stable tag whose commit is not on main when the tag arrives (`git push --tags && git push`), tick by tick
against a real bare remote: checked again each time main moves, it deploys once main has it, within the grace
time. After that, or once a newer version is out, it stays refused; a tag moved meanwhile is reported, not
deployed."""

import json
import os
import subprocess

import dagster as dg
import pytest
from sensor_kit import settings_for, tick

from coderemote_pipeline.sensors.off_main import CLOCK_SKEW_S, GRACE_S, LAST_LOOK_S


@pytest.fixture
def tags_tick(tmp_path, repo):
    """One tick of version_tag_sensor from a cursor, on its own instance and settings."""
    settings = settings_for(tmp_path / "state", str(repo.remote))
    with dg.instance_for_test() as instance:
        yield lambda cursor: tick(settings, instance, "version_tag_sensor", cursor)


def _tagged_before_main(tags_tick, repo, tag: str = "v1.1.0"):
    """The release commit made on main in the clone and its tag pushed; main itself not pushed yet."""
    baseline = tags_tick(None)
    commit = repo.commit("the release")
    repo.tag(tag, commit)
    refused = tags_tick(baseline.cursor)
    assert refused.run_requests == [] and refused.events == []
    assert refused.logged(f"refused tag {tag}: its commit {commit[:12]} is not reachable from main")
    assert refused.logged("If main is only behind (the tag was pushed first), it deploys once main has it")
    assert set(refused.cursor_json["off_main"]) == {tag}
    return commit, refused


def _aged(result, seconds: float) -> str:
    cursor = result.cursor_json
    for entry in cursor["off_main"].values():
        entry["since"] -= seconds
    return json.dumps(cursor)


def test_a_tag_pushed_before_main_deploys_once_main_has_its_commit(tags_tick, repo):
    commit, refused = _tagged_before_main(tags_tick, repo)
    idle = tags_tick(refused.cursor)  # main has not moved: nothing to check, nothing said
    assert idle.logs == [] and idle.skip == "no new v* tags (1 known); v1.1.0 wait(s) for main to have its commit"
    repo.git("push", "--quiet", "origin", "HEAD:main")
    result = tags_tick(_aged(idle, GRACE_S - 60))
    assert result.partitions == ["v1.1.0"] and result.logged(f"v1.1.0 is on main now (commit {commit[:12]})")
    (hold,) = result.events  # prod requires approval: held for it, as any new tag
    assert hold.partition == "prod|v1.1.0" and hold.metadata["commit"].value == commit
    assert "off_main" not in result.cursor_json and "v1.1.0" in result.cursor_json["accepted"]
    assert tags_tick(result.cursor).events == []  # decided once


def test_main_moving_without_the_tag_keeps_it_waiting_quietly(tags_tick, repo):
    _, refused = _tagged_before_main(tags_tick, repo)
    repo.git("checkout", "--quiet", "-b", "elsewhere", "HEAD~1")
    repo.git("commit", "--quiet", "--allow-empty", "-m", "another change")
    repo.git("push", "--quiet", "origin", "HEAD:main")
    again = tags_tick(refused.cursor)
    assert again.events == [] and again.logs == []
    assert again.cursor_json["off_main"]["v1.1.0"]["since"] == refused.cursor_json["off_main"]["v1.1.0"]["since"]


def test_a_tag_still_off_main_after_the_grace_time_stays_refused(tags_tick, repo):
    commit, refused = _tagged_before_main(tags_tick, repo)
    expired = tags_tick(_aged(refused, GRACE_S + 1))
    assert expired.logged(f"tag v1.1.0 (commit {commit[:12]}) was not seen on main within {int(GRACE_S // 60)} min")
    assert "off_main" not in expired.cursor_json
    repo.git("push", "--quiet", "origin", "HEAD:main")  # a hotfix merged weeks later is not shipped by it
    late = tags_tick(expired.cursor)
    assert late.events == [] and late.run_requests == [] and late.logs == []


def test_a_tag_that_reaches_main_after_a_newer_release_is_not_deployed_over_it(tags_tick, repo):
    _, refused = _tagged_before_main(tags_tick, repo, "v1.1.0")
    repo.push("the next release")  # main now has v1.1.0's commit too
    repo.tag("v1.2.0")
    both = tags_tick(refused.cursor)
    assert [e.partition for e in both.events] == ["prod|v1.2.0"]
    assert both.logged("v1.1.0 reached main after v1.2.0 was tagged: not deployed over it")
    assert "off_main" not in both.cursor_json


def test_a_waiting_tag_moved_is_reported_not_deployed(tags_tick, repo):
    _, refused = _tagged_before_main(tags_tick, repo)
    moved_to = repo.push("another commit")
    repo.tag("v1.1.0", moved_to, force=True)
    result = tags_tick(refused.cursor)
    assert result.events == [] and result.logged("tag v1.1.0 moved from")
    assert "off_main" not in result.cursor_json


@pytest.mark.parametrize("gap_s", [GRACE_S + 60, 3 * 3600], ids=["a slow tick", "the daemon stopped for hours"])
def test_a_merge_within_the_grace_time_seen_by_a_later_tick_still_deploys(tags_tick, repo, gap_s):
    """The first tick after the grace time (a slow interval, the target down for a while, the daemon stopped) still
    looks at a main that moved since the last check: the merge may have landed in time."""
    _, refused = _tagged_before_main(tags_tick, repo)
    repo.git("push", "--quiet", "origin", "HEAD:main")
    result = tags_tick(_aged(refused, gap_s))
    assert [e.partition for e in result.events] == ["prod|v1.1.0"] and "off_main" not in result.cursor_json
    # Later than that, main is not looked at again for it.
    _, refused = _tagged_before_main(tags_tick, repo, "v1.2.0")
    repo.git("push", "--quiet", "origin", "HEAD:main")
    late = tags_tick(_aged(refused, LAST_LOOK_S + 1))
    assert late.events == [] and late.logged("tag v1.2.0 (commit") and "off_main" not in late.cursor_json


def _merged_into_main(repo, branch: str, at: float) -> None:
    """`branch` merged into main (a merge commit made at `at`, as its committer time says) and main pushed."""
    merged = {**os.environ, "GIT_COMMITTER_DATE": f"@{int(at)} +0000"}
    subprocess.run(["git", "merge", "--quiet", "--no-ff", branch, "-m", f"merge {branch}"], cwd=repo.clone,
                   env=merged, check=True, capture_output=True)  # fmt: skip
    repo.git("push", "--quiet", "origin", "HEAD:main")


@pytest.mark.parametrize(("merged_after_s", "in_time"),
                         [(GRACE_S / 2, True), (GRACE_S + CLOCK_SKEW_S - 30, True), (3 * 3600, False)],
                         ids=["merged in time", "by a clock a little ahead", "merged hours later"])  # fmt: skip
def test_a_late_look_tells_a_merge_in_time_from_a_later_one(tags_tick, repo, merged_after_s, in_time):
    """The daemon stopped for hours: the first tick back looks once at a tag left waiting for main. A hotfix tag
    whose merge came within the grace time deploys; one merged hours later (which that tick alone cannot tell from
    the other) stays refused, as main's merge commit says when."""
    baseline = tags_tick(None)
    commit = repo.side_commit("hotfix", "the fix")
    repo.tag("v1.1.0", commit)
    repo.git("checkout", "--quiet", "hotfix")  # the branch goes on after the tagged commit, then is merged
    repo.commit("a follow-up on the branch")
    repo.git("checkout", "--quiet", "main")
    refused = tags_tick(baseline.cursor)
    assert set(refused.cursor_json["off_main"]) == {"v1.1.0"}
    gap = 3 * 3600
    since = refused.cursor_json["off_main"]["v1.1.0"]["since"] - gap
    _merged_into_main(repo, "hotfix", since + merged_after_s)
    result = tags_tick(_aged(refused, gap))
    assert "off_main" not in result.cursor_json
    if in_time:
        assert [e.partition for e in result.events] == ["prod|v1.1.0"]
        return
    assert result.events == [] and result.run_requests == [] and "v1.1.0" not in result.cursor_json["accepted"]
    assert result.logged(f"tag v1.1.0 (commit {commit[:12]}) reached main through a merge made ")
    assert result.logged(f"more than {int(GRACE_S // 60)} min after the tag's push: it stays refused")


def test_a_tag_seen_off_main_once_more_after_the_grace_time_is_dropped(tags_tick, repo):
    commit, refused = _tagged_before_main(tags_tick, repo)
    repo.git("checkout", "--quiet", "-b", "elsewhere", "HEAD~1")
    repo.git("commit", "--quiet", "--allow-empty", "-m", "another change")
    repo.git("push", "--quiet", "origin", "HEAD:main")
    expired = tags_tick(_aged(refused, GRACE_S + 60))
    assert expired.events == [] and "off_main" not in expired.cursor_json
    assert [line for line in expired.logs if "was not seen on main" in line] == [
        f"tag v1.1.0 (commit {commit[:12]}) was not seen on main within {int(GRACE_S // 60)} min of its push: it "
        "stays refused. Merge the change into main, then tag the merge commit with a new version"
    ]


def test_of_two_waiting_tags_that_reach_main_together_only_the_newer_deploys(tags_tick, repo):
    baseline = tags_tick(None)
    repo.tag("v1.1.0", repo.commit("one release"))
    repo.tag("v1.2.0", repo.commit("the next"))
    both = tags_tick(baseline.cursor)
    assert set(both.cursor_json["off_main"]) == {"v1.1.0", "v1.2.0"}
    repo.git("push", "--quiet", "origin", "HEAD:main")
    result = tags_tick(both.cursor)
    assert [e.partition for e in result.events] == ["prod|v1.2.0"]
    assert result.logged("v1.1.0 reached main after v1.2.0 was tagged: not deployed over it")


def test_a_deploy_command_refuses_prod_a_tag_off_main_unless_forced(cli_env, capsys):
    """The tag sensor refused a hotfix tagged on its branch; `deploy prod v1.3.0` shipped it all the same, with no
    trace in history, and the next tag on main would have taken the hotfix out of prod again."""
    from coderemote_pipeline.cli.main import main

    repo = cli_env["repo"]
    repo.git("checkout", "--quiet", "-b", "hotfix/login")
    commit = repo.commit("the hotfix, not merged")
    repo.tag("v1.3.0", commit)
    assert main(["deploy", "prod", "v1.3.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: prod|v1.3.0: its commit {commit[:12]} is not on main, and prod takes releases tagged on "
                   "main (the next tag would not have this change). Merge it into main and tag the merge commit, or "
                   "deploy it anyway with --force --reason TEXT, recorded in history"), err  # fmt: skip
    # A branch is refused for what it is, not sent to --force, which could not deploy it either.
    assert main(["deploy", "prod", "hotfix/login"]) == 2
    assert "not on main" not in capsys.readouterr().err
    # Forced, it goes on to what prod asks next (its approval here), the reason travelling with it.
    assert main(["deploy", "prod", "v1.3.0", "--force", "--reason", "hotfix first, merge after", "--by", "pat"]) == 2
    assert "is held for approval (with the gate override" in capsys.readouterr().err
