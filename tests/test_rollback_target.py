"""Which release `rollback ENV` goes back to, read from the ledger as real deploys and rollbacks write it: the
newest that passed smoke there and is not live, passing by any a rollback took the env away from."""

import dagster as dg
import ledger_kit
import pytest
from ledger_kit import record_live, record_smoke

from coderemote_pipeline.ledger.gate import gate_refusal
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.ledger.records import ROLLED_BACK_TO
from coderemote_pipeline.ledger.releases import fled_by_rollback_to, known_good, known_good_commit
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.usecases.deploy import DeployRefused
from coderemote_pipeline.usecases.rollback import rollback_target

ENV = "prod"
COMMITS = {release: f"{n}" * 40 for n, release in enumerate(("v1.0.0", "v1.1.0", "v1.2.0"), start=1)}


@pytest.fixture(autouse=True, params=["named", "unnamed"])
def rollback_records(request, monkeypatch):
    """Each case twice: rollback records as written now (naming what they fled) and as written before (a span)."""
    monkeypatch.setattr(ledger_kit, "ROLLBACKS_NAME_WHAT_THEY_FLED", request.param == "named")
    return request.param


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "home"))) as instance:
        for release, commit in COMMITS.items():
            record_smoke(instance, ENV, release, commit)
        yield instance


def _deployed(instance, release: str) -> None:
    record_live(instance, ENV, release, COMMITS[release])


def _rolled_back(instance, release: str) -> None:
    record_live(instance, ENV, release, COMMITS[release], reason=f"{ROLLED_BACK_TO} {release}")


def test_rolling_back_twice_goes_further_back_never_to_what_the_first_fled(instance):
    for release in COMMITS:
        _deployed(instance, release)
    assert rollback_target(instance, ENV, None)[0] == "v1.1.0"
    _rolled_back(instance, "v1.1.0")  # away from v1.2.0
    assert rollback_target(instance, ENV, None)[0] == "v1.0.0"  # not v1.2.0 again (kubectl's undo would)
    _rolled_back(instance, "v1.0.0")  # away from v1.1.0
    with pytest.raises(DeployRefused) as refused:
        rollback_target(instance, ENV, None)
    assert str(refused.value).startswith(
        "prod has no earlier release that passed smoke and was not rolled back from (live: v1.0.0; rolled back "
        "from: v1.1.0, v1.2.0). To go back to v1.1.0 anyway: coderemote-pipeline rollback prod --to v1.1.0; or "
        "deploy a fix forward: coderemote-pipeline deploy prod vMAJOR.MINOR.PATCH"
    )
    assert rollback_target(instance, ENV, "v1.2.0")[0] == "v1.2.0"  # --to still takes it


def test_a_rollback_past_a_release_flees_it_too(instance):
    record_smoke(instance, ENV, "v0.9.0", "9" * 40)
    record_live(instance, ENV, "v0.9.0", "9" * 40)
    for release in COMMITS:
        _deployed(instance, release)
    _rolled_back(instance, "v1.0.0")  # from v1.2.0, past v1.1.0: the operator skipped it
    assert rollback_target(instance, ENV, None)[0] == "v0.9.0"  # older than v1.0.0, never the skipped v1.1.0
    record_live(instance, ENV, "v0.9.0", "9" * 40, reason=f"{ROLLED_BACK_TO} v0.9.0")
    with pytest.raises(DeployRefused, match=r"rolled back from: v1\.0\.0, v1\.2\.0, v1\.1\.0\)"):
        rollback_target(instance, ENV, None)


def test_a_release_deployed_again_after_a_rollback_is_a_target_again(instance):
    for release in ("v1.0.0", "v1.1.0"):
        _deployed(instance, release)
    _rolled_back(instance, "v1.0.0")
    _deployed(instance, "v1.1.0")  # fixed forward, the same release (a moved tag, a rebuilt image)
    _deployed(instance, "v1.2.0")
    assert rollback_target(instance, ENV, None)[0] == "v1.1.0"


def test_a_rollback_to_a_release_whose_live_record_is_gone_flees_only_what_it_replaced(instance, rollback_records):
    """History from before live_release existed, or wiped: v1.1.0 passed smoke in prod, but no record says it was
    live. The rollback's record names what it fled (v1.2.0), so v1.0.0 stays a target; a record that names nothing
    is a span back to v1.1.0's earlier record, which never comes: every older release counts as fled."""
    _deployed(instance, "v1.0.0")
    _deployed(instance, "v1.2.0")
    _rolled_back(instance, "v1.1.0")
    if rollback_records == "named":
        assert rollback_target(instance, ENV, None)[0] == "v1.0.0"
        return
    with pytest.raises(DeployRefused, match=r"rolled back from: v1\.2\.0, v1\.0\.0\)"):
        rollback_target(instance, ENV, None)


def test_what_a_rollback_flees_is_every_release_since_its_target_was_last_live(instance):
    for release in ("v1.0.0", "v1.1.0", "v1.2.0", "v1.1.0"):
        _deployed(instance, release)
    assert fled_by_rollback_to(instance, ENV, "v1.0.0") == ["v1.1.0", "v1.2.0"]  # each once, newest first
    assert fled_by_rollback_to(instance, ENV, "v1.2.0") == ["v1.1.0"]
    assert fled_by_rollback_to(instance, ENV, "v0.9.0") == ["v1.1.0"]  # never live here: only what it replaces


def test_records_from_before_rollbacks_said_so_are_told_by_their_run(instance):
    for release in ("v1.0.0", "v1.1.0"):
        _deployed(instance, release)
    run = instance.create_run_for_job(dg.GraphDefinition(names.ROLLBACK_JOB).to_job())
    record_live(instance, ENV, "v1.0.0", COMMITS["v1.0.0"], run_id=run.run_id)  # reason "deployed v1.0.0"
    with pytest.raises(DeployRefused, match=r"rolled back from: v1\.1\.0\)"):
        rollback_target(instance, ENV, None)


def test_registering_a_release_another_deploy_registered_first_is_no_error(instance, monkeypatch):
    """Two deploys of one release at once both find it missing; the later insert fails on the unique key."""
    import sqlalchemy.exc

    from coderemote_pipeline.ledger.releases import register_release

    add = instance.add_dynamic_partitions

    def lost_the_race(name, keys):
        add(name, keys)  # the other deploy's insert, between Dagster's check and ours
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(instance, "add_dynamic_partitions", lost_the_race)
    register_release(instance, "v9.9.9")
    assert instance.has_dynamic_partition("release", "v9.9.9")
    monkeypatch.setattr(instance, "add_dynamic_partitions", lambda name, keys: (_ for _ in ()).throw(
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("another constraint"))))  # fmt: skip
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        register_release(instance, "v9.9.8")  # not there after all: a real error, raised


def test_a_release_whose_latest_smoke_failed_is_refused_as_such_not_as_never_passed(instance):
    for release in COMMITS:
        _deployed(instance, release)
    record_smoke(instance, ENV, "v1.0.0", COMMITS["v1.0.0"], passed=False, run_id="0f1e2d3c-aaaa")
    with pytest.raises(DeployRefused) as refused:
        rollback_target(instance, ENV, "v1.0.0")
    assert str(refused.value).startswith("v1.0.0's latest smoke in prod failed")
    assert "not a verified release to roll back to. Deploy it instead: coderemote-pipeline deploy prod v1.0.0" in str(
        refused.value
    )


def test_the_recorded_release_is_known_good_at_its_commit_whatever_its_last_smoke_said(instance):
    """A rollback whose smoke failed stays on its target, recorded live: putting that release back whole (the repair
    of a split env) needs no new approval, as any rollback to what served the env."""
    _deployed(instance, "v1.2.0")
    _rolled_back(instance, "v1.0.0")
    record_smoke(instance, ENV, "v1.0.0", COMMITS["v1.0.0"], passed=False)
    assert known_good_commit(instance, ENV, "v1.0.0") == COMMITS["v1.0.0"]
    record_smoke(instance, ENV, "v1.1.0", COMMITS["v1.1.0"], passed=False)
    assert known_good_commit(instance, ENV, "v1.1.0") is None  # neither passing last nor live
    assert known_good_commit(instance, ENV, "v1.2.0") == COMMITS["v1.2.0"]


def test_the_promotion_gate_still_holds_a_deploy_of_the_commit_prod_serves_after_a_failed_smoke(instance):
    """Only a rollback of that release (assets/stage.py puts_back_what_served) passes it: a new tag of the commit
    prod was left on by a rollback whose smoke failed, never verified in dev, is held like any other."""
    policy = load_policies()["prod"]
    _deployed(instance, "v1.2.0")
    _rolled_back(instance, "v1.0.0")
    record_smoke(instance, ENV, "v1.0.0", COMMITS["v1.0.0"], passed=False)
    assert known_good_commit(instance, ENV, "v1.0.0") == COMMITS["v1.0.0"]
    assert gate_refusal(instance, policy, COMMITS["v1.0.0"]).startswith("prod is held: commit 111111111111 has not")


def test_the_recorded_release_stays_known_good_at_its_commit_after_its_tag_moved(instance):
    """The split-env repair puts back the commit the env serves; a later passed smoke of the same key at another
    commit (its tag moved) must not make that repair a new release needing approval."""
    _deployed(instance, "v1.1.0")
    record_smoke(instance, ENV, "v1.1.0", "f" * 40)  # the tag moved, and that commit passed too
    assert known_good(instance, ENV, "v1.1.0", COMMITS["v1.1.0"])  # what the env serves
    assert known_good(instance, ENV, "v1.1.0", "f" * 40)  # what last passed
    assert not known_good(instance, ENV, "v1.1.0", "e" * 40)
