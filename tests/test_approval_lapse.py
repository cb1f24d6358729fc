"""When an approval stops counting: a rollback that fled the release voids it (deploying it again needs a new one,
rolling back to it does not), and approvals expire after the env's `approval_expires`. Read from the ledger as the
approval job and the stages write it (runless events), under a real instance."""

import dataclasses

import dagster as dg
import ledger_kit
import pytest
from ledger_kit import record_live

from coderemote_pipeline.ledger import approvals
from coderemote_pipeline.ledger.approvals import APPROVAL_KEY, approval_reason
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.ledger.records import ROLLED_BACK_TO
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import partition_key

ENV = "prod"
COMMITS = {"v1.0.0": "1" * 40, "v1.1.0": "2" * 40, "v1.2.0": "3" * 40}


@pytest.fixture(autouse=True, params=["named", "unnamed"])
def rollback_records(request, monkeypatch):
    """Each case twice: rollback records as written now (naming what they fled) and as written before (a span)."""
    monkeypatch.setattr(ledger_kit, "ROLLBACKS_NAME_WHAT_THEY_FLED", request.param == "named")
    return request.param


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "home"))) as instance:
        yield instance


def _policy(**changes):
    return dataclasses.replace(load_policies()[ENV], **changes)


def _decide(instance, release: str, by: str, decision: str = "approve") -> None:
    """What approval_job's asset records for ENV|RELEASE."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        APPROVAL_KEY, partition=partition_key(ENV, release),
        metadata={"decision": decision, "by": by, "reason": "", "commit": COMMITS[release]},
    ))  # fmt: skip


def _live(instance, release: str, rollback: bool = False) -> None:
    reason = f"{ROLLED_BACK_TO} {release}" if rollback else f"deployed {release}"
    record_live(instance, ENV, release, COMMITS[release], reason=reason)


def _reason(instance, release: str, policy=None, rollback: bool = False) -> str | None:
    return approval_reason(instance, policy or _policy(), release, COMMITS[release], rollback=rollback)


def test_a_rollback_voids_the_approval_of_what_it_fled_until_approved_again(instance):
    for release in COMMITS:
        _decide(instance, release, "alice")
        _live(instance, release)
    assert _reason(instance, "v1.2.0") is None
    _live(instance, "v1.0.0", rollback=True)  # away from v1.2.0, past v1.1.0
    for fled in ("v1.2.0", "v1.1.0"):
        reason = _reason(instance, fled)
        assert reason.startswith(f"prod|{fled} was approved by alice (")
        assert "but a rollback took prod away from it, or past it, on " in reason and "Approve it again" in reason
        assert _reason(instance, fled, rollback=True) is None  # going back to it is a rollback: always allowed
    assert _reason(instance, "v1.0.0") is None  # the rollback's target keeps its approval
    _decide(instance, "v1.2.0", "bob")  # reviewed again after the rollback
    assert _reason(instance, "v1.2.0") is None
    assert _reason(instance, "v1.1.0") is not None


def test_approvals_before_a_rollback_do_not_count_toward_several_required(instance):
    policy = _policy(approvers=dataclasses.replace(_policy().approval_rule, required=2))
    _decide(instance, "v1.1.0", "alice")
    _live(instance, "v1.0.0")
    _live(instance, "v1.1.0")
    _live(instance, "v1.0.0", rollback=True)
    _decide(instance, "v1.1.0", "bob")
    assert _reason(instance, "v1.1.0", policy).startswith(
        "prod|v1.1.0 has 1 of the 2 approvals prod requires (bob) (those before ")
    assert "no longer count: a rollback took prod away from it, or past it, on " in _reason(instance, "v1.1.0", policy)
    _decide(instance, "v1.1.0", "carol")
    assert _reason(instance, "v1.1.0", policy) is None


def test_an_approval_given_while_it_was_live_is_voided_by_a_later_rollback(instance):
    _live(instance, "v1.0.0")
    _live(instance, "v1.1.0")
    _decide(instance, "v1.1.0", "alice")  # approved again while live (to redeploy it), then prod is rolled back
    _live(instance, "v1.2.0")
    _live(instance, "v1.0.0", rollback=True)
    assert "but a rollback took prod away from it, or past it" in _reason(instance, "v1.1.0")


def test_a_rollback_to_a_release_with_no_earlier_record_voids_only_what_it_replaced(instance, rollback_records):
    for release in ("v1.0.0", "v1.2.0"):
        _decide(instance, release, "alice")
        _live(instance, release)
    _live(instance, "v1.1.0", rollback=True)  # v1.1.0's earlier live record is gone (older history, wiped)
    assert "but a rollback took prod away from it" in _reason(instance, "v1.2.0")
    # A record naming what it fled voids v1.2.0's approvals alone; one from before records did, every older one's.
    assert (_reason(instance, "v1.0.0") is None) == (rollback_records == "named")


def test_putting_a_fled_release_back_by_rollback_does_not_restore_its_approval(instance):
    _decide(instance, "v1.1.0", "alice")
    _live(instance, "v1.0.0")
    _live(instance, "v1.1.0")
    _live(instance, "v1.0.0", rollback=True)
    _live(instance, "v1.1.0", rollback=True)  # `rollback --to v1.1.0`: allowed, needs no approval
    _live(instance, "v1.2.0")
    assert "but a rollback took prod away from it, or past it" in _reason(instance, "v1.1.0")


def test_an_automatic_rollback_voids_nothing(instance):
    """A deploy whose smoke failed is put back by the pipeline: the release never served the env, and its retry
    goes on with its approval."""
    _decide(instance, "v1.1.0", "alice")
    _live(instance, "v1.0.0")
    record_live(instance, ENV, "v1.0.0", COMMITS["v1.0.0"], reason="automatic rollback: smoke of v1.1.0 failed")
    assert _reason(instance, "v1.1.0") is None


def test_a_release_deployed_again_since_the_rollback_keeps_a_later_approval(instance):
    _live(instance, "v1.0.0")
    _live(instance, "v1.1.0")
    _live(instance, "v1.0.0", rollback=True)
    _decide(instance, "v1.1.0", "alice")
    _live(instance, "v1.1.0")  # fixed forward and deployed with that approval
    assert _reason(instance, "v1.1.0") is None


def test_approvals_expire_after_the_env_s_approval_expires(instance, monkeypatch):
    policy = _policy(approval_expires_s=3600.0)
    _decide(instance, "v1.0.0", "alice")
    assert _reason(instance, "v1.0.0", policy) is None
    now = approvals.time.time()
    # A run made in time is not found expired at a later stage: expiry is measured when it started.
    assert approval_reason(instance, policy, "v1.0.0", COMMITS["v1.0.0"], at=now + 3599) is None
    later = now + 3601
    monkeypatch.setattr(approvals, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))
    reason = _reason(instance, "v1.0.0", policy)
    assert reason.startswith("prod|v1.0.0 was approved by alice (")
    assert reason.endswith("and approvals in prod last 1 h (approval_expires in infra/environments.yaml): review it, "
                           "then approve it again")  # fmt: skip
    assert "approvals in prod last 30 min (" in approval_reason(
        instance, _policy(approval_expires_s=1800.0), "v1.0.0", COMMITS["v1.0.0"], at=now + 1801)
    assert _reason(instance, "v1.0.0", policy, rollback=True) is None
    assert _reason(instance, "v1.0.0", _policy(approval_expires_s=None)) is None


def test_only_a_rollback_to_what_passed_at_that_commit_keeps_a_lapsed_approval(instance):
    """The stages ask whether a run puts back what served the env: a rollback run (its job, or its trigger tag) of
    a release whose smoke passed there at that very commit. A deploy tagged `rollback` of anything else is not."""
    from types import SimpleNamespace

    from ledger_kit import record_smoke

    from coderemote_pipeline.assets.stage import puts_back_what_served
    from coderemote_pipeline.rules import names
    from coderemote_pipeline.rules.deployment import Deployment

    record_smoke(instance, ENV, "v1.0.0", COMMITS["v1.0.0"])

    def puts_back(job: str, release: str, commit: str, trigger: str = "cli") -> bool:
        run = dg.DagsterRun(job_name=job, tags={names.TRIGGER_TAG: trigger})
        deploy = Deployment.of(ENV, release, load_policies(), commit)
        return puts_back_what_served(SimpleNamespace(run=run, instance=instance), deploy)

    assert puts_back(names.ROLLBACK_JOB, "v1.0.0", COMMITS["v1.0.0"])
    assert puts_back(names.DEPLOY_JOB, "v1.0.0", COMMITS["v1.0.0"], trigger=names.TRIGGER_ROLLBACK)
    assert not puts_back(names.DEPLOY_JOB, "v1.0.0", COMMITS["v1.0.0"])  # a deploy of it needs its approval
    assert not puts_back(names.DEPLOY_JOB, "v1.1.0", COMMITS["v1.1.0"], trigger=names.TRIGGER_ROLLBACK)
    assert not puts_back(names.ROLLBACK_JOB, "v1.0.0", COMMITS["v1.1.0"])  # the tag moved since it passed


def test_a_rollback_to_what_served_is_not_held_by_a_moved_tag_or_a_tightened_rule(instance):
    """A rollback to a release that served prod at its commit was refused mid-run: its tag had moved and been approved
    again at the new commit ("approved at commit 71fb…, but this deploy is commit eadd…", and `approve` bound the
    new commit again: a loop), or prod asked for more approvals since. Only a rejection of that commit holds it."""
    _decide(instance, "v1.0.0", "alice")
    _live(instance, "v1.0.0")
    moved = "9" * 40
    instance.report_runless_asset_event(dg.AssetMaterialization(
        APPROVAL_KEY, partition=partition_key(ENV, "v1.0.0"),
        metadata={"decision": "approve", "by": "bob", "reason": "", "commit": moved},
    ))  # fmt: skip
    tighter = _policy(approvers=dataclasses.replace(_policy().approval_rule, required=3))
    assert _reason(instance, "v1.0.0", rollback=True) is None
    assert _reason(instance, "v1.0.0", tighter, rollback=True) is None
    assert "(the tag moved)" in _reason(instance, "v1.0.0", tighter)  # a deploy of it, not a rollback: held
    _decide(instance, "v1.0.0", "carol", decision="reject")
    assert _reason(instance, "v1.0.0", rollback=True) == (
        f"prod|v1.0.0 at commit {COMMITS['v1.0.0'][:12]} was rejected by carol: roll back to another release "
        "(`coderemote-pipeline rollback prod --to RELEASE`)")  # fmt: skip
    # Approved since at the commit its tag was moved to: that commit's rejection still holds a rollback to it.
    instance.report_runless_asset_event(dg.AssetMaterialization(
        APPROVAL_KEY, partition=partition_key(ENV, "v1.0.0"),
        metadata={"decision": "approve", "by": "bob", "reason": "", "commit": moved},
    ))  # fmt: skip
    assert "was rejected by carol" in _reason(instance, "v1.0.0", rollback=True)
