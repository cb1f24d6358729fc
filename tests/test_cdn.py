"""The invalidation waits for the distribution's last change (the site's edge following a flip) to be deployed:
an edge still on the old origin path would cache the release before again, after the invalidation.
A hand-written CloudFront that answers from a script: the order of the calls is the logic under test."""

import shlex
from types import SimpleNamespace

import botocore.exceptions
import pytest

from coderemote_pipeline.actions import cdn, restore
from coderemote_pipeline.actions.restore import cloudfront_not_cleared
from coderemote_pipeline.local_stack.site_edge import ban_command


class ScriptedCloudFront:
    def __init__(self, distribution: list[str], invalidation: list[str]):
        self.distribution, self.invalidation, self.calls = distribution, invalidation, []

    def get_distribution(self, Id):
        self.calls.append(("get_distribution", self.distribution[0]))
        return {"Distribution": {"Status": self.distribution.pop(0) if len(self.distribution) > 1 else
                                 self.distribution[0]}}  # fmt: skip

    def create_invalidation(self, DistributionId, InvalidationBatch):
        self.calls.append(("create_invalidation", InvalidationBatch["Paths"]["Items"]))
        return {"Invalidation": {"Id": "I1", "Status": self.invalidation.pop(0)}}

    def get_invalidation(self, DistributionId, Id):
        self.calls.append(("get_invalidation", Id))
        return {"Invalidation": {"Id": Id, "Status": self.invalidation.pop(0)}}


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(cdn.time, "sleep", lambda _: None)


@pytest.mark.usefixtures("no_sleep")
def test_the_invalidation_is_made_once_the_distribution_is_deployed():
    cf = ScriptedCloudFront(["InProgress", "InProgress", "Deployed"], ["InProgress", "Completed"])
    done = cdn.invalidate(cf, "E1", ["/index.html"], "run-1")
    assert done.status == "Completed"
    assert [c[0] for c in cf.calls] == ["get_distribution"] * 3 + ["create_invalidation", "get_invalidation"]


@pytest.mark.usefixtures("no_sleep")
def test_a_distribution_that_never_deploys_fails_naming_it_and_invalidates_nothing(monkeypatch):
    clock = iter(range(0, 10**6, 60))
    monkeypatch.setattr(cdn.time, "monotonic", lambda: next(clock))
    cf = ScriptedCloudFront(["InProgress"], [])
    with pytest.raises(cdn.InvalidationTimeout, match="distribution E1 is still InProgress after 20 min, so nothing"):
        cdn.invalidate(cf, "E1", ["/index.html"], "run-1")
    assert "create_invalidation" not in [c[0] for c in cf.calls]


def _target(*aws_cli: str) -> SimpleNamespace:
    return SimpleNamespace(aws_cli=aws_cli or ("aws",), outputs={"cloudfront_distribution_id": "E2ABC"})


def test_the_hint_of_a_restore_whose_invalidation_failed_is_a_command_that_clears_those_paths():
    """It waits for the distribution's last change first (an invalidation made before would let an edge on the old
    origin cache the release it left again), then invalidates, under the target's own profile."""
    few = cloudfront_not_cleared(_target(), ["/", "/index.html", "/my file.json"], RuntimeError("AccessDenied"))
    assert few.hint().endswith(
        "Invalidate them: `aws cloudfront wait distribution-deployed --id E2ABC && aws cloudfront create-invalidation "
        "--distribution-id E2ABC --paths / /index.html '/my file.json'`"
    )
    many = cloudfront_not_cleared(_target(), [f"/page{n}.html" for n in range(11)], RuntimeError("AccessDenied"))
    assert many.hint().endswith("--paths '/*'`") and "/page0.html, /page1.html" in many.hint()
    assert "/page5.html" not in many.hint()  # five named, the rest elided
    profiled = cloudfront_not_cleared(_target("aws", "--profile", "release team"), ["/"], RuntimeError("no"))
    assert profiled.hint().endswith("`aws --profile 'release team' cloudfront wait distribution-deployed --id E2ABC "
                                    "&& aws --profile 'release team' cloudfront create-invalidation "
                                    "--distribution-id E2ABC --paths /`")  # fmt: skip


@pytest.mark.usefixtures("no_sleep")
def test_an_invalidation_still_in_progress_is_watched_not_made_again(monkeypatch):
    """The wait ran out after CloudFront took the invalidation: a second one of the same paths changes nothing."""
    clock = iter(range(0, 10**6, 60))
    monkeypatch.setattr(cdn.time, "monotonic", lambda: next(clock))
    cf = ScriptedCloudFront(["Deployed"], ["InProgress"] * 100)
    with pytest.raises(cdn.InvalidationTimeout) as timed_out:
        cdn.invalidate(cf, "E2ABC", ["/index.html"], "ref-1")
    assert timed_out.value.invalidation_id == "I1"
    hint = cloudfront_not_cleared(_target(), ["/", "/index.html"], timed_out.value).hint()
    assert "CloudFront has not finished invalidating what the release it left changed (/, /index.html)" in hint
    assert hint.endswith("Watch it: `aws cloudfront get-invalidation --distribution-id E2ABC --id I1`")


def test_the_edge_ban_matches_the_percent_encoded_urls_the_edge_sees():
    """varnish matches request URLs (a key with a space is /my%20file.json there), and a raw space in the regex was
    a compile error varnish answered 200 to, banning nothing."""
    ban = shlex.split(ban_command(6081, ["/my file.json", "/assets/*"]))
    assert ban[5] == "X-Path-Regex: ^(/my%20file\\.json|/assets/.*)$" and ban[-1] == "http://127.0.0.1:6081/"


@pytest.mark.usefixtures("no_sleep")
def test_the_tries_of_a_restores_invalidation_share_one_budget(monkeypatch):
    """A transient error late in a 20-min wait is tried again in place: each try began its own budget, so three
    tries could hold a settle (and the env's lease) for an hour. The script: a distribution that never deploys,
    a clock a minute a call, and a throttled answer near the end of the first budget."""
    clock = iter(range(0, 10**6, 60))
    monkeypatch.setattr(cdn.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(restore.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(restore.time, "sleep", lambda _: None)
    cf, tries = ScriptedCloudFront(["InProgress"], []), []
    real_get = cf.get_distribution

    def throttled_once(Id):
        if len(cf.calls) == 15 and not tries:
            tries.append("throttled")
            raise botocore.exceptions.ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}},
                                                  "GetDistribution")  # fmt: skip
        return real_get(Id)

    cf.get_distribution = throttled_once
    target = SimpleNamespace(env="dev", cf=cf, outputs={"cloudfront_distribution_id": "E1"}, aws_cli=("aws",),
                             site=SimpleNamespace(forget=lambda env, paths: None))  # fmt: skip
    with pytest.raises(restore.CdnNotCleared, match="still InProgress after 20 min"):
        restore._forget(target, ["/index.html"], "restore-1")
    assert tries == ["throttled"]
    assert len(cf.calls) < 25, "the try after the throttled one began a budget of its own"
