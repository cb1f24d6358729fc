"""A restart of the local stack keeps the emulated cloud: `local down` then `local up` bring back the same functions,
versions, aliases, buckets, repositories and distribution (the emulator keeps its memory across a clean stop), the
API of what is live answers again, `status` shows no drift, and a rollback rebuilds and provisions nothing. A killed
emulator still forgets: `status` then says what is missing and how to fix it, in one line per problem."""

import os
import signal

import docker
import pytest

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.local_stack import LocalStack, load_stack_info
from coderemote_pipeline.local_stack.processes import pid_alive
from coderemote_pipeline.resources.targets import local_resources
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.rollback import rollback

pytestmark = pytest.mark.stack
QUIET = {"echo": lambda _: None}
FUNCTION = "code-remote-dev-api"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """Its own stack (it is taken down and brought up) with two releases of the example app deployed to dev."""
    root = tmp_path_factory.mktemp("restart")
    settings = Settings("local", root / "state", str(root / "app.git"), None)
    stack = LocalStack(settings.state_dir)
    stack.up()
    try:
        make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
        instance = open_instance(settings.state_dir)
        first = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
        assert first.success, first.failure
        (root / "clone" / "backend" / "app" / "restart.txt").write_text("the second release\n")
        commit_and_push(root / "clone", "second release")
        second = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
        assert second.success, second.failure
        yield settings, stack, instance, first, second
    finally:
        stack.down()


def _cloud(settings: Settings) -> dict:
    """What the emulated cloud holds for dev, by the ids a live record names."""
    aws = local_resources(settings)["aws"]
    lam, s3, ecr, cf = (aws.client(name) for name in ("lambda", "s3", "ecr", "cloudfront"))
    versions = lam.list_versions_by_function(FunctionName=FUNCTION)["Versions"]
    return {
        "versions": sorted((v["Version"], v["CodeSha256"]) for v in versions),
        "alias": lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"],
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "images": sorted(i["imageDigest"] for i in ecr.list_images(repositoryName="code-remote-dev-api")["imageIds"]),
        "distributions": sorted(d["Id"] for d in cf.list_distributions()["DistributionList"].get("Items", [])),
    }


def _cli(settings: Settings, instance, monkeypatch, *argv: str) -> int:
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", settings.app_remote)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    return main(list(argv))


def _built_images(settings: Settings) -> int:
    info = load_stack_info(settings.state_dir)
    client = docker.DockerClient(base_url=info.docker_host)
    try:
        return len(client.images.list(filters={"label": "coderemote.build-key"}))
    finally:
        client.close()


def test_down_and_up_keep_the_cloud_then_rollback_rebuilds_nothing(deployed, monkeypatch, capsys):
    settings, _, instance, first, second = deployed
    before = _cloud(settings)
    assert before["alias"] == str(second.stages["lambda_version"]["version"])
    old = load_stack_info(settings.state_dir)

    assert _cli(settings, instance, monkeypatch, "local", "down") == 0
    assert not pid_alive(old.moto_pid)
    assert _cli(settings, instance, monkeypatch, "local", "up") == 0
    revived = capsys.readouterr().out
    assert f"API revived:   dev: {second.release}" in revived, revived
    assert load_stack_info(settings.state_dir).moto_pid != old.moto_pid  # a new emulator, the same cloud
    assert _cloud(settings) == before

    assert _cli(settings, instance, monkeypatch, "status", "dev") == 0
    shown = capsys.readouterr().out
    assert second.release in shown and "DRIFT" not in shown, shown
    assert _cli(settings, instance, monkeypatch, "infra", "dev", "preview") == 0
    assert "dev: nothing to change" in capsys.readouterr().out

    images = _built_images(settings)
    back = rollback("dev", None, settings=settings, instance=instance, **QUIET)
    assert back.success, back.failure
    assert back.release == first.release and "infra_stack" not in back.stages  # nothing provisioned
    assert back.stages["api_image"]["outcome"] == "reused" and _built_images(settings) == images
    assert back.stages["lambda_version"]["version"] == first.stages["lambda_version"]["version"]
    assert back.stages["frontend_bundle"]["files_uploaded"] == 0
    assert _cloud(settings)["versions"] == before["versions"]  # no version published either
    assert _cli(settings, instance, monkeypatch, "status", "dev") == 0
    assert "DRIFT" not in capsys.readouterr().out
    assert recorded_live(instance, "dev").release == first.release

    # The README's first command after a reboot brings the stack up the same way: what is live answers again.
    assert _cli(settings, instance, monkeypatch, "local", "down") == 0
    assert _cli(settings, instance, monkeypatch, "demo") == 0
    assert f"API revived: dev: {first.release}" in capsys.readouterr().out


def test_a_killed_emulator_forgets_and_status_says_what_is_missing(deployed, monkeypatch, capsys):
    settings, stack, instance, _, _ = deployed
    info = load_stack_info(settings.state_dir)
    os.kill(info.moto_pid, signal.SIGKILL)
    stack.up()
    assert not stack.paths.memory.exists()
    assert _cli(settings, instance, monkeypatch, "status", "dev") == 3
    shown = capsys.readouterr().out
    assert f"{FUNCTION} (or its live alias) does not exist" in shown and "deploy dev" in shown, shown
    assert "Traceback" not in shown
    assert _cli(settings, instance, monkeypatch, "traffic", "dev") == 2  # one line, not botocore's traceback
    said = capsys.readouterr().err
    assert said.startswith(f"error: dev's function {FUNCTION} (or its live alias) does not exist"), said
    # A rollback provisions nothing: refused before a run exists, with the deploy that provisions the env again.
    live = recorded_live(instance, "dev").release
    runs = len(instance.get_run_records())
    for argv in (("rollback", "dev", "--to", live), ("rollback", "dev")):
        assert _cli(settings, instance, monkeypatch, *argv) == 2, argv
        said = capsys.readouterr().err.strip().splitlines()
        assert len(said) == 1 and "A rollback provisions nothing: deploy " in said[0], said
        assert "coderemote-pipeline deploy dev " in said[0], said
    assert len(instance.get_run_records()) == runs
    # The next deploy provisions the environment again and serves it whole.
    again = run_deployment("dev", "main", settings=settings, instance=instance, **QUIET)
    assert again.success, again.failure
    assert again.stages["infra_stack"]["change_count"] > 0
    assert _cli(settings, instance, monkeypatch, "status", "dev") == 0
