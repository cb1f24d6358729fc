"""Faults in the middle of deploys, on a local stack of this module's own (its parts are stopped on purpose).

Each test breaks one part while a deploy of a new commit to dev runs, then asserts what the run says about the
environment, that the environment is exactly that, and that re-running (re-executing from failure, or a new deploy
where the emulator lost its memory) finishes the job: in the end the alias's release, the API's health and the
site's config.json name one and the same release. The tests run in file order on one stack; each leaves dev whole.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import boto3
import botocore.exceptions
import dagster as dg
import pytest
from app_bugs import plant, smoke_fails
from team_kit import app_repo

from coderemote_pipeline.actions import cdn, restore, switch
from coderemote_pipeline.actions import site_store as frontend_store
from coderemote_pipeline.actions.target_state import drift, read_target, split_parts
from coderemote_pipeline.assets import cloudfront_invalidation
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.ledger.lease_slot import STEP
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.live import env_outputs, recorded_live
from coderemote_pipeline.local_stack import LocalStack, load_stack_info, site_edge
from coderemote_pipeline.local_stack.dockerd import engine_paths, stop_dockerd
from coderemote_pipeline.local_stack.processes import stop_pid
from coderemote_pipeline.resources.image_registry import LocalRegistry
from coderemote_pipeline.resources.targets import local_resources, target_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import commit_and_push
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.retry import retry_from_failure
from coderemote_pipeline.usecases.rollback import rollback
from testkit.traffic import set_policy

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent
QUIET = {"echo": lambda _: None}


class Faults:
    def __init__(self, root: Path):
        self.stack = LocalStack(root / "state")
        self.stack.up()
        remote, self.clone, _ = app_repo(root / "app", "faults")
        self.settings = Settings("local", root / "state", str(remote), None)
        self.home = root / "home"
        self.home.mkdir()
        prepare_home(self.home)
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.verified: list[str] = []  # commits whose dev deploy passed smoke, oldest first

    def change(self, what: str) -> str:
        (self.clone / "backend" / "app" / "fault.txt").write_text(f"{what} {time.time()}\n")
        (self.clone / "frontend" / "src" / "fault.css").write_text(f"/* {what} {time.time()} */\n")
        return commit_and_push(self.clone, what)

    def auto_rollback(self, tmp_path: Path) -> Settings:
        """These settings with a policy of their own where dev rolls back automatically, as prod does."""
        infra = tmp_path / "infra"
        shutil.copytree(self.settings.infra_dir, infra, ignore=shutil.ignore_patterns("__pycache__"))
        set_policy(infra, "dev", auto_rollback=True)
        return replace(self.settings, infra_dir=infra)

    def deploy(self, env: str = "dev", ref: str = "main", **kwargs):
        # redeploy_job (in-process): the faults below are injected into this very process.
        outcome = run_deployment(env, ref, settings=self.settings, instance=self.instance, executor="serial",
                                 **QUIET, **kwargs)  # fmt: skip
        if outcome.success and env == "dev":
            self.verified.append(outcome.commit)
        return outcome

    def live(self, env: str = "dev") -> dict[str, str | None]:
        """What each part of the env serves: the alias's release, the API's health, the site's config.json."""
        outputs = env_outputs(self.instance, env)
        resources = local_resources(self.settings)
        target = target_for(resources)(env, outputs)
        return {
            "alias": switch.serving(target).release,
            "api": _get_json(outputs["api_url"] + "/health").get("release"),
            "site": _get_json(outputs["frontend_url"] + "/config.json").get("release"),
        }

    def assert_whole(self, release: str, env: str = "dev") -> None:
        assert self.live(env) == {"alias": release, "api": release, "site": release}


def _get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return {}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    ctx = Faults(tmp_path_factory.mktemp("faults"))
    try:
        first = ctx.deploy()
        assert first.success, first.failure
        yield ctx
    finally:
        ctx.instance.dispose()
        ctx.stack.down()


def test_api_container_failing_its_health_check(faults):
    server = faults.clone / "backend" / "app" / "server.py"
    good = plant(server, 'raise SystemExit("boom: the API cannot start")')
    before = faults.live()["alias"]
    bad = faults.deploy(ref=faults.change("an API that cannot start"))
    # The new API never takes traffic: the switch puts the alias back, and the site never switched.
    assert not bad.success and bad.failure.startswith(f"traffic_shift: the switch of dev|{bad.release} failed")
    assert f"dev is back on {before}" in bad.failure and "is not healthy" in bad.failure
    assert f"dev serves {before} " in bad.failure and "as one whole release" in bad.failure
    faults.assert_whole(before)
    server.write_text(good)
    fixed = faults.deploy(ref=faults.change("the fix"))
    assert fixed.success, fixed.failure
    faults.assert_whole(fixed.release)


def test_registry_stopped_during_the_push(faults, monkeypatch):
    before = faults.live()["alias"]
    commit = faults.change("pushed while the registry dies")
    push = LocalRegistry.push

    def push_after_stopping_the_registry(self, *args, **kwargs):
        stop_pid(load_stack_info(faults.settings.state_dir).registry_pid, expect="docker-registry")
        return push(self, *args, **kwargs)

    monkeypatch.setattr(LocalRegistry, "push", push_after_stopping_the_registry)
    try:
        failed = faults.deploy(ref=commit)
        assert not failed.success and failed.failure.startswith("api_image: push of ")
        assert "the image registry at" in failed.failure and "is not answering" in failed.failure
        assert "(still failing after 3 tries)" in failed.failure  # retried as transient, then failed
        # The frontend branch finished its snapshot, but nothing switched: dev is wholly on its previous release.
        assert f"dev serves {before} " in failed.failure and "as one whole release" in failed.failure
        faults.assert_whole(before)
    finally:
        monkeypatch.undo()
        faults.stack.up()  # the registry restarts on its port, its storage intact
    retried = retry_from_failure(failed.run_id, settings=faults.settings, instance=faults.instance, echo=print)
    assert retried.success, retried.failure
    # Only what had not succeeded (the frontend's snapshot had): the image, then the switch and what follows it.
    assert set(retried.stages) >= {"api_image", "lambda_version", "traffic_shift", "smoke_result"}
    assert "frontend_bundle" not in retried.stages
    faults.verified.append(commit)
    faults.assert_whole(failed.release)


def test_docker_engine_unreachable(faults):
    before = faults.live()["alias"]
    commit = faults.change("built while the engine is away")
    info = load_stack_info(faults.settings.state_dir)
    stop_dockerd(info.dockerd_pid, engine_paths(faults.stack.paths.engine_dir))  # the API container goes too
    try:
        failed = faults.deploy(ref=commit)
        assert not failed.success
        assert failed.failure.startswith("api_image: no Docker engine reachable at unix://")
        assert "(still failing after 3 tries)" in failed.failure
        # What serves the API cannot be read without the engine; the run says so rather than guess.
        assert "what dev serves cannot be read now" in failed.failure
        assert faults.live() == {"alias": before, "api": None, "site": before}  # the engine took the API down
    finally:
        faults.stack.up()  # a new engine on the same data: images kept, containers stopped
    retried = retry_from_failure(failed.run_id, settings=faults.settings, instance=faults.instance, echo=print)
    assert retried.success, retried.failure
    assert "frontend_bundle" not in retried.stages and "api_image" in retried.stages
    faults.verified.append(commit)
    faults.assert_whole(failed.release)


def test_a_retry_after_an_automatic_rollback_switches_again(faults, monkeypatch, tmp_path):
    """Smoke failed after the switch (once: a flaky probe) and dev, with auto_rollback on, went back. Re-executing
    only smoke_result tested a release nobody served and failed every time: the retry runs from the switch."""
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("smoke fails once")
    smoke_fails(monkeypatch)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert not failed.success and f"rolled back automatically: dev serves {before} again" in failed.failure
    faults.assert_whole(before)
    lines: list[str] = []
    retried = retry_from_failure(failed.run_id, settings=settings, instance=faults.instance, echo=lines.append)
    assert retried.success, retried.failure
    assert f"from traffic_shift (the failure put dev back on {before}, so the switch runs again)" in lines[0]
    assert {"traffic_shift", "cloudfront_invalidation", "smoke_result"} <= set(retried.stages)
    assert not {"api_image", "lambda_version", "frontend_bundle"} & set(retried.stages)  # nothing rebuilt
    faults.verified.append(commit)
    faults.assert_whole(failed.release)


def test_an_automatic_rollback_retried_after_its_invalidation_failed_still_invalidates(faults, monkeypatch, tmp_path):
    """The restore flipped the site back, then CloudFront answered 503: a retry found nothing left to flip, so it
    invalidated nothing, and CloudFront kept the failed release's index.html and config.json. The restore now tries
    the same invalidation again itself (a retry of the whole step would judge the failed release against the one
    it went back to, and lose why it rolled back)."""
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("smoke fails, then the CDN hiccups")
    real_invalidate, calls = restore.invalidate, []

    def invalidate(cf, distribution, paths, caller_reference, **_):
        calls.append((caller_reference, paths))
        if len(calls) == 1:
            error = {"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}
            raise botocore.exceptions.ClientError(error, "CreateInvalidation")
        return real_invalidate(cf, distribution, paths, caller_reference)

    smoke_fails(monkeypatch)
    monkeypatch.setattr(restore, "invalidate", invalidate)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert not failed.success and f"rolled back automatically: dev serves {before} again" in failed.failure
    faults.assert_whole(before)
    assert len(calls) == 2 and calls[0] == calls[1], calls  # the retry asked for the same invalidation
    assert "/config.json" in calls[1][1] and calls[1][0] == f"restore-{failed.run_id}-{before}"
    target = target_for(local_resources(settings))("dev", env_outputs(faults.instance, "dev"))
    distribution = target.outputs["cloudfront_distribution_id"]
    made = target.cf.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
    batches = [target.cf.get_invalidation(DistributionId=distribution, Id=i["Id"])["Invalidation"]["InvalidationBatch"]
               for i in made]  # fmt: skip
    assert any(b["CallerReference"] == calls[1][0] and "/config.json" in b["Paths"]["Items"] for b in batches)


def _invalidation_times_out(monkeypatch) -> list[list[str]]:
    """Every restore's invalidation waits past its budget (CloudFront still InProgress): the paths it was asked."""
    asked: list[list[str]] = []

    def invalidate(cf, distribution, paths, caller_reference, **_):
        asked.append(paths)
        raise cdn.InvalidationTimeout(f"invalidation I1 of distribution {distribution} is still InProgress after "
                                      "20 min; the files are live in the bucket, edge caches may be stale")  # fmt: skip

    monkeypatch.setattr(restore, "invalidate", invalidate)
    return asked


def _assert_invalidation_hint(failure: str, before: str, asked: list[list[str]], cause: str) -> None:
    """Said as a rollback that worked, with the command that clears the CDN: not "rollback --to", which would find
    the env already whole on `before` and invalidate nothing."""
    assert f"dev serves {before} again" in failure and "FAILED" not in failure and "--to" not in failure, failure
    assert asked and "/config.json" in asked[-1], asked
    assert "but the CDN may still serve cached files of the release it left" in failure
    assert cause in failure
    wait, make = (shlex.split(c) for c in failure.split("Invalidate them: `", 1)[1].split("`", 1)[0].split(" && "))
    # The emulator's endpoint, region and test keys: the command goes neither to AWS nor with the user's own keys.
    at = make.index("--endpoint-url") + 1
    cli = ["env", "-u", "AWS_SESSION_TOKEN", "-u", "AWS_SECURITY_TOKEN", "-u", "AWS_PROFILE",
           "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "aws", "--region", "us-east-1",
           "--endpoint-url", make[at]]  # fmt: skip
    assert make[: at + 1] == cli and make[at].startswith("http://127.0.0.1:"), make
    distribution = make[at + 4]
    assert wait == [*cli, "cloudfront", "wait", "distribution-deployed", "--id", distribution], wait
    assert make[at + 1 : at + 4] == ["cloudfront", "create-invalidation", "--distribution-id"], make
    paths, endpoint = make[make.index("--paths") + 1 :], make[at]
    assert paths == asked[-1]
    # The command, run as the AWS CLI would: the emulator takes that batch for that distribution.
    cf = boto3.client("cloudfront", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")  # fmt: skip
    made = cf.create_invalidation(DistributionId=distribution, InvalidationBatch={
        "Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": f"by-hand-{time.time()}"})
    assert made["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == paths


def test_an_automatic_rollback_whose_invalidation_times_out_says_the_env_is_back_and_how_to_clear_the_cdn(
    faults, monkeypatch, tmp_path
):
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("smoke fails, then the CDN never completes")
    smoke_fails(monkeypatch)
    asked = _invalidation_times_out(monkeypatch)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert not failed.success and "rolled back automatically" in failed.failure
    _assert_invalidation_hint(failed.failure, before, asked, "still InProgress after 20 min")
    assert len(asked) == 1  # a timeout is not retried: the step already waited its whole budget
    assert recorded_live(faults.instance, "dev").release == before
    faults.assert_whole(before)


def test_an_automatic_rollback_whose_cdn_answers_503_every_time_says_so_after_its_retries(
    faults, monkeypatch, tmp_path
):
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("smoke fails, then the CDN is down")
    asked: list[list[str]] = []

    def unavailable(cf, distribution, paths, caller_reference, **_):
        asked.append(paths)
        error = {"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}
        raise botocore.exceptions.ClientError(error, "CreateInvalidation")

    smoke_fails(monkeypatch)
    monkeypatch.setattr(restore, "invalidate", unavailable)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert len(asked) == 3 and asked[0] == asked[2]  # the first try and two more, the same paths
    assert failed.failure.startswith("smoke_result: smoke failed for dev|")  # the cause, not a retry's mismatch
    _assert_invalidation_hint(failed.failure, before, asked, "(ServiceUnavailable) when calling")
    assert recorded_live(faults.instance, "dev").release == before
    faults.assert_whole(before)


def test_an_automatic_rollback_whose_edge_does_not_forget_prints_the_ban_that_clears_it(faults, monkeypatch, tmp_path):
    """Locally users hit varnish, not the emulator's CloudFront: when only varnish's BAN fails, the message says so
    and gives that BAN, not an invalidation in the emulator that would clear nothing users see."""
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("smoke fails, then varnish refuses the ban")

    def refused(port, paths):
        raise ConnectionRefusedError(111, "Connection refused")

    smoke_fails(monkeypatch)
    monkeypatch.setattr(site_edge, "ban_paths", refused)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert f"rolled back automatically: dev serves {before} again" in failed.failure, failed.failure
    assert "path(s) on the site's edge failed: [Errno 111] Connection refused" in failed.failure
    ban = shlex.split(failed.failure.split("Invalidate them: `", 1)[1].split("`", 1)[0])
    port = load_stack_info(settings.state_dir).site_ports["dev"]
    assert ban[:5] == ["curl", "-fsS", "-X", "BAN", "-H"] and ban[-1] == f"http://127.0.0.1:{port}/"
    assert ban[5].startswith("X-Path-Regex: ^(") and "config\\.json" in ban[5], ban
    done = subprocess.run(ban, capture_output=True, text=True, timeout=30)  # the command, run as printed
    assert done.returncode == 0, done.stderr
    assert recorded_live(faults.instance, "dev").release == before
    faults.assert_whole(before)


def test_a_settle_whose_invalidation_times_out_records_the_env_back_and_says_how_to_clear_the_cdn(
    faults, monkeypatch, tmp_path
):
    """The deploy's own invalidation was refused after the switch; the settle put dev back, then its invalidation
    timed out."""
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("its invalidation is refused, then the settle's times out")

    def refused(cf, distribution, paths, caller_reference, **_):
        error = {"Error": {"Code": "AccessDenied", "Message": "not allowed to invalidate"}}
        raise botocore.exceptions.ClientError(error, "CreateInvalidation")

    monkeypatch.setattr(cloudfront_invalidation, "invalidate", refused)
    asked = _invalidation_times_out(monkeypatch)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert not failed.success and failed.failure.startswith("cloudfront_invalidation:"), failed.failure
    _assert_invalidation_hint(failed.failure, before, asked, "still InProgress after 20 min")
    assert recorded_live(faults.instance, "dev").release == before
    faults.assert_whole(before)


def test_a_settle_whose_invalidation_hiccups_tries_it_again_and_clears_the_cdn(faults, monkeypatch, tmp_path):
    """The settle put dev back, then CloudFront answered 503 once: nothing retries a settle, so it said the CDN may
    still serve the failed release and printed a command to clear it by hand. It now tries again itself, as the
    automatic rollback in smoke_result does."""
    settings = faults.auto_rollback(tmp_path)
    before = faults.live()["alias"]
    commit = faults.change("its invalidation is refused, then the settle's hiccups once")
    real_invalidate, calls = restore.invalidate, []

    def refused(cf, distribution, paths, caller_reference, **_):
        error = {"Error": {"Code": "AccessDenied", "Message": "not allowed to invalidate"}}
        raise botocore.exceptions.ClientError(error, "CreateInvalidation")

    def hiccup(cf, distribution, paths, caller_reference, **_):
        calls.append((caller_reference, paths))
        if len(calls) == 1:
            raise botocore.exceptions.ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "again"}},
                                                  "CreateInvalidation")  # fmt: skip
        return real_invalidate(cf, distribution, paths, caller_reference)

    monkeypatch.setattr(cloudfront_invalidation, "invalidate", refused)
    monkeypatch.setattr(restore, "invalidate", hiccup)
    failed = run_deployment("dev", commit, settings=settings, instance=faults.instance, executor="serial", **QUIET)
    monkeypatch.undo()
    assert not failed.success and f"rolled back automatically: dev serves {before} again" in failed.failure
    assert "CDN may still serve" not in failed.failure, failed.failure
    assert len(calls) == 2 and calls[0] == calls[1] and "/config.json" in calls[1][1], calls
    assert recorded_live(faults.instance, "dev").release == before
    faults.assert_whole(before)


def test_a_retry_where_the_env_kept_the_release_only_finishes_it(faults, monkeypatch, capsys):
    """auto_rollback off (dev): the failed release stays served, so the retry re-runs what failed, not the switch
    (re-switching a release already at 100 % would skip a canary's steps and its bake)."""
    commit = faults.change("smoke fails once, nothing rolls back")
    smoke_fails(monkeypatch)
    failed = faults.deploy(ref=commit)
    monkeypatch.undo()
    assert not failed.success and "auto_rollback is off for dev" in failed.failure
    # `status` says which run left dev on a release that never passed, and the way back: not drift from outside,
    # and a headline that names the release whose version and image it shows.
    verified = recorded_live(faults.instance, "dev").release
    for name, value in (("CODEREMOTE_STATE_DIR", str(faults.settings.state_dir)), ("DAGSTER_HOME", str(faults.home)),
                        ("CODEREMOTE_APP_REMOTE", faults.settings.app_remote)):  # fmt: skip
        monkeypatch.setenv(name, value)
    assert main(["status", "dev"]) == 3
    shown = capsys.readouterr().out
    assert f"dev      {failed.release} " in shown and f"run {failed.run_id[:8]}" in shown, shown
    assert shown.count("UNVERIFIED") == 1 and "DRIFT" not in shown and "drift:" not in shown, shown
    assert "smoke_result: smoke failed" in shown and f"the last release that passed is {verified}" in shown, shown
    assert f"fix: `coderemote-pipeline rollback dev --to {verified}`" in shown, shown
    monkeypatch.undo()
    lines: list[str] = []
    retried = retry_from_failure(failed.run_id, settings=faults.settings, instance=faults.instance,
                                 echo=lines.append)  # fmt: skip
    assert retried.success, retried.failure
    assert lines[0].endswith("from failure") and "traffic_shift" not in retried.stages
    faults.verified.append(commit)
    faults.assert_whole(failed.release)


def test_a_switch_that_fails_half_way_goes_back_on_dev_too(faults, monkeypatch):
    before = faults.live()["alias"]
    commit = faults.change("its site cannot go live")

    flip = switch.store.flip

    def refused(s3, bucket, manifest, acl):
        if manifest["commit"] != commit:
            return flip(s3, bucket, manifest, acl)  # putting the previous site back works
        error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
        raise botocore.exceptions.ClientError(error, "PutObject")

    # The API switches, then the site's switch is refused: the API goes back, whatever the env's auto_rollback.
    monkeypatch.setattr(switch.store, "flip", refused)
    failed = faults.deploy(ref=commit)
    monkeypatch.undo()
    assert not failed.success and failed.failure.startswith(f"traffic_shift: the switch of dev|main-{commit[:7]}")
    assert "the site did not switch" in failed.failure and f"dev is back on {before}" in failed.failure
    faults.assert_whole(before)
    again = faults.deploy(ref=commit)
    assert again.success, again.failure
    faults.verified.append(commit)
    faults.assert_whole(again.release)


def test_a_switch_stopped_by_ctrl_c_half_way_puts_the_api_back_itself(faults, monkeypatch):
    before = faults.live()["alias"]
    commit = faults.change("its site switch is interrupted")
    flip = switch.store.flip

    def interrupted(s3, bucket, manifest, acl):
        if manifest["commit"] == commit:
            os.kill(os.getpid(), signal.SIGINT)  # the API has switched; Ctrl-C lands in the site's switch
            time.sleep(1)
        return flip(s3, bucket, manifest, acl)

    monkeypatch.setattr(switch.store, "flip", interrupted)
    stopped = faults.deploy(ref=commit)
    monkeypatch.undo()
    assert stopped.interrupted and stopped.failure.startswith("traffic_shift: interrupted (Ctrl-C or a stop signal)")
    # The switch put the API back before the run ended: the settling found dev whole, it restored nothing.
    assert f"dev serves {before} " in stopped.failure and "as one whole release" in stopped.failure
    faults.assert_whole(before)


def test_a_deploy_that_lost_its_lease_mid_switch_writes_nothing_more_and_puts_nothing_back(faults, monkeypatch):
    """A deploy whose host froze mid-switch for longer than the reclaim time (a paused VM: no other host can see its
    process) lost its lease to the next deploy, which marked it failed. Resumed, it went on with its switch beside
    that deploy's. Here the lease is taken the way that deploy takes it, between the API's switch and the site's:
    the frozen one must write nothing more (the site stays), nor put the API back (the env is the other's now)."""
    before = faults.live()["alias"]
    commit = faults.change("its host froze mid-switch")
    lease, switch_site = Lease(faults.instance, "dev"), switch.switch_site
    reclaimer = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=dg.DagsterRunStatus.STARTED)
    faults.instance.add_run(reclaimer)

    def reclaimed_meanwhile(target, release):
        frozen = lease.holder().run_id
        assert lease._slot.free(frozen, STEP) and lease._slot.claim(reclaimer.run_id)
        faults.instance.report_run_failed(faults.instance.get_run_by_id(frozen), "deploy lease reclaimed: silent")
        return switch_site(target, release)

    monkeypatch.setattr(switch, "switch_site", reclaimed_meanwhile)
    lost = faults.deploy(ref=commit)
    monkeypatch.undo()
    assert not lost.success
    assert f"no longer holds dev's deploy lease (run {reclaimer.run_id[:8]} holds it now" in lost.failure, lost.failure
    assert faults.live() == {"alias": lost.release, "api": lost.release, "site": before}  # as the other deploy found it
    assert lease._slot.free(reclaimer.run_id, STEP)  # the other deploy, done: its own switch makes dev whole
    faults.instance.report_run_canceled(reclaimer, "the test's stand-in for the deploy that reclaimed the lease")
    again = faults.deploy(ref=commit)
    assert again.success, again.failure
    faults.verified.append(commit)
    faults.assert_whole(again.release)


def test_a_settle_that_lost_its_lease_leaves_the_env_to_the_deploy_that_took_it(faults, monkeypatch):
    """The settle of a failed run holds the env's lease too (under a settle step) and puts back what the run left
    split. Frozen past the reclaim time, it loses the lease to the next deploy: resumed, it must not restore over
    that deploy's switch."""
    before = faults.live()["alias"]
    commit = faults.change("split, then its settle freezes")
    lease, restoring = Lease(faults.instance, "dev"), restore.switch
    reclaimer = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=dg.DagsterRunStatus.STARTED)
    faults.instance.add_run(reclaimer)

    def refused(s3, bucket, manifest, acl):
        raise botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")

    def reclaimed_meanwhile(target, to, before=None):
        settle = lease.holder()
        assert settle.step.startswith("settle") and lease._slot.free(settle.run_id, settle.step)
        assert lease._slot.claim(reclaimer.run_id)
        return restoring(target, to, before)

    with monkeypatch.context() as faults_in:
        faults_in.setattr(switch.store, "flip", refused)  # the API switched, the site did not: split...
        faults_in.setattr(switch, "_put_back", lambda target, before, site: "the process died before putting back")
        faults_in.setattr(restore, "switch", reclaimed_meanwhile)
        failed = faults.deploy(ref=commit)
    assert not failed.success and f"Not put on {before}: run" in failed.failure, failed.failure
    assert "no longer holds dev's deploy lease" in failed.failure
    assert faults.live() == {"alias": failed.release, "api": failed.release, "site": before}  # left as it was
    assert lease._slot.free(reclaimer.run_id, STEP)  # the deploy that took the lease, done: it makes dev whole
    faults.instance.report_run_canceled(reclaimer, "the test's stand-in for the deploy that reclaimed the lease")
    again = faults.deploy(ref=commit)
    assert again.success, again.failure
    faults.verified.append(commit)
    faults.assert_whole(again.release)


def test_a_site_edge_that_never_followed_the_flip_is_split_and_rollback_to_the_record_repairs_it(faults):
    """Killed between the pointer's flip and telling the edge: the pointer names the new release, the edge (varnish
    here, CloudFront's origin path on AWS) still serves the one before. Nothing read the edge, so nothing saw it."""
    previous = faults.live()["alias"]
    done = faults.deploy(ref=faults.change("a flip the edge never hears of"))
    assert done.success, done.failure
    target = target_for(local_resources(faults.settings))("dev", env_outputs(faults.instance, "dev"))
    bucket, port = target.outputs["frontend_bucket"], load_stack_info(faults.settings.state_dir).site_ports["dev"]
    for release, tell_the_edge in ((previous, True), (done.release, False)):
        frontend_store.flip(target.s3, bucket, frontend_store.read_manifest(target.s3, bucket, release), target.acl)
        if tell_the_edge:
            site_edge.forget_pointer(port)
            assert _get_json(target.outputs["frontend_url"] + "/config.json")["release"] == previous  # cached
    state = read_target(target, probe=False)
    assert state.frontend_release == done.release and state.site_edge == previous
    assert split_parts(state) == [f"the site's edge serves {previous} but its live pointer names {done.release}"]
    recorded = recorded_live(faults.instance, "dev")
    assert drift(recorded, state) == [f"the site's edge serves {previous}, its live pointer {done.release}"]
    lines: list[str] = []
    fixed = rollback("dev", done.release, settings=faults.settings, instance=faults.instance, echo=lines.append)
    assert fixed.success, fixed.failure
    assert "the site's edge serves" in lines[0] and lines[0].endswith("putting it back")
    # A CDN keyed by path (CloudFront) still holds what the edge served: the repair has it forget what differs.
    assert "config.json" in fixed.stages["traffic_shift"]["changed_paths"]
    assert read_target(target, probe=False).site_edge == done.release
    faults.assert_whole(done.release)


def test_emulator_stopped_during_the_upload(faults, monkeypatch):
    before = faults.live()["alias"]
    commit = faults.change("uploaded while the emulator dies")
    snapshot = frontend_store.store_snapshot

    def upload_after_stopping_the_emulator(*args, **kwargs):
        # Killed, not stopped: a clean stop would keep the emulator's memory (local_stack/emulator.py).
        os.kill(load_stack_info(faults.settings.state_dir).moto_pid, signal.SIGKILL)
        return snapshot(*args, **kwargs)

    monkeypatch.setattr(frontend_store, "store_snapshot", upload_after_stopping_the_emulator)
    try:
        lines: list[str] = []
        failed = run_deployment("dev", commit, settings=faults.settings, instance=faults.instance, executor="serial",
                                echo=lines.append)  # fmt: skip
        assert not failed.success
        # Each retry is said as it happens, with its reason: a part that does not answer is not minutes of silence.
        assert any(line.startswith("  ↻ frontend_bundle: AWS emulator (moto) at ") and "trying again in" in line
                   for line in lines), "\n".join(lines)  # fmt: skip
        # Named with its fix, once for every stage that met it, not as botocore's "Could not connect".
        assert "Could not connect" not in failed.failure, failed.failure
        down = f"AWS emulator (moto) at {load_stack_info(faults.settings.state_dir).moto_endpoint} is not answering"
        assert "frontend_bundle" in failed.failure and failed.failure.count(down) <= 2, failed.failure
        assert "start it with `coderemote-pipeline local up` (still failing after 3 tries)" in failed.failure
        assert "what dev serves cannot be read now" in failed.failure
        assert "traffic_shift" not in failed.stages  # nothing switched
        assert _get_json(env_outputs(faults.instance, "dev")["api_url"] + "/health")["release"] == before
    finally:
        monkeypatch.undo()
        faults.stack.up()
    # The emulator restarts empty (moto keeps its state in memory): re-running is a new deploy, whose infra stage
    # provisions the stack again; the image and the frontend build are reused from the registry and the cache.
    again = faults.deploy(ref=commit)
    assert again.success, again.failure
    assert again.stages["infra_stack"]["change_count"] > 0
    faults.assert_whole(again.release)


def test_run_killed_mid_deploy_and_reexecuted_from_failure(faults):
    commit = faults.change("deployed by a process that gets killed")
    env = {**os.environ, "DAGSTER_HOME": str(faults.home), "CODEREMOTE_STATE_DIR": str(faults.settings.state_dir),
           "CODEREMOTE_APP_REMOTE": faults.settings.app_remote, "CODEREMOTE_WARM": "0"}  # fmt: skip
    env.pop("CODEREMOTE_APP_CONFIG", None)
    log = faults.home / "killed-deploy.log"
    with open(log, "wb") as out:
        cli = subprocess.Popen(
            [str(BIN / "coderemote-pipeline"), "deploy", "dev", commit, "--executor", "parallel"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        run = _wait(lambda: _run_past(faults.instance, commit, "api_image"), 180, cli, log)
    finally:
        os.killpg(cli.pid, signal.SIGKILL)  # the run's process, its forkserver and its step processes
        cli.wait(timeout=10)
    killed = faults.instance.get_run_by_id(run.run_id)
    assert killed.status is dg.DagsterRunStatus.STARTED  # nothing could record the end of a killed process
    # `retry dev --mark-failed`: the env's last run is the killed one.
    retried = retry_from_failure("dev", settings=faults.settings, instance=faults.instance, mark_failed=True)
    assert retried.success, retried.failure
    assert faults.instance.get_run_by_id(retried.run_id).parent_run_id == run.run_id
    assert faults.instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    assert "api_image" not in retried.stages and "infra_stack" not in retried.stages  # done before the kill
    assert "smoke_result" in retried.stages
    faults.assert_whole(f"main-{commit[:7]}")


def _run_past(instance, commit: str, step: str):
    runs = instance.get_runs(dg.RunsFilter(tags={"coderemote/commit": commit}))
    if not runs:
        return None
    done = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return runs[0] if any(r.dagster_event.step_key == step for r in done) else None


def _wait(probe, timeout: float, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"the deploy never got past api_image (exit {process.poll()}):\n{log.read_text()[-3000:]}")
