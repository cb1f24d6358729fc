"""PulumiProvisioner through the real Automation API, with `pulumi` played by tests/fake_pulumi.py and ECR by moto.

The Pulumi CLI cannot be installed here, so the missing-CLI path is the real one; every other path runs the real
Automation API (its argv, JSON parsing and error classification) against a stand-in CLI that answers and fails
the way the real one does. The program directory is a copy, so the repository's stack files are never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import moto_aws as fixtures
import pytest
import yaml
from stage_kit import policy_resources

from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.resources.aws import AwsCredentialsMissing, RealAws
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.ecr_registry import EcrRegistry
from coderemote_pipeline.resources.image_registry import ImageRef
from coderemote_pipeline.resources.pulumi_provisioner import PulumiProvisioner
from coderemote_pipeline.rules import pulumi_update as ps
from coderemote_pipeline.rules import stack_outputs
from coderemote_pipeline.rules.partitions import RELEASE_DIMENSION, partition_key
from coderemote_pipeline.rules.stack_config import StackConfig

MotoAws = fixtures.MotoAws
moto_endpoint = fixtures.moto_endpoint
emulated_aws = fixtures.emulated_aws

FAKE_CLI = Path(__file__).with_name("fake_pulumi.py")
GEMINI_KEY = "AIza-test-gemini-key-0123456789"
CONFIG = StackConfig(region="us-east-1", gemini_model="gemini-2.5-flash", vpc_cidr=None, az_count=None)
BOOTSTRAP_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:" + "c" * 64},
        "layers": [],
    }
)
BOOTSTRAP_DIGEST = "sha256:" + "b" * 64


class FakeEngine(DockerEngine):
    """The bootstrap step asks the engine for its base image and a client, and hands both to the registry."""

    base: str = "public.ecr.aws/lambda/python:3.12"

    def docker_host(self) -> str | None:
        return None

    def base_image(self) -> str:
        return self.base

    def base_image_id(self) -> str:
        return "sha256:base"

    def client(self):
        return None


class PushToMoto(EcrRegistry):
    """The engine's push of the bootstrap image, as ECR would record it (moto has no registry API), into the
    repository the targeted `pulumi up` would have created (the fake CLI creates nothing in moto)."""

    def push(self, client, image_id: str, repository: str, tags: list[str]) -> ImageRef:
        assert image_id == "sha256:base"
        ecr = self.aws.client("ecr")
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
        for tag in tags:
            with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
                ecr.put_image(
                    repositoryName=repository,
                    imageManifest=BOOTSTRAP_MANIFEST,
                    imageTag=tag,
                    imageDigest=BOOTSTRAP_DIGEST,
                )
        return self.find(repository, tags[0])


@pytest.fixture
def program(tmp_path: Path) -> Path:
    copy = tmp_path / "pulumi"
    shutil.copytree(ps.PROGRAM_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`pulumi` on PATH is the fake; returns its state file (its record of stacks and calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n')
    script.chmod(0o755)
    state = tmp_path / "fake-pulumi.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(state))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUT_KEYS", json.dumps(sorted(stack_outputs.ALL_KEYS)))
    monkeypatch.delenv("FAKE_PULUMI_MODE", raising=False)
    return state


def calls(state: Path) -> list[list[str]]:
    return json.loads(state.read_text())["calls"]


def ups(state: Path) -> list[list[str]]:
    return [c for c in calls(state) if c[0] == "up"]


def with_bootstrap(aws: MotoAws, env: str) -> None:
    """An env deployed before: its repository holds the bootstrap image."""
    PushToMoto(aws=aws).push(None, "sha256:base", stack_outputs.ecr_repository_name(env), ["bootstrap"])


def provisioner(aws, program: Path, **fields) -> PulumiProvisioner:
    return PulumiProvisioner(
        registry=PushToMoto(aws=aws), docker=FakeEngine(), gemini_api_key=GEMINI_KEY, work_dir=str(program), **fields
    )


def test_first_deploy_creates_the_repository_pushes_bootstrap_then_applies(emulated_aws, program, cli) -> None:
    lines: list[str] = []
    result = provisioner(emulated_aws, program).ensure("staging", CONFIG, lines.append)

    targeted, full = ups(cli)
    assert targeted[targeted.index("--target") + 1] == ps.repository_urn("staging")
    assert "--target" not in full and ps.update_message("") in " ".join(full)
    assert result.changes == [
        "created ECR repository code-remote-staging-api",
        f"pushed bootstrap image {BOOTSTRAP_DIGEST[:19]}",
        "create: 20",
    ]
    assert result.outputs.keys() == stack_outputs.ALL_KEYS
    assert all(isinstance(v, str) for v in result.outputs.values())
    config = yaml.safe_load((program / "Pulumi.staging.yaml").read_text())["config"]
    assert config[ps.BOOTSTRAP_IMAGE_KEY] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/code-remote-staging-api:bootstrap"
    )
    assert set(config[ps.GEMINI_API_KEY_KEY]) == {"secure"}  # as `pulumi config set --secret` stores it
    assert GEMINI_KEY not in (program / "Pulumi.staging.yaml").read_text()
    assert not any(GEMINI_KEY in line for line in lines)
    assert config["aws:region"] == "us-east-1"  # the strategy's keys stay as they were


def test_unchanged_program_and_config_skip_up_until_something_changes(emulated_aws, program, cli) -> None:
    with_bootstrap(emulated_aws, "dev")
    first = provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None)
    assert len(ups(cli)) == 1 and first.changes == ["create: 20"]

    lines: list[str] = []
    again = provisioner(emulated_aws, program).ensure("dev", CONFIG, lines.append)
    assert len(ups(cli)) == 1, "unchanged: no second `pulumi up`"
    assert again.outputs == first.outputs and again.changes == []
    assert any("skipped" in line for line in lines)
    assert sum(1 for c in calls(cli) if c[:2] == ["config", "set"]) == 2, "config written once, not per deploy"

    provisioner(emulated_aws, program, force=True).ensure("dev", CONFIG, lambda _: None)
    assert len(ups(cli)) == 2, "forced"

    (program / "lambda_api.py").write_text((program / "lambda_api.py").read_text() + "\n# changed\n")
    assert provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None).changes == []  # all "same"
    assert len(ups(cli)) == 3, "program changed"

    rotated = PulumiProvisioner(
        registry=PushToMoto(aws=emulated_aws),
        docker=FakeEngine(),
        gemini_api_key="AIza-rotated-key",
        work_dir=str(program),
    )
    rotated.ensure("dev", CONFIG, lambda _: None)
    assert len(ups(cli)) == 4, "secret rotated"
    (program / "Pulumi.prod.yaml").write_text("config:\n  aws:region: us-east-1\n  code-remote:gemini_model: x\n")
    rotated.ensure("dev", CONFIG, lambda _: None)
    assert len(ups(cli)) == 4, "another env's stack file is not this stack's config"


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("conflict", ps.StackBusy, r"being updated by another process.*pulumi cancel --stack dev"),
        ("locked", ps.StackBusy, r"pulumi cancel --stack dev"),
        ("nocreds", AwsCredentialsMissing, r"no valid AWS credentials.*AWS_PROFILE"),
        ("nologin", ps.PulumiSetupError, r"not logged in to a Pulumi backend: run `pulumi login`"),
        ("nopassphrase", ps.PulumiSetupError, r"set PULUMI_CONFIG_PASSPHRASE"),
        ("fail", ps.PulumiUpdateFailed, r"`pulumi up` of Pulumi stack 'dev'.*failed \(exit 255\)"),
    ],
)
def test_a_failed_update_says_why_and_what_to_do(emulated_aws, program, cli, monkeypatch, mode, error, message):
    with_bootstrap(emulated_aws, "dev")
    monkeypatch.setenv("FAKE_PULUMI_MODE", mode)
    monkeypatch.setenv("FAKE_PULUMI_LEAK", GEMINI_KEY)  # a provider echoing a secret must not reach the message
    with pytest.raises(error, match=message) as raised:
        provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None)
    assert GEMINI_KEY not in str(raised.value)
    if mode == "fail":
        assert "Source image [secret] does not exist" in str(raised.value)  # the diagnostics, redacted
        monkeypatch.setenv("FAKE_PULUMI_MODE", "")
        provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None)
        assert len(ups(cli)) == 2, "after a failed update the next deploy runs `up` again"


def test_backend_and_secrets_provider_reach_the_cli(emulated_aws, program, cli, tmp_path) -> None:
    with_bootstrap(emulated_aws, "prod")
    backend = f"file://{tmp_path / 'state'}"
    chosen = provisioner(emulated_aws, program, backend_url=backend, secrets_provider="passphrase",
                         config_passphrase="correct horse")  # fmt: skip
    chosen.ensure("prod", CONFIG, lambda _: None)
    state = json.loads(cli.read_text())
    assert ["stack", "init", "prod", "--secrets-provider", "passphrase"] in state["calls"]
    assert all(seen == {"backend": backend, "passphrase": True} for seen in state["environments"])


def test_missing_cli_is_named_with_the_install_link(emulated_aws, program, tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # for real: the Automation API runs `pulumi version` and fails
    with pytest.raises(ps.PulumiCliMissing) as raised:
        provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None)
    assert str(raised.value).startswith(f"Pulumi CLI not found: install it ({ps.INSTALL_URL})")
    assert "`pulumi` is not on PATH" in str(raised.value)


def test_a_cli_too_old_for_the_automation_api_is_named(emulated_aws, program, cli, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_MODE", "old")
    with pytest.raises(ps.PulumiCliMissing, match=r"Pulumi CLI not usable.*3\.0\.0"):
        provisioner(emulated_aws, program).ensure("dev", CONFIG, lambda _: None)


def test_missing_aws_credentials_stop_before_any_update(program, cli, tmp_path, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    real = PulumiProvisioner(
        registry=EcrRegistry(aws=RealAws()), docker=FakeEngine(), gemini_api_key=GEMINI_KEY, work_dir=str(program)
    )
    with pytest.raises(AwsCredentialsMissing, match="no AWS credentials found"):
        real.ensure("dev", CONFIG, lambda _: None)
    assert ups(cli) == []


def test_a_stack_file_in_another_region_is_refused(emulated_aws, program) -> None:
    elsewhere = StackConfig(region="eu-west-1", gemini_model="m", vpc_cidr=None, az_count=None)
    with pytest.raises(ps.PulumiError, match=r"aws:region eu-west-1.*one region"):
        provisioner(emulated_aws, program).ensure("dev", elsewhere, lambda _: None)


def test_infra_stack_asset_records_outputs_without_the_secret(emulated_aws, program, cli, monkeypatch) -> None:
    with_bootstrap(emulated_aws, "dev")
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    resource = PulumiProvisioner(
        registry=PushToMoto(aws=emulated_aws),
        docker=FakeEngine(),
        gemini_api_key=dg.EnvVar("GEMINI_API_KEY"),
        work_dir=str(program),
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(RELEASE_DIMENSION, ["main-abc1234"])
        result = dg.materialize(
            [infra_stack],
            partition_key=partition_key("dev", "main-abc1234"),
            resources={"provisioner": resource, **policy_resources(program)},
            instance=instance,
        )
        assert result.success
        metadata = result.asset_materializations_for_node("infra_stack")[0].metadata
        assert metadata["stack_outputs"].value.keys() == stack_outputs.ALL_KEYS
        events = instance.all_logs(result.run_id)
        assert not any(GEMINI_KEY in str(event) for event in events)
    assert len(ups(cli)) == 1
