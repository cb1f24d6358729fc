"""What `status` prints for an environment the pipeline's own run left on another release than the record: which
run, and the way back that fits it (pure printing, over small stand-ins for the record and the target's answers;
the real stack's case is in tests/test_faults_local.py)."""

from types import SimpleNamespace

from coderemote_pipeline.cli.status_command import _print
from coderemote_pipeline.rules.delivery import Deploy


def _found(left: Deploy) -> SimpleNamespace:
    live = SimpleNamespace(release="main-1111111", since=1.0e9, run_id="aaaaaaaa11", reason="deployed main-1111111",
                           frontend_release="main-1111111")  # fmt: skip
    serving = SimpleNamespace(digest="sha256:" + "b" * 64)
    state = SimpleNamespace(release="main-2222222", version="7", serving=serving, frontend_release="main-2222222",
                            api=SimpleNamespace(ok=True), api_down=False)  # fmt: skip
    problems = ["alias points to version 7 (main-2222222), recorded 6 (main-1111111)"]
    return SimpleNamespace(env="dev", recorded=live, state=state, unverified=left, problems=problems, unexplained=[])


def _run(status: str, *, rollback: bool = False, failure: str = "") -> Deploy:
    return Deploy(run_id="cccccccc33", release="main-2222222", commit="2" * 40, trigger="cli", status=status,
                  started=1.0e9 + 5, ended=None if status == "STARTED" else 1.0e9 + 9, rolled_back=False,
                  failure=failure, rollback=rollback)  # fmt: skip


def test_a_deploy_still_at_its_checks_is_in_progress_with_no_fix(capsys):
    _print(_found(_run("STARTED")))
    shown = capsys.readouterr().out
    assert "IN PROGRESS" in shown and "deploy of main-2222222 in progress (run cccccccc)" in shown, shown
    assert "fix:" not in shown and "UNVERIFIED" not in shown, shown


def test_a_failed_deploy_is_unverified_and_the_way_back_is_the_recorded_release(capsys):
    _print(_found(_run("FAILURE", failure="smoke_result: smoke failed")))
    shown = capsys.readouterr().out
    assert "UNVERIFIED" in shown and "(failed: smoke_result: smoke failed)" in shown, shown
    assert "never verified there; the last release that passed is main-1111111" in shown, shown
    assert "fix: `coderemote-pipeline rollback dev --to main-1111111`" in shown, shown


def test_a_stopped_rollback_is_finished_by_its_retry_not_undone(capsys):
    """A rollback's target passed here before: rolling back "to the recorded release" would put back what it fled."""
    _print(_found(_run("FAILURE", rollback=True, failure="smoke_result: interrupted")))
    shown = capsys.readouterr().out
    assert "rollback to main-2222222" in shown and "without its checks passing this time" in shown, shown
    assert "fix: `coderemote-pipeline retry cccccccc` finishes the rollback" in shown, shown
    assert "rollback dev --to" not in shown, shown


def test_a_deploy_that_went_live_while_status_read_the_target_is_no_drift(tmp_path):
    """`status` read the live record, then the target: a deploy finishing in between showed as drift, with a
    "fix" that would have rolled it back. The record is read again where the two differ."""
    from coderemote_pipeline.actions.switch import Serving
    from coderemote_pipeline.actions.target_state import TargetState, drift
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.live import record_live
    from coderemote_pipeline.ledger.records import LiveRecord
    from coderemote_pipeline.usecases.status import EnvStatus, _explained
    from testkit.ledger_seed import outputs_of

    def live(release: str, version: int, run_id: str) -> LiveRecord:
        return LiveRecord(release, release[-1] * 40, version, f"sha256:{version}", release, f"deployed {release}",
                          run_id, float(version), outputs_of("dev"))  # fmt: skip

    with open_instance(tmp_path / "state") as instance:
        before = live("main-1111111", 6, "r1")
        record_live(instance, "dev", before)
        state = TargetState("dev", Serving("7", "main-2222222", "2" * 40, "sha256:7", "main-2222222"), {"version": "7"})
        seen = EnvStatus("dev", before, state, drift(before, state))
        assert seen.problems  # what the old record says of the new release
        record_live(instance, "dev", live("main-2222222", 7, "r2"))  # the deploy went live meanwhile
        explained = _explained(instance, seen)
    assert explained.problems == [] and explained.unverified is None, explained
    assert explained.recorded.release == "main-2222222"
