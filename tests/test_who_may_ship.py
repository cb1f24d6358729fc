"""Who may ship: approvers per environment, no self-approval, a number of approvals, signed release tags, and
deploy windows, on real git repositories (SSH keys made here with ssh-keygen) and a persistent Dagster instance.
No stack: nothing deploys; the sensors' run requests and the CLI's refusals are what is checked."""

import os
import pwd
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sensor_kit import AppRepo, apply, cli_environment, tick, verified_in_dev

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.approvals import ApprovalError, approval_refusal
from coderemote_pipeline.ledger.live import record_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.sensors import approved_release
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.deploy import DeployRefused, Override, check_signed_and_open, run_deployment
from coderemote_pipeline.usecases.promote import promote

APPROVERS = {"alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@example.com"}


@pytest.fixture
def env(tmp_path, repo, monkeypatch, settings_infra):
    with cli_environment(tmp_path, repo.remote, monkeypatch, settings_infra) as found:
        yield found


@pytest.fixture
def settings_infra(tmp_path):
    infra = tmp_path / "infra"
    shutil.copytree(Settings.from_env({"CODEREMOTE_APP_REMOTE": "x"}).infra_dir, infra)
    _policy(infra, "prod", approvers=APPROVERS)
    return infra


def _policy(infra, env: str, **entry) -> None:
    path = infra / "environments.yaml"
    table = yaml.safe_load(path.read_text())
    table["environments"][env].update(entry)
    for key in [k for k, v in entry.items() if v is None]:
        del table["environments"][env][key]
    path.write_text(yaml.safe_dump(table, sort_keys=False))


def _tag_as(repo: AppRepo, name: str, email: str, *extra: str) -> None:
    repo.git("-c", f"user.email={email}", "-c", f"user.name={email.split('@')[0]}", "tag", "-a", "-m", name,
             *extra, name)  # fmt: skip
    repo.git("push", "--quiet", "origin", f"refs/tags/{name}")


def _decide(settings, instance, by: str, release: str = "v1.0.0", decision: str = "approve"):
    return record_decision(settings, instance, "prod", parse_release_key(release), by=by, decision=decision,
                           reason="")  # fmt: skip


def test_only_listed_approvers_decide_and_nobody_approves_their_own_tag(env, repo):
    settings, instance = env
    _tag_as(repo, "v1.0.0", "alice@example.com")
    with pytest.raises(ApprovalError) as outsider:
        _decide(settings, instance, "mallory")
    assert "'mallory' is not an approver of prod: approvers are alice, bob, carol" in str(outsider.value)
    assert "(environments.prod.approvers in infra/environments.yaml)" in str(outsider.value)
    with pytest.raises(ApprovalError, match=r"alice created this release \(tagger alice <alice@example.com>\) and "
                                            r"cannot approve it: no self-approval"):  # fmt: skip
        _decide(settings, instance, "alice")
    decided = _decide(settings, instance, "bob")
    assert decided.approved and decided.by == "bob"
    policy = load_policies(settings.infra_dir)["prod"]
    assert approval_refusal(instance, policy, "v1.0.0", decided.commit) is None


def test_two_approvals_are_needed_where_the_policy_says_so(env, repo, settings_infra):
    settings, instance = env
    _policy(settings_infra, "prod", approvals_required=2)
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")  # lightweight: its creator is the commit's committer, who is no approver
    apply(instance, tick(settings, instance, "version_tag_sensor", baseline.cursor))
    verified_in_dev(instance, repo.git("rev-parse", "HEAD"))
    policy = load_policies(settings.infra_dir)["prod"]
    decided = _decide(settings, instance, "bob")
    short = approval_refusal(instance, policy, "v1.0.0", decided.commit)
    assert short and "has 1 of the 2 approvals prod requires (bob); 1 more needed from alice, carol" in short
    first = tick(settings, instance, "approved_release_sensor", None)
    assert first.run_requests == [] and first.logged("not launched yet: prod|v1.0.0 has 1 of the 2 approvals")
    _decide(settings, instance, "bob")  # the same person twice is still one approval
    assert approval_refusal(instance, policy, "v1.0.0", decided.commit) is not None
    _decide(settings, instance, "carol")
    assert approval_refusal(instance, policy, "v1.0.0", decided.commit) is None
    second = tick(settings, instance, "approved_release_sensor", first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["prod|v1.0.0"]


def test_a_partial_approval_says_how_many_more_wherever_it_is_read(env, repo, settings_infra, capsys):
    """With two approvals required, one approval leaves the release waiting: `approve` must not promise a launch,
    `approvals --pending` still lists it with who approved and who may still, and `deploy` says how many more."""
    _, instance = env
    me = pwd.getpwuid(os.geteuid()).pw_name
    _policy(settings_infra, "prod", approvals_required=2, approvers={me: f"{me}@example.org", **APPROVERS})
    _tag_as(repo, "v1.0.0", "alice@example.com")
    verified_in_dev(instance, repo.git("rev-parse", "HEAD"))
    assert main(["deploy", "prod", "v1.0.0"]) == 2
    unasked = "is held for approval: prod requires approval and prod|v1.0.0 has not been approved"
    assert unasked in capsys.readouterr().err
    assert main(["approve", "prod", "v1.0.0"]) == 0
    out = capsys.readouterr().out
    partly = f"prod|v1.0.0 has 1 of the 2 approvals prod requires ({me}); 1 more needed from alice, bob, carol"
    assert f"not deployable yet: {partly}" in out and "approved_release_sensor" not in out, out
    assert main(["approvals", "--pending"]) == 0
    listed = capsys.readouterr().out
    assert "nothing waits" not in listed and f"pending   {partly}: coderemote-pipeline approve prod v1.0.0" in listed
    assert main(["deploy", "prod", "v1.0.0"]) == 2
    assert f"is held for approval: {partly}. Approve it with" in capsys.readouterr().err


def test_an_approval_of_a_release_the_gate_holds_promises_no_deploy(env, repo, settings_infra, capsys):
    """Approved, but never verified in dev: `approve` said "deploy it with ..." and that deploy was refused."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    _policy(settings_infra, "prod", approvers={me: f"{me}@example.org", **APPROVERS})
    _tag_as(repo, "v1.0.0", "alice@example.com")
    assert main(["approve", "prod", "v1.0.0"]) == 0
    out = capsys.readouterr().out
    commit = repo.git("rev-parse", "HEAD")[:12]
    assert f"not deployable yet: prod is held: commit {commit} has not passed smoke in dev. Deploy it to dev" in out
    assert "deploy it with" not in out and "approved_release_sensor" not in out, out

    # Held with the gate overridden (`deploy --force --reason`): its deploy carries the override, so it is no wait.
    _tag_as(repo, "v1.0.1", "alice@example.com")
    assert main(["deploy", "prod", "v1.0.1", "--force", "--reason", "hotfix, verified by hand"]) == 2
    capsys.readouterr()
    assert main(["approve", "prod", "v1.0.1"]) == 0
    out = capsys.readouterr().out
    assert "not deployable yet" not in out and "approved_release_sensor launches the held deploy" in out, out


def test_from_a_terminal_the_approver_is_the_account_not_a_typed_name(env, repo, capsys):
    _tag_as(repo, "v1.0.0", "alice@example.com")
    assert main(["approve", "prod", "v1.0.0", "--by", "bob"]) == 2
    err = capsys.readouterr().err
    assert "prod's approvers decide as the account they run this command as" in err and err.count("\n") == 1


def _keys(tmp_path) -> dict[str, str]:
    for name in ("allowed", "stranger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
                       check=True)  # fmt: skip
    return {name: str(tmp_path / name) for name in ("allowed", "stranger")}


def _signed_prod(settings_infra, tmp_path) -> dict[str, str]:
    """prod requires tags signed by the key `allowed` (alice's); the keys made for the test."""
    keys = _keys(tmp_path)
    public = (tmp_path / "allowed.pub").read_text().strip()
    (settings_infra / "allowed_signers").write_text(f'alice@example.com namespaces="git" {public}\n')
    # No approval here, so that what the signature lets through is a deploy (prod's other gates stay on).
    _policy(settings_infra, "prod", approvers=None, approvals_required=None, approval_expires=None, approval="none",
            require_signed_tags=True, allowed_signers="allowed_signers")  # fmt: skip
    return keys


def test_signed_tags_required_only_an_allowed_signature_deploys(env, repo, settings_infra, tmp_path):
    settings, instance = env
    keys = _signed_prod(settings_infra, tmp_path)
    baseline = tick(settings, instance, "version_tag_sensor", None)
    verified_in_dev(instance, repo.push("a release"))
    _tag_as(repo, "v1.0.0", "alice@example.com")  # annotated, unsigned
    ssh = ["-c", "gpg.format=ssh"]
    repo.git(*ssh, "-c", f"user.signingkey={keys['stranger']}", "tag", "-s", "-m", "v1.0.1", "v1.0.1")
    repo.git(*ssh, "-c", f"user.signingkey={keys['allowed']}", "tag", "-s", "-m", "v1.0.2", "v1.0.2")
    repo.git("push", "--quiet", "origin", "--tags")
    seen = tick(settings, instance, "version_tag_sensor", baseline.cursor)
    assert seen.logged("skipped v1.0.0 for prod: tag v1.0.0 may not deploy: it is not signed")
    assert seen.logged("skipped v1.0.1 for prod: tag v1.0.1 may not deploy: its signing key is not one of the "
                       "allowed signers; allowed signers: allowed_signers in infra/")  # fmt: skip
    assert [r.partition_key for r in seen.run_requests] == ["prod|v1.0.2"]  # signed by an allowed key: deploys
    with pytest.raises(DeployRefused, match=r"prod\|v1.0.1: tag v1.0.1 may not deploy: its signing key"):
        run_deployment("prod", "v1.0.1", settings=settings, instance=instance, echo=lambda _: None)
    # Fixed as the refusal says: deleted, then tagged again with an allowed signature at the same commit.
    repo.git("push", "--quiet", "origin", ":refs/tags/v1.0.0")
    deleted = tick(settings, instance, "version_tag_sensor", seen.cursor)
    repo.git(*ssh, "-c", f"user.signingkey={keys['allowed']}", "tag", "-f", "-s", "-m", "v1.0.0", "v1.0.0")
    repo.git("push", "--quiet", "origin", "v1.0.0")
    fixed = tick(settings, instance, "version_tag_sensor", deleted.cursor)
    assert [r.partition_key for r in fixed.run_requests] == ["prod|v1.0.0"]


def test_a_late_tag_is_not_held_back_by_a_newer_tag_refused_for_its_signature(env, repo, settings_infra, tmp_path):
    """A signed v1.1.0 pushed before main had its commit waits off main; main then gets it, and an unsigned v1.2.0
    lands in the same tick. v1.2.0 is refused everywhere (its signature): it is no release to keep v1.1.0 from
    going out."""
    settings, instance = env
    keys = _signed_prod(settings_infra, tmp_path)
    baseline = tick(settings, instance, "version_tag_sensor", None)
    verified_in_dev(instance, repo.commit("the release"))
    ssh = ["-c", "gpg.format=ssh"]
    repo.git(*ssh, "-c", f"user.signingkey={keys['allowed']}", "tag", "-s", "-m", "v1.1.0", "v1.1.0")
    repo.git("push", "--quiet", "origin", "v1.1.0")
    off = tick(settings, instance, "version_tag_sensor", baseline.cursor)
    assert off.run_requests == [] and set(off.cursor_json["off_main"]) == {"v1.1.0"}
    repo.push("the next change")  # main now has v1.1.0's commit
    _tag_as(repo, "v1.2.0", "alice@example.com")  # annotated, unsigned
    both = tick(settings, instance, "version_tag_sensor", off.cursor)
    assert both.logged("skipped v1.2.0 for prod: tag v1.2.0 may not deploy: it is not signed")
    assert [r.partition_key for r in both.run_requests] == ["prod|v1.1.0"], both.logs
    assert not both.logged("reached main after") and "off_main" not in both.cursor_json


def _window_around_now(hours: int = 2) -> dict:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=hours)
    return {"timezone": "UTC", "deny": [{"from": start.strftime("%a %H:%M"), "to": end.strftime("%a %H:%M"),
                                         "reason": "release freeze"}]}  # fmt: skip


def test_a_deny_window_holds_the_sensor_refuses_deploy_and_force_is_recorded(env, repo, settings_infra):
    settings, instance = env
    _policy(settings_infra, "dev", deploy_windows=_window_around_now())
    baseline = tick(settings, instance, "main_push_sensor", None)
    head = repo.push("pushed during the freeze")
    held = tick(settings, instance, "main_push_sensor", baseline.cursor)
    assert held.run_requests == [] and held.logged("dev takes no deploys now (release freeze); the window ends ")
    assert held.cursor_json.get("main") != head  # still new: the next tick decides it again
    with pytest.raises(DeployRefused, match=r"dev takes no deploys now \(release freeze\); the window ends .* UTC\. "
                                            r"Deploy it then .*or now with --force --reason TEXT"):  # fmt: skip
        run_deployment("dev", "main", settings=settings, instance=instance, echo=lambda _: None)
    from coderemote_pipeline.rules.deployment import Deployment
    from coderemote_pipeline.usecases.deploy import app_source, check_deployable

    deploy = Deployment.of("dev", f"main-{head[:7]}", load_policies(settings.infra_dir), head)
    forced = Override("hotfix during the freeze", "alice")
    check_signed_and_open(app_source(settings), deploy, forced)  # the override passes the window
    assert check_deployable(instance, deploy, forced) == forced.tags()  # and rides on the run, shown in history

    _policy(settings_infra, "dev", deploy_windows=None)  # the window ended
    released = tick(settings, instance, "main_push_sensor", held.cursor)
    assert [r.partition_key for r in released.run_requests] == [f"dev|main-{head[:7]}"]


def test_an_approval_that_lapses_during_a_deny_window_is_asked_again_once_it_ends(env, repo, settings_infra,
                                                                                  monkeypatch):
    """While a window holds an approved release, nothing launches either way: its approval is not re-read each tick
    (nor its lapse said each tick); once the window ends, a lapsed approval holds it for a new one."""
    from coderemote_pipeline.ledger import approvals

    settings, instance = env
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    apply(instance, tick(settings, instance, "version_tag_sensor", baseline.cursor))
    verified_in_dev(instance, repo.git("rev-parse", "HEAD"))
    _decide(settings, instance, "bob")
    _policy(settings_infra, "prod", deploy_windows=_window_around_now())
    first = tick(settings, instance, "approved_release_sensor", None)
    assert first.run_requests == [] and first.logged("prod takes no deploys now (release freeze)")
    days_later = approvals.time.time() + 73 * 3600  # prod's approvals last 72h
    monkeypatch.setattr(approvals, "time", type("Clock", (), {"time": staticmethod(lambda: days_later)}))
    asked = []
    monkeypatch.setattr(approved_release, "approval_refusal", lambda *a: asked.append(a) or approval_refusal(*a))
    held = tick(settings, instance, "approved_release_sensor", first.cursor)
    assert held.run_requests == [] and held.cursor_json["waiting"][0]["release"] == "v1.0.0"
    assert not held.logged("no longer stands") and asked == []
    _policy(settings_infra, "prod", deploy_windows=None)  # the window ended
    ended = tick(settings, instance, "approved_release_sensor", held.cursor)
    assert ended.run_requests == [] and ended.cursor_json["waiting"] == []
    assert ended.logged("prod|v1.0.0: the approval by bob no longer stands, so it is held again")


def test_a_tag_pushed_during_prod_s_deny_window_is_held_for_approval_once_it_ends(env, repo, settings_infra):
    settings, instance = env
    _policy(settings_infra, "prod", deploy_windows=_window_around_now())
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    held = tick(settings, instance, "version_tag_sensor", baseline.cursor)
    assert held.run_requests == [] and held.events == [] and held.logged("prod takes no deploys now (release freeze)")
    assert held.cursor_json["waiting"] == {"v1.0.0": ["prod"]} and "v1.0.0" in held.cursor_json["tags"]
    apply(instance, held)
    _policy(settings_infra, "prod", deploy_windows=None)  # the window ended
    ended = tick(settings, instance, "version_tag_sensor", held.cursor)
    (hold,) = ended.events  # prod requires approval: held for it now, once
    assert hold.partition == "prod|v1.0.0" and hold.metadata["status"].value == "pending"
    assert "waiting" not in ended.cursor_json
    assert tick(settings, instance, "version_tag_sensor", ended.cursor).events == []


def test_a_deny_window_holds_a_promotion_too(env, repo, settings_infra):
    """Promotion deploys to its target env: that env's deny window refuses it as it refuses a deploy (it used to
    promote into a freeze)."""
    settings, instance = env
    _policy(settings_infra, "staging", deploy_windows=_window_around_now())
    head = repo.git("rev-parse", "HEAD")
    record_live(instance, "dev", LiveRecord(f"main-{head[:7]}", head, 2, "sha256:x", f"main-{head[:7]}", "deployed",
                                            "run", 0.0, {}))  # fmt: skip
    with pytest.raises(DeployRefused, match=r"staging takes no deploys now \(release freeze\); the window ends .* "
                                            r"UTC\. Deploy it then .*or now with --force --reason TEXT"):  # fmt: skip
        promote("dev", "staging", settings=settings, instance=instance, echo=lambda _: None)
    assert instance.get_runs() == []


def test_the_approval_view_lists_what_the_release_changes_since_the_live_one(env, repo, capsys):
    from ledger_kit import record_live

    settings, instance = env
    live = repo.git("rev-parse", "HEAD")
    record_live(instance, "prod", "v0.9.0", live)
    (repo.clone / "backend" / "app.py").write_text("print('new endpoint')\n")
    repo.git("add", "-A")
    repo.push("add the new endpoint")
    repo.push("fix a typo in the README")
    baseline = tick(settings, instance, "version_tag_sensor", None)
    repo.tag("v1.0.0")
    held = tick(settings, instance, "version_tag_sensor", baseline.cursor)
    apply(instance, held)
    (hold,) = [e for e in held.events if e.metadata["status"].value == "pending"]
    notes = hold.metadata["release_notes"].value
    assert "**2 commit(s) since v0.9.0**" in notes and "add the new endpoint — Code Remote Demo" in notes
    assert "**backend** (1 files): `backend/app.py`" in notes
    assert main(["approvals", "--pending"]) == 0
    out = capsys.readouterr().out
    assert "2 commit(s) since v0.9.0" in out and "fix a typo in the README (Code Remote Demo)" in out
    assert "files changed: backend 1" in out and "promotion gate: prod is held: commit" in out
    assert "  infra: preview unavailable (" in out  # no local stack here: the notes say so and go on
