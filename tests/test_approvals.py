"""The prod approval gate: holds recorded by the tag sensor, decisions from the CLI (and the asset the UI uses), the
approved-release sensor launching a held deploy exactly once, and refusals on every deploy path.

Real git repositories and a persistent Dagster instance under a temporary DAGSTER_HOME; no stack (nothing deploys).
"""

import time

import dagster as dg
import pytest
from sensor_kit import apply, cli_environment, tick, verified_in_dev

from coderemote_pipeline.assets.jobs import STAGE_ASSETS as STAGES
from coderemote_pipeline.assets.release_approval import release_approval
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.approvals import approval_refusal, latest_decision, latest_hold
from coderemote_pipeline.resources.targets import local_resources
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.names import COMMIT_TAG
from coderemote_pipeline.usecases.deploy import DeployRefused, Override, run_deployment

APPROVE_HINT = "coderemote-pipeline approve prod v1.0.0"


@pytest.fixture
def env(tmp_path, repo, monkeypatch):
    """Settings and instance exactly as the CLI sees them (DAGSTER_HOME and CODEREMOTE_* in the environment)."""
    with cli_environment(tmp_path, repo.remote, monkeypatch) as found:
        yield found


def _hold_v1(settings, instance, repo, *, verified: bool = True) -> str:
    """Tag v1.0.0 and let the tag sensor see it, storing its output as the daemon would; returns the commit."""
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    apply(instance, tick(settings, instance, "version_tag_sensor", baseline.cursor))
    commit = repo.git("rev-parse", "HEAD")
    if verified:
        verified_in_dev(instance, commit)  # the strategy's "tested in dev", which prod's promotion gate asks for
    return commit


def _approved_before_dev_verified(settings, instance, repo):
    """v1.0.0 held, approved by alice, and the approved-release sensor's tick that finds the gate closed."""
    commit = _hold_v1(settings, instance, repo, verified=False)
    assert main(["approve", "prod", "v1.0.0", "--by", "alice"]) == 0
    return commit, tick(settings, instance, "approved_release_sensor", None)


def test_approving_a_held_release_launches_its_deploy_exactly_once(env, repo, capsys):
    settings, instance = env
    commit = _hold_v1(settings, instance, repo)
    assert main(["approvals", "--pending"]) == 0
    listing = capsys.readouterr().out
    assert "prod     v1.0.0" in listing and "pending" in listing and APPROVE_HINT in listing

    assert main(["approve", "prod", "v1.0.0", "--by", "alice", "--reason", "checked in dev"]) == 0
    out = capsys.readouterr().out
    assert f"approved prod|v1.0.0 (commit {commit[:12]}) by alice" in out and "launches the held deploy" in out
    decision = latest_decision(instance, "prod", "v1.0.0")
    assert (decision.decision, decision.by, decision.reason) == ("approve", "alice", "checked in dev")
    hold = latest_hold(instance, "prod", "v1.0.0")
    assert decision.commit == commit == hold.commit and decision.hold_id == hold.storage_id
    (run,) = instance.get_runs(dg.RunsFilter(job_name="approval_job"))
    assert run.is_success and run.tags["dagster/partition"] == "prod|v1.0.0"
    assert main(["approvals"]) == 0
    assert "approved  by alice at " in capsys.readouterr().out

    # The target down (no stack runs for this state dir): the decision waits, nothing launched, the cursor kept.
    down = tick(settings, instance, "approved_release_sensor", None, readiness=local_resources(settings)["readiness"])
    assert down.run_requests == [] and down.cursor is None
    assert down.skip.startswith("approval decisions to act on once the target is back: No local stack is running")
    launched = tick(settings, instance, "approved_release_sensor", None)
    (request,) = launched.run_requests
    assert request.partition_key == "prod|v1.0.0" and request.job_name == "redeploy_job"
    assert request.run_key == f"prod|v1.0.0:hold-{hold.storage_id}"
    assert request.tags["coderemote/commit"] == commit and request.tags["coderemote/trigger"] == "approval"
    # Its lead time starts at its commit, as a tag sensor's run's does (it had none: prod's DORA lead time read 0 s).
    assert abs(float(request.tags["coderemote/commit_time"]) - time.time()) < 3600
    assert launched.cursor_json == {"after_storage_id": decision.storage_id, "waiting": []}
    assert launched.logged("prod|v1.0.0 approved by alice")
    # The next tick finds nothing new; a tick evaluated again from the old cursor (restart) asks for the same key.
    assert tick(settings, instance, "approved_release_sensor", launched.cursor).skip == "no new approval decisions"
    assert tick(settings, instance, "approved_release_sensor", None).run_requests[0].run_key == request.run_key

    # The daemon launches it (a run carrying the run key); approving the same hold again launches nothing more.
    instance.add_run(dg.DagsterRun(job_name="deploy_job", tags={"dagster/run_key": request.run_key}))
    assert main(["approve", "prod", "v1.0.0", "--by", "carol"]) == 0
    assert "its held deploy was already launched" in capsys.readouterr().out
    again = tick(settings, instance, "approved_release_sensor", launched.cursor)
    assert again.run_requests == [] and again.logged("its held deploy was already launched")


def test_an_approved_hold_not_yet_verified_in_dev_waits_for_it(env, repo, capsys):
    settings, instance = env
    commit, gated = _approved_before_dev_verified(settings, instance, repo)
    assert gated.run_requests == []
    assert gated.logged(f"not deploying prod|v1.0.0 (commit {commit[:12]}) yet: prod is held: commit {commit[:12]}")
    apply(instance, gated)
    # It still waits, and says for what and what to run: `approvals` lists it with the gate's fix.
    assert main(["approvals", "--pending"]) == 0
    listing = capsys.readouterr().out
    assert "approved" in listing and "waits for the promotion gate" in listing
    assert f"coderemote-pipeline deploy dev {commit[:12]}" in listing
    still = tick(settings, instance, "approved_release_sensor", gated.cursor)
    assert still.run_requests == [] and still.cursor_json["waiting"][0]["release"] == "v1.0.0"
    # Once dev has verified the commit, the held deploy launches by itself: one approval is enough.
    verified_in_dev(instance, commit)
    (request,) = tick(settings, instance, "approved_release_sensor", still.cursor).run_requests
    assert request.partition_key == "prod|v1.0.0"


def test_an_approval_that_expires_while_the_gate_holds_it_is_asked_again(env, repo, monkeypatch, capsys):
    """prod's approvals last 72h: a release approved, then held days by the promotion gate, is held for a new
    approval instead of launching on the old one (its stages would refuse it); the new approval launches it."""
    from coderemote_pipeline.ledger import approvals

    settings, instance = env
    commit, gated = _approved_before_dev_verified(settings, instance, repo)
    apply(instance, gated)
    verified_in_dev(instance, commit)
    capsys.readouterr()
    assert main(["approvals"]) == 0
    assert "no longer stands" not in capsys.readouterr().out  # in force: listed plainly
    days_later = approvals.time.time() + 73 * 3600
    with monkeypatch.context() as clock:
        clock.setattr(approvals, "time", type("Clock", (), {"time": staticmethod(lambda: days_later)}))
        lapsed = tick(settings, instance, "approved_release_sensor", gated.cursor)
        capsys.readouterr()
        assert main(["approvals"]) == 0
        assert ("(no longer stands for a new deploy: approvals in prod last 3 d (approval_expires in "
                "infra/environments.yaml))") in capsys.readouterr().out
    assert lapsed.run_requests == [] and lapsed.cursor_json["waiting"] == []
    assert lapsed.logged("prod|v1.0.0: the approval by alice no longer stands, so it is held again: prod|v1.0.0 was "
                         "approved by alice (")  # fmt: skip
    apply(instance, lapsed)
    assert latest_hold(instance, "prod", "v1.0.0").status == "pending"
    assert main(["approve", "prod", "v1.0.0", "--by", "bob"]) == 0
    (request,) = tick(settings, instance, "approved_release_sensor", lapsed.cursor).run_requests
    assert request.partition_key == "prod|v1.0.0"


def test_rejected_release_is_not_deployed_until_approved(env, repo, capsys):
    settings, instance = env
    _hold_v1(settings, instance, repo)
    assert main(["reject", "prod", "v1.0.0", "--by", "bob", "--reason", "too risky on a Friday"]) == 0
    assert "rejected prod|v1.0.0" in capsys.readouterr().out
    result = tick(settings, instance, "approved_release_sensor", None)
    assert result.run_requests == [] and result.logged("prod|v1.0.0 rejected by bob: too risky on a Friday")
    with pytest.raises(DeployRefused, match=r"is held for approval"):
        run_deployment("prod", "v1.0.0", settings=settings, instance=instance, echo=lambda _: None)
    assert main(["approvals"]) == 0
    assert "rejected  by bob" in capsys.readouterr().out
    # Approved on Monday: the deploy the rejection stopped is launched after all.
    assert main(["approve", "prod", "v1.0.0", "--by", "alice"]) == 0
    assert "launches the held deploy" in capsys.readouterr().out
    monday = tick(settings, instance, "approved_release_sensor", result.cursor)
    (request,) = monday.run_requests
    assert request.run_key == f"prod|v1.0.0:hold-{latest_hold(instance, 'prod', 'v1.0.0').storage_id}"


def test_unapproved_prod_deploys_are_refused_by_the_cli_and_by_the_stages(env, repo):
    settings, instance = env
    commit = _hold_v1(settings, instance, repo)
    held = r"is held for approval: prod requires approval and prod\|v1.0.0 has not been approved"
    with pytest.raises(DeployRefused, match=rf"prod\|v1.0.0 .* {held}.*{APPROVE_HINT}"):
        run_deployment("prod", "v1.0.0", settings=settings, instance=instance, echo=lambda _: None)

    def stage_failure(tags=None) -> str:
        # Materializing a stage is what the UI does; the resources are never reached when the gate refuses.
        result = dg.materialize(
            STAGES,
            selection=["infra_stack"],
            partition_key="prod|v1.0.0",
            resources=local_resources(settings),
            instance=instance,
            tags=tags,
            raise_on_error=False,
        )
        assert not result.success
        error = result.get_step_failure_events()[0].step_failure_data.error
        return "\n".join(str(e.message) for e in [error, error.cause] if e is not None)

    assert "prod requires approval" in stage_failure() and APPROVE_HINT in stage_failure()
    assert main(["approve", "prod", "v1.0.0", "--by", "alice"]) == 0
    assert approval_refusal(instance, load_policies()["prod"], "v1.0.0", commit) is None
    # An approval binds the commit it was given for: the same tag moved elsewhere is refused until approved again.
    moved = stage_failure({COMMIT_TAG: "f" * 40})
    assert f"approved by alice at commit {commit[:12]}, but this deploy is commit ffffffffffff" in moved
    # Envs without required approval are untouched by the gate.
    assert approval_refusal(instance, load_policies()["dev"], "main-0000000") is None


def test_a_tag_approved_before_the_sensor_sees_it_deploys_without_a_hold(env, repo, capsys):
    settings, instance = env
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    verified_in_dev(instance, repo.git("rev-parse", "HEAD"))
    # Not registered yet, but a tag on the remote: the approve command registers it.
    assert main(["approve", "prod", "v1.0.0", "--by", "alice"]) == 0
    assert "deploy it with `coderemote-pipeline deploy prod v1.0.0`" in capsys.readouterr().out
    result = tick(settings, instance, "version_tag_sensor", baseline.cursor)
    (request,) = result.run_requests
    assert request.partition_key == "prod|v1.0.0" and result.events == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["approve", "qa", "v1.0.0", "--by", "x"], "unknown environment 'qa'"),
        (["approve", "prod", "v1.2", "--by", "x"], "'v1.2' is not semantic versioning"),
        (
            ["approve", "prod", "v9.9.9", "--by", "x"],
            "'v9.9.9' is not registered in this Dagster instance and is not a tag",
        ),
        (["approve", "dev", "main-abcdef0", "--by", "x"], "dev needs no approval"),
        (["approve", "prod", "v2.0.0-beta.1", "--by", "x"], "prod deploys only stable version tags"),
        (["reject", "prod", "v1.0.0", "--by", " "], "argument --by: ' ' names nobody"),  # refused as it is parsed
    ],
)
def test_decision_errors_exit_2_with_a_clear_message(env, repo, capsys, argv, message):
    repo.tag("v1.0.0")
    try:
        code = main(argv)
    except SystemExit as exited:  # the parser's own refusals exit from inside main
        code = exited.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_approval_asset_validates_decisions_made_in_the_ui(env, repo):
    settings, instance = env
    instance.add_dynamic_partitions("release", ["main-abcdef0"])
    result = dg.materialize(
        [release_approval],
        partition_key="dev|main-abcdef0",
        run_config={"ops": {"release_approval": {"config": {"by": "alice", "decision": "approve"}}}},
        resources=local_resources(settings),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "dev needs no approval" in str(error.message) + str(error.cause)
    # What `approvals` and `history` list is one line: no newline, escape or direction override from the UI either.
    _hold_v1(settings, instance, repo)
    forged = dg.materialize(
        [release_approval],
        partition_key="prod|v1.0.0",
        run_config={"ops": {"release_approval": {"config": {"by": "alice", "decision": "approve",
                                                            "reason": "ok\nerror: forged line"}}}},
        resources=local_resources(settings),
        instance=instance,
        raise_on_error=False,
    )  # fmt: skip
    error = forged.get_step_failure_events()[0].step_failure_data.error
    assert "config `by` and `reason` must be one line of text" in str(error.message) + str(error.cause)


def test_no_approvals_yet(env, capsys):
    assert main(["approvals"]) == 0
    assert "no approvals recorded yet" in capsys.readouterr().out


def test_force_before_the_approval_travels_with_the_hold(env, repo):
    settings, instance = env
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    apply(instance, tick(settings, instance, "version_tag_sensor", baseline.cursor))
    # Not approved, not verified in dev: `--force --reason` now records the gate override with the hold.
    with pytest.raises(DeployRefused, match="held for approval \\(with the gate override"):
        run_deployment("prod", "v1.0.0", settings=settings, instance=instance,
                       override=Override("dev is down, hotfix", "carol"), echo=lambda _: None)  # fmt: skip
    assert main(["approve", "prod", "v1.0.0", "--by", "alice"]) == 0
    (request,) = tick(settings, instance, "approved_release_sensor", None).run_requests
    assert request.tags["coderemote/override"] == "dev is down, hotfix"
    assert request.tags["coderemote/override_by"] == "carol"


def test_an_approval_whose_commit_the_remote_cannot_give_is_refused_before_a_run(env, repo, tmp_path, capsys):
    """No hold names v1.0.0's commit, so the decision reads it from the remote: an unreachable one is a one-line
    refusal, not a failed approval run in the release's history each time it is tried."""
    _, instance = env
    repo.tag("v1.0.0")
    instance.add_dynamic_partitions("release", ["v1.0.0"])  # registered (an earlier deploy attempt), never held
    before = len(instance.get_runs())
    assert main(["approve", "prod", "v1.0.0", "--by", "alice", "--remote", str(tmp_path / "nowhere.git")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere.git' is unreachable" in err
    assert len(instance.get_runs()) == before
