"""Progressive delivery on the real local stack: haproxy splits the API's requests between one container per
version by the weights the shift sets, the shift judges the new version on what haproxy logged of its requests, and
varnish serves the site from the live-release pointer.

Staging takes the canary here (a policy of this module's own, with steps of seconds, not minutes); dev deploys all at
once. The tests run in file order on the session's stack, each leaving staging whole.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from app_bugs import smoke_fails

from coderemote_pipeline.actions import lambda_versions as lv
from coderemote_pipeline.actions import shift
from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.ledger.live import env_outputs, recorded_live
from coderemote_pipeline.resources.targets import local_resources, target_for
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.rollback import rollback
from testkit.receiver import Receiver
from testkit.traffic import (
    HELLO,
    InThread,
    Load,
    get,
    policy_copy,
    release_of,
    set_delivery,
    set_policy,
    wait_for_step,
)

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent
QUIET = {"echo": lambda _: None}
ENV = "staging"
ANALYSIS = {"max_error_rate": 0.05, "max_p99_ms": 2000, "min_requests": 5, "every": "2s"}
CANARY = {"strategy": "canary", "percent": 10, "interval": "8s", "bake": "3s", "analysis": ANALYSIS}


@pytest.fixture(scope="module")
def hooks():
    """Two webhooks staging notifies: one that records, one that always answers 500 (it must never matter)."""
    with Receiver() as good, Receiver(status=500) as bad:
        yield good, bad


@pytest.fixture(scope="module")
def canary(tmp_path_factory, settings, instance, hooks):
    """(settings with staging on a canary, clone) with this app's first release live in staging, taken all at once
    (whatever an earlier test module left in staging on this stack)."""
    root = tmp_path_factory.mktemp("progressive")
    make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
    infra = policy_copy(settings.infra_dir, root / "infra", ENV, {"strategy": "all_at_once"})
    set_policy(infra, ENV, notify=[{"webhook": {"url": hook.url + "/hook"}} for hook in hooks])
    mine = Settings("local", settings.state_dir, str(root / "app.git"), None, infra_dir=infra)
    first = run_deployment(ENV, "main", settings=mine, instance=instance, **QUIET)
    assert first.success, first.failure
    set_delivery(infra, ENV, CANARY)
    return mine, root / "clone"


def _change(clone: Path, what: str) -> str:
    (clone / "backend" / "app" / "progressive.txt").write_text(f"{what} {time.time()}\n")
    (clone / "frontend" / "src" / "progressive.css").write_text(f"/* {what} {time.time()} */\n")
    return commit_and_push(clone, what)


def _target(settings, instance):
    return target_for(local_resources(settings))(ENV, env_outputs(instance, ENV))


def _edge_weights(settings, instance) -> dict[str, int]:
    current = _target(settings, instance).runtime.current(ENV) or {}
    pairs = (p.split(":") for p in current.get("weights", "").split(",") if p)
    return {version: int(weight) for version, weight in pairs}


def test_a_canary_splits_the_traffic_bakes_and_the_live_record_says_so(canary, instance, hooks):
    settings, clone = canary
    before = recorded_live(instance, ENV)
    api = env_outputs(instance, ENV)["api_url"]
    commit = _change(clone, "a clean canary")
    started = time.time()
    with Load(api + HELLO, rate=20) as load:
        run = InThread(lambda: run_deployment(ENV, "main", settings=settings, instance=instance, **QUIET))
        state = wait_for_step(instance, ENV, 10, since=started)
        assert lv.alias_weights(_target(settings, instance).lam, env_outputs(instance, ENV)) == {
            state.previous_version: 90, state.version: 10}  # fmt: skip
        # 1,000 requests through the proxy while the canary holds 10 %: the new version's share is ~10 %.
        answers = [release_of(get(api + HELLO)[1]) for _ in range(1000)]
        outcome = run.result()
    assert outcome.success, outcome.failure
    share = answers.count(outcome.release) / len(answers)
    assert abs(share - 0.10) <= 0.03, f"new version's share {share:.3f}"
    assert set(answers) == {before.release, outcome.release}
    # Under a steady 20 requests a second, not one failed: the new container was up before it took any.
    assert load.failures == [] and load.requests > 100
    assert load.releases[outcome.release] > 0 and outcome.commit == commit

    shift = outcome.stages["traffic_shift"]
    assert shift["strategy"] == "canary 10% for 8 s, then bake 3 s"
    rows = shift["steps"]
    assert rows and all(r["new_weight"] == 10 and r["previous_weight"] == 90 for r in rows)
    assert rows[-1]["requests"] >= ANALYSIS["min_requests"] and rows[-1]["verdict"].startswith("pass")
    assert outcome.stages["smoke_result"]["bake_outcome"] == "passed"
    live = recorded_live(instance, ENV)
    assert live.release == outcome.release
    assert live.delivery.startswith("canary 10% for 8 s, then bake 3 s: baked 3 s on live traffic, passed")
    assert _edge_weights(settings, instance) == {state.version: 100}
    good, bad = hooks
    assert good.events(outcome.release) == ["started", "live"]  # and the receiver answering 500 changed nothing
    assert len(bad.posts) >= 2 * 3  # each of its notices tried three times


def test_a_release_that_fails_requests_goes_back_to_weight_zero_by_itself(canary, instance, hooks):
    settings, clone = canary
    before = recorded_live(instance, ENV)
    api_py = clone / "backend" / "app" / "api.py"
    good = api_py.read_text()
    # Every other /api/hello answers 500 once deployed; the health check passes, and so do the app's checks (CI).
    hello = 'HELLO_PATH = "/api/hello"\n'
    bug = good.replace(hello, hello + "_FAILS = iter(range(10**9))\n").replace(
        "    elif path == HELLO_PATH:\n",
        '    elif path == HELLO_PATH and not os.environ.get("CI") and next(_FAILS) % 2:\n'
        '        return _json(500, {"error": "injected"})\n'
        "    elif path == HELLO_PATH:\n")  # fmt: skip
    assert bug.count("_FAILS") == 2 and "\nimport os\n" in good
    api_py.write_text(bug)
    commit_and_push(clone, "a release that fails half its requests")
    api_py.write_text(good)
    set_delivery(settings.infra_dir, ENV, {**CANARY, "interval": "30s"})
    with Load(env_outputs(instance, ENV)["api_url"] + HELLO, rate=40) as load:
        failed = run_deployment(ENV, "main", settings=settings, instance=instance, **QUIET)
        after = [release_of(get(env_outputs(instance, ENV)["api_url"] + HELLO)[1]) for _ in range(50)]
    set_delivery(settings.infra_dir, ENV, CANARY)
    assert not failed.success
    assert "error rate" in failed.failure and "> threshold 5.0%" in failed.failure, failed.failure
    assert "weight is back to 0" in failed.failure and f"serves {before.release}" in failed.failure
    assert load.first_error_at is not None
    assert set(after) == {before.release}
    halted = shifts.read_state(instance, ENV)
    assert halted.phase == "rolled_back" and halted.new_weight == 0
    assert _edge_weights(settings, instance) == {str(before.version): 100}
    live = recorded_live(instance, ENV)
    assert live.release == before.release and live.automatic and "error rate" in live.reason
    assert next(d for d in deploys(instance, ENV) if d.run_id == failed.run_id).rolled_back
    assert hooks[0].events(failed.release) == ["started", "automatic_rollback", "failed"]


def test_a_killed_shift_leaves_a_known_weight_and_the_next_run_resumes_it(canary, instance, monkeypatch, tmp_path):
    settings, clone = canary
    before = recorded_live(instance, ENV)
    set_delivery(settings.infra_dir, ENV, {**CANARY, "interval": "10m"})
    commit = _change(clone, "a canary whose worker dies")
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "CODEREMOTE_STATE_DIR": str(settings.state_dir),
           "CODEREMOTE_APP_REMOTE": settings.app_remote, "CODEREMOTE_INFRA_DIR": str(settings.infra_dir),
           "CODEREMOTE_WARM": "0"}  # fmt: skip  # the SIGKILL below must reach the run's own process
    started = time.time()
    with open(tmp_path / "deploy.log", "wb") as log:
        cli = subprocess.Popen([str(BIN / "coderemote-pipeline"), "deploy", ENV, "main", "--executor", "serial"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        state = wait_for_step(instance, ENV, 10, since=started)
    finally:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(timeout=30)
    # What the record says is what the alias and the proxy hold: 10 % on the new version, not "unknown".
    target = _target(settings, instance)
    assert lv.alias_weights(target.lam, target.outputs) == {str(before.version): 90, state.version: 10}
    assert _edge_weights(settings, instance) == {str(before.version): 90, state.version: 10}
    shown = subprocess.run([str(BIN / "coderemote-pipeline"), "traffic", ENV], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"version {state.version} ({state.release}): 10%" in shown.stdout and "step" in shown.stdout
    # Not "in flight": its run was killed, and nothing has marked it yet (no daemon here).
    assert f"(run {state.run_id[:8]}, gone): interrupted at step 1" in shown.stdout, shown.stdout

    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "3")
    set_delivery(settings.infra_dir, ENV, CANARY)
    with Load(target.outputs["api_url"] + HELLO, rate=20) as load:
        resumed = run_deployment(ENV, "main", settings=settings, instance=instance, **QUIET)
    assert resumed.success, resumed.failure
    assert resumed.commit == commit and recorded_live(instance, ENV).release == resumed.release
    assert load.failures == []
    assert _edge_weights(settings, instance) == {state.version: 100}


def test_the_site_edge_is_stale_until_invalidated_and_a_rollback_copies_nothing(canary, instance):
    settings, _ = canary
    target = _target(settings, instance)
    site, bucket = target.outputs["frontend_url"], target.outputs["frontend_bucket"]
    live = recorded_live(instance, ENV)
    assert json.loads(get(site + "/config.json")[1])["release"] == live.release
    get(site + "/index.html")  # cached at the edge now
    key = f"_releases/{live.frontend_release}/index.html"
    original = target.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    target.s3.put_object(Bucket=bucket, Key=key, Body=original + b"<!-- changed at the origin -->",
                         ContentType="text/html", **({"ACL": target.acl} if target.acl else {}))  # fmt: skip
    assert get(site + "/index.html")[1] == original  # stale: the edge still has its copy
    target.site.forget(ENV, ["/index.html"])
    assert get(site + "/index.html")[1].endswith(b"<!-- changed at the origin -->")  # fresh after the invalidation
    target.s3.put_object(Bucket=bucket, Key=key, Body=original, ContentType="text/html",
                         **({"ACL": target.acl} if target.acl else {}))  # fmt: skip
    target.site.forget(ENV, ["/index.html"])

    objects = _objects(target.s3, bucket)
    with Load(target.outputs["api_url"] + HELLO, rate=20) as load:
        back = rollback(ENV, None, settings=settings, instance=instance, **QUIET)
    assert back.success, back.failure
    assert load.failures == []  # all at once, and still not one failed request
    assert json.loads(get(site + "/config.json")[1])["release"] == back.release != live.release
    changed = {k for k, stamp in _objects(target.s3, bucket).items() if objects.get(k) != stamp}
    assert changed == {"_edge/LIVE"}, changed  # one pointer written; no object copied, none rewritten


def _objects(s3, bucket: str) -> dict[str, object]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: (o["LastModified"], o["ETag"]) for page in pages for o in page.get("Contents", [])}


def test_a_person_promotes_a_shift_from_the_ui_job_and_the_cli_refuses_when_none_is_in_flight(canary, instance):
    from coderemote_pipeline.assets.traffic_control import traffic_control_job

    settings, clone = canary
    set_delivery(settings.infra_dir, ENV, {**CANARY, "interval": "10m", "bake": "0s"})
    _change(clone, "a canary promoted by hand")
    started = time.time()
    with Load(env_outputs(instance, ENV)["api_url"] + HELLO, rate=20):
        run = InThread(lambda: run_deployment(ENV, "main", settings=settings, instance=instance, **QUIET))
        wait_for_step(instance, ENV, 10, since=started)
        config = {"ops": {"ask_shift": {"config": {"env": ENV, "action": "promote", "by": "alice", "reason": "ok"}}}}
        assert traffic_control_job.execute_in_process(run_config=config, instance=instance).success
        outcome = run.result()
    set_delivery(settings.infra_dir, ENV, CANARY)
    assert outcome.success, outcome.failure
    assert outcome.stages["traffic_shift"]["steps"][-1]["verdict"] == "promoted by alice: ok"
    assert recorded_live(instance, ENV).release == outcome.release
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "CODEREMOTE_STATE_DIR": str(settings.state_dir)}
    refused = subprocess.run([str(BIN / "coderemote-pipeline"), "traffic", ENV, "--abort"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr == (f"error: no traffic shift is in flight in {ENV}: nothing to abort "
                              f"(see `coderemote-pipeline traffic {ENV}`)\n")  # fmt: skip


def test_a_halt_whose_weigh_back_fails_is_not_retried_past_the_halt(canary, instance, monkeypatch):
    """A canary halted, then taking its weight back to 0 failed once (the emulator hiccuped). That error replaced the
    halt, the stage's retry found the alias at 10 % and resumed the canary past its halt (or a person's abort)."""
    settings, clone = canary
    before = recorded_live(instance, ENV)
    # No load: a step nobody can judge halts at its end, as a breach or an abort would.
    set_delivery(settings.infra_dir, ENV, {**CANARY, "interval": "3s", "analysis": {**ANALYSIS, "min_requests": 999}})
    _change(clone, "a canary whose weigh-back hiccups")
    real, hiccups = shift.weigh, []

    def weigh(target, primary, extra=None):
        if not extra and not hiccups:  # the weigh-back, once
            hiccups.append(primary)
            raise ConnectionError("the emulator is restarting")
        return real(target, primary, extra)

    monkeypatch.setattr(shift, "weigh", weigh)
    try:
        failed = run_deployment(ENV, "main", settings=settings, instance=instance, executor="serial", **QUIET)
    finally:
        monkeypatch.undo()
        set_delivery(settings.infra_dir, ENV, CANARY)
    assert not failed.success and hiccups == [str(before.version)]
    assert "step at 10% ended with" in failed.failure, failed.failure
    assert "weight back to 0 failed too (the emulator is restarting)" in failed.failure
    starts = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.STEP_START)
    assert [e.step_key for e in starts].count("traffic_shift") == 1  # not retried
    # The run's settle found staging split and put it back whole.
    assert f"rolled back automatically: {ENV} serves {before.release} again" in failed.failure
    assert _edge_weights(settings, instance) == {str(before.version): 100}
    assert recorded_live(instance, ENV).release == before.release


def test_a_release_users_already_have_unjudged_still_bakes_and_invalidates(canary, instance, monkeypatch):
    """Staging kept a release whose smoke failed (auto_rollback off), as it keeps one whose run was killed after the
    switch. Deployed again, the switch found the alias on it already: "all at once", no bake, and no changed paths
    for the CDN to forget, so CloudFront kept the recorded release's index.html and config.json."""
    settings, clone = canary
    before = recorded_live(instance, ENV)
    _change(clone, "smoke fails once, staging keeps it")
    smoke_fails(monkeypatch)
    with Load(env_outputs(instance, ENV)["api_url"] + HELLO, rate=20):
        failed = run_deployment(ENV, "main", settings=settings, instance=instance, executor="serial", **QUIET)
        monkeypatch.undo()
        assert not failed.success and f"auto_rollback is off for {ENV}" in failed.failure, failed.failure
        assert recorded_live(instance, ENV).release == before.release
        again = run_deployment(ENV, "main", settings=settings, instance=instance, **QUIET)
    assert again.success, again.failure
    shifted = again.stages["traffic_shift"]
    assert shifted["strategy"] == "all at once, then bake 3 s" and not shifted["steps"]
    assert shifted["previous_release"] == before.release and shifted["previous_version"] == before.version
    assert "config.json" in shifted["changed_paths"]
    assert again.stages["cloudfront_invalidation"]["paths"] and again.stages["smoke_result"]["bake_outcome"] == "passed"
    assert recorded_live(instance, ENV).delivery.startswith("all at once, then bake 3 s: baked 3 s on live traffic")
