import dagster as dg
import pytest

from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.env_names import UnknownEnvironmentError, check_env
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import partition_key
from coderemote_pipeline.rules.release_keys import (
    ReleaseKeyError,
    ReleaseKind,
    commit_release_key,
    parse_release_key,
    parse_version_tag,
)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("v1.2.3", ReleaseKind.STABLE),
        ("v0.0.1", ReleaseKind.STABLE),
        ("v2.0.0-beta.1", ReleaseKind.PRERELEASE),
        ("v1.0.0-rc.2", ReleaseKind.PRERELEASE),
        ("main-3f9c2ab", ReleaseKind.COMMIT),
        ("hotfix-critical-fix-0123456789ab", ReleaseKind.COMMIT),
    ],
)
def test_release_keys_parse(key, kind):
    assert parse_release_key(key).kind is kind


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("v1.2", "not semantic versioning"),
        ("vnext", "neither a version tag"),
        ("v01.2.3", "not semantic versioning"),
        ("v1.2.3+build.5", "build metadata"),
        ("1.2.3", "neither a version tag"),
        ("main-xyz1234", "neither a version tag"),
        ("main-3f9c", "neither a version tag"),
        ("dev|v1.2.3", "contains one of"),
        ("", "empty"),
        ("main 3f9c2ab", "contains one of"),
    ],
)
def test_malformed_release_keys_are_refused_with_the_reason(key, reason):
    with pytest.raises(ReleaseKeyError, match=reason):
        parse_release_key(key)


def test_version_tag_requires_v_prefix():
    with pytest.raises(ReleaseKeyError, match="must start with 'v'"):
        parse_version_tag("1.2.3")
    assert str(parse_version_tag("v1.2.3")) == "1.2.3"


def test_commit_release_key_is_short_and_slugged():
    sha = "3f9c2ab1d4e5f60718293a4b5c6d7e8f90a1b2c3"
    assert commit_release_key("main", sha) == "main-3f9c2ab"
    assert commit_release_key("feature/My Thing", sha) == "feature-my-thing-3f9c2ab"
    assert parse_release_key(commit_release_key("feature/My Thing", sha)).commit_prefix == "3f9c2ab"
    # A branch named like a version (v2, v1.2.3): its commits are commits, never read as version tags.
    for branch in ("v2", "v1.2.3", "v10-hotfix"):
        key = commit_release_key(branch, sha)
        assert key == f"branch-{branch}-3f9c2ab" and parse_release_key(key).kind is ReleaseKind.COMMIT
    assert commit_release_key("vnext", sha) == "vnext-3f9c2ab"
    with pytest.raises(ReleaseKeyError, match="not a git commit"):
        commit_release_key("main", "HEAD")


def test_deployments_parse_once_and_round_trip():
    policies = load_policies()
    deploy = Deployment.parse("dev|main-3f9c2ab", policies, "3f9c2ab" + "0" * 33)
    assert deploy.partition == "dev|main-3f9c2ab" == partition_key("dev", "main-3f9c2ab")
    assert (deploy.env, deploy.release.key, deploy.policy.name) == ("dev", "main-3f9c2ab", "dev")
    assert Deployment.parse(dg.MultiPartitionKey({"env": "prod", "release": "v1.2.3"}), policies).release.is_stable
    tags = deploy.tags("cli")
    assert tags["dagster/partition"] == "dev|main-3f9c2ab" and tags["coderemote/commit"] == deploy.commit


@pytest.mark.parametrize("bad", ["qa", "Prod", "", "production"])
def test_unknown_environment_names_the_choices(bad):
    with pytest.raises(UnknownEnvironmentError, match="choose one of dev, staging, prod"):
        check_env(bad)
    with pytest.raises(UnknownEnvironmentError):
        Deployment.of(bad, "v1.0.0", load_policies())


def test_deployment_key_without_separator_is_refused():
    with pytest.raises(ReleaseKeyError, match=r"ENV\|RELEASE"):
        Deployment.parse("dev-main-3f9c2ab", load_policies())


@pytest.mark.parametrize(
    ("job", "tags", "rollback"),
    [
        ("rollback_job", {"coderemote/trigger": "rollback"}, True),  # the CLI's rollback
        ("rollback_job", {"coderemote/trigger": "retry"}, True),  # its retry: a re-execution keeps the job only
        ("rollback_job", {}, True),  # launched from the UI
        ("redeploy_job", {"coderemote/trigger": "retry"}, False),
    ],
)
def test_a_rollback_goes_back_at_once_whoever_launched_it(job, tags, rollback):
    """prod's canary and bake judge a new release; going back to a verified one is never a 10 % canary."""
    from types import SimpleNamespace

    from coderemote_pipeline.actions.switch import Serving
    from coderemote_pipeline.assets.traffic_shift import _plan
    from coderemote_pipeline.rules.names import is_rollback_run

    run = dg.DagsterRun(job_name=job, tags=tags)
    assert is_rollback_run(run) is rollback
    from dataclasses import replace

    from coderemote_pipeline.rules.rollout import Analysis, RolloutPlan, Step

    deploy = Deployment.of("prod", "v1.0.0", load_policies(), "a" * 40)
    canary = RolloutPlan("canary", (Step(10, 300.0),), 900.0, Analysis())
    deploy = replace(deploy, policy=replace(deploy.policy, rollout=canary))
    before, wanted = Serving("3", "v1.1.0", "b" * 40, "d", "v1.1.0"), Serving("2", "v1.0.0", "a" * 40, "d", "v1.0.0")
    plan = _plan(SimpleNamespace(run=run), deploy, before, wanted, unjudged=False)
    assert plan == (RolloutPlan.at_once() if rollback else canary)
