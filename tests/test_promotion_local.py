"""Build once, promote the same bytes: dev-verified commits reach prod and staging without a rebuild; the
promotion gate holds what dev did not verify, and `--force --reason` overrides it on the record."""

import json
import logging
import urllib.error
import urllib.request

import dagster as dg
import docker
import pytest
from app_bugs import plant

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.gate import gate_status
from coderemote_pipeline.ledger.history import deploys
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.resources.aws import EmulatorAws
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.names import OVERRIDE_TAG
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo
from coderemote_pipeline.usecases.deploy import DeployRefused, Override, run_deployment

pytestmark = pytest.mark.stack
QUIET = {"echo": lambda _: None}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _builds(info) -> int:
    return len(docker.DockerClient(base_url=info.docker_host).images.list(filters={"label": "coderemote.build-key"}))


def _tag(clone, tag):
    git("tag", tag, cwd=clone)
    git("push", "--quiet", "origin", tag, cwd=clone)


def _approve(settings, instance, tag):
    record_decision(settings, instance, "prod", parse_release_key(tag), by="test-suite", decision="approve", reason="")


@pytest.fixture(scope="module")
def app(settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("promote-app")
    clone = root / "clone"
    make_app_repo(EXAMPLE_APP, root / "app.git", clone, message="promotion content")
    (clone / "frontend" / "src" / "style.css").write_text("/* promoted */\nbody { color: #345; }\n")
    commit_and_push(clone, "promotion commit")
    return Settings(settings.target, settings.state_dir, str(root / "app.git"), None), clone


def _hashed_assets(s3, bucket: str, release: str) -> dict[str, bytes]:
    """The release's hashed assets by their path in the site (each release under its own prefix)."""
    prefix = f"_releases/{release}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "assets/").get("Contents", [])
    return {o["Key"].removeprefix(prefix): s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_prod_runs_the_bytes_dev_tested(app, instance, local_stack):
    settings, clone = app
    dev = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    assert dev.success, dev.failure
    _tag(clone, "v3.0.0")
    _approve(settings, instance, "v3.0.0")
    builds = _builds(local_stack)
    # What the approval view shows beside the pending release: when and by which run dev verified it.
    assert gate_status(instance, policy_for("prod"), dev.commit).startswith(
        f"verified in dev as {dev.release} by run {dev.run_id[:8]} at "
    )

    prod = run_deployment("prod", "v3.0.0", settings=settings, instance=instance, **QUIET)
    assert prod.success, prod.failure
    assert _builds(local_stack) == builds  # nothing built
    assert prod.job_name == "redeploy_job"
    image, bundle = prod.stages["api_image"], prod.stages["frontend_bundle"]
    assert image["digest"] == dev.stages["api_image"]["digest"]
    assert image["outcome"].startswith(f"promoted from dev (run {dev.run_id[:8]})")
    assert bundle["outcome"].startswith(f"promoted from dev (run {dev.run_id[:8]})")
    assert bundle["content_hash"] == dev.stages["frontend_bundle"]["content_hash"]

    aws = EmulatorAws(stack=LocalStackResource(state_dir=str(settings.state_dir)))
    s3 = aws.client("s3")
    dev_out, prod_out = (o.stages["infra_stack"]["stack_outputs"] for o in (dev, prod))
    prod_assets = _hashed_assets(s3, prod_out["frontend_bucket"], bundle["release"])
    dev_assets = _hashed_assets(s3, dev_out["frontend_bucket"], dev.stages["frontend_bundle"]["release"])
    assert prod_assets and all(dev_assets[key] == body for key, body in prod_assets.items())

    health = json.loads(_get(prod_out["api_url"] + "/health"))
    assert (health["release"], health["env"]) == ("v3.0.0", "prod")
    config = json.loads(_get(prod_out["frontend_url"] + "/config.json"))
    assert (config["release"], config["apiUrl"]) == ("v3.0.0", prod_out["api_url"])
    assert prod_out["api_url"] != dev_out["api_url"]


def test_a_tag_never_deployed_to_dev_is_held(app, instance):
    settings, clone = app
    (clone / "backend" / "app" / "UNTESTED").write_text("never in dev\n")
    commit_and_push(clone, "never deployed to dev")
    _tag(clone, "v3.1.0")
    _approve(settings, instance, "v3.1.0")
    with pytest.raises(DeployRefused, match=r"prod is held: commit [0-9a-f]{12} has not passed smoke in dev"):
        run_deployment("prod", "v3.1.0", settings=settings, instance=instance)
    commit = git("rev-parse", "HEAD", cwd=clone)
    assert "has not passed smoke in dev" in gate_status(instance, policy_for("prod"), commit)


def test_a_commit_that_failed_in_dev_is_held_and_force_overrides_on_the_record(app, instance, monkeypatch, capsys):
    settings, clone = app
    server = clone / "backend" / "app" / "server.py"
    # A bug that only shows with dev's configuration: dev fails, prod would not (and the checks do not see it).
    plant(server, 'if os.environ.get("APP_ENV") == "dev":', '    raise SystemExit("dev-only")')
    commit = commit_and_push(clone, "dev-only failure")
    failed = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    assert not failed.success and failed.commit == commit
    _tag(clone, "v3.2.0")
    _approve(settings, instance, "v3.2.0")
    with pytest.raises(DeployRefused, match=r"latest dev deploy of commit [0-9a-f]{12} failed \(run "):
        run_deployment("prod", "v3.2.0", settings=settings, instance=instance)

    with pytest.raises(DeployRefused, match="--force needs --reason"):
        Override(reason=" ", by="alice")
    forced = run_deployment(
        "prod", "v3.2.0", settings=settings, instance=instance, override=Override("hotfix, dev env broken", "alice"),
        **QUIET,
    )  # fmt: skip
    assert forced.success, forced.failure
    history = deploys(instance, "prod")
    assert history[0].run_id == forced.run_id
    assert instance.get_run_by_id(forced.run_id).tags[OVERRIDE_TAG] == "hotfix, dev env broken"
    assert history[0].override == "hotfix, dev env broken (alice)"
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    assert main(["history", "prod"]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.split()[2:3] == ["v3.2.0"])
    assert "override: hotfix, dev env broken (alice)" in listed


def test_promote_dev_to_staging_serves_the_same_release(app, instance, settings, monkeypatch, capsys):
    mine, _ = app
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(mine.state_dir))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", mine.app_remote)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    dev_live = recorded_live(instance, "dev")
    assert main(["promote", "dev", "staging"]) == 0
    assert f"promoting {dev_live.release}" in capsys.readouterr().out
    staging = recorded_live(instance, "staging")
    assert (staging.release, staging.digest) == (dev_live.release, dev_live.digest)


def test_promote_bad_input(settings, tmp_path, monkeypatch, capsys):
    home = tmp_path / "empty_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    assert main(["promote", "dev", "staging"]) == 2
    assert "nothing is live in dev: deploy it first" in capsys.readouterr().err
    assert main(["promote", "dev", "qa"]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err


def test_a_source_image_that_is_gone_is_rebuilt_with_a_warning(app, instance, local_stack):
    settings, _ = app
    dev_image = next(
        r.asset_materialization.metadata
        for r in instance.fetch_materializations(dg.AssetKey("api_image"), limit=50).records
        if str(r.asset_materialization.partition).startswith("prod|v3.0.0")
    )
    digest = dev_image["digest"].value
    for repository in ("code-remote-dev-api", "code-remote-staging-api", "code-remote-prod-api"):
        request = urllib.request.Request(
            f"http://{local_stack.registry_host}/v2/{repository}/manifests/{digest}", method="DELETE"
        )
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404  # that env never had it
    staging = run_deployment("staging", "v3.0.0", settings=settings, instance=instance, **QUIET)
    assert staging.success, staging.failure
    assert staging.stages["api_image"]["outcome"] == "built"
    warnings = [
        r.user_message
        for r in instance.all_logs(staging.run_id)
        if r.level >= logging.WARNING and "is gone from its registry: rebuilding it from the commit" in r.user_message
    ]
    assert warnings


def test_a_tag_off_main_launched_past_the_command_line_does_not_switch_prod(app, instance):
    """`deploy prod` refuses a stable tag off main, as the tag sensor does; a run launched another way (the UI's
    Launchpad, a retry, a hold made by an older CLI) came through the switch all the same. The switch checks it."""
    from coderemote_pipeline.rules.deployment import Deployment
    from coderemote_pipeline.rules.environments import load_policies
    from coderemote_pipeline.usecases.launch import launch

    settings, clone = app
    live = recorded_live(instance, "prod")
    before = live.release if live else None  # run alone: prod has nothing live yet
    # From the module's first good commit, not from a bug planted on main by a test before.
    good = git("log", "--format=%H", "--grep=^promotion commit$", "main", cwd=clone).split()[-1]
    git("checkout", "--quiet", "-b", "hotfix", good, cwd=clone)
    (clone / "backend" / "app" / "HOTFIX").write_text("off main\n")
    git("add", "-A", cwd=clone)
    git("commit", "--quiet", "-m", "a hotfix, not merged", cwd=clone)
    git("push", "--quiet", "origin", "hotfix", cwd=clone)
    verified = run_deployment("dev", "hotfix", settings=settings, instance=instance, **QUIET)  # dev takes branches
    assert verified.success, verified.failure
    _tag(clone, "v3.9.0")
    git("checkout", "--quiet", "main", cwd=clone)
    _approve(settings, instance, "v3.9.0")
    with pytest.raises(DeployRefused, match=r"prod\|v3\.9\.0: its commit [0-9a-f]{12} is not on main"):
        run_deployment("prod", "v3.9.0", settings=settings, instance=instance)
    deploy = Deployment.of("prod", "v3.9.0", load_policies(settings.infra_dir), verified.commit)
    ui = launch(deploy, settings=settings, instance=instance, job_name="redeploy_job", trigger="ui", **QUIET)
    assert not ui.success
    assert ui.failure.startswith("traffic_shift: nothing switched: prod|v3.9.0: its commit"), ui.failure
    after = recorded_live(instance, "prod")
    assert (after.release if after else None) == before
    if after is not None:
        assert json.loads(_get(after.stack_outputs["api_url"] + "/health"))["release"] == before
