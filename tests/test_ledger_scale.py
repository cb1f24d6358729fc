"""The ledger's answers do not depend on how much history other environments and releases have: the same questions
asked after a handful of deploys and after more than 10,000 events (three environments, over a thousand releases)
give the same answers. Each question goes through the real ledger on a real SQLite instance; the history is seeded
by testkit/ledger_seed.py (run records, and the rows Dagster writes for each stage's events)."""

import dagster as dg

from coderemote_pipeline.ledger.instance import prepare_home
from testkit.ledger_seed import A, questions, seed_scenario


def _instance(path):
    path.mkdir(parents=True, exist_ok=True)
    prepare_home(path)
    return dg.DagsterInstance.from_config(str(path))


def test_the_answers_do_not_change_with_10000_events_of_history(tmp_path):
    asked = questions()
    with _instance(tmp_path / "small") as small:
        seed_scenario(small, deploys=0)
        few = {name: ask(small) for name, ask in asked.items()}
    assert few["rollback_target"] == ("v1.0.0", A) and few["live_record"] == "v1.1.0"
    assert few["gate_verified"] is None and "failed" in few["gate_failed_in_dev"]
    assert "has not passed smoke in dev" in few["gate_never_in_dev"]
    assert few["approvals"] == (["v2.0.0"], "alice")
    assert few["history_and_figures"][0] == [("v1.1.0", "live", "cli"), ("v1.0.0", "live", "cli")]
    with _instance(tmp_path / "large") as large:
        assert seed_scenario(large, deploys=1500) >= 10_000
        assert {name: ask(large) for name, ask in asked.items()} == few
