"""The aws target's wiring, and the runtime that waits for Lambda to serve the alias.

Definitions load on the aws target with no network, no AWS credentials, no Docker engine and no Pulumi CLI:
those are first needed when a step runs. The runtime is tested against a real HTTP server standing in for the
Function URL, and against moto's Lambda for what the alias points to.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import moto_aws as fixtures
import pytest
from sensor_kit import tick

from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.resources import lambda_url_runtime
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsCredentialsMissing, RealAws
from coderemote_pipeline.resources.docker_engine import HostDockerEngine
from coderemote_pipeline.resources.ecr_registry import EcrRegistry
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.image_registry import ImageRef
from coderemote_pipeline.resources.lambda_url_runtime import LambdaUrlRuntime
from coderemote_pipeline.resources.pulumi_provisioner import PulumiProvisioner
from coderemote_pipeline.resources.readiness import AwsReadiness
from coderemote_pipeline.resources.runtime import ApiUnhealthy, ServedVersion
from coderemote_pipeline.resources.site_edge import CloudFrontOriginEdge
from coderemote_pipeline.resources.targets import aws_resources, check_ready, local_resources, resources_for
from coderemote_pipeline.rules import settings as settings_module
from coderemote_pipeline.rules import stack_outputs
from coderemote_pipeline.rules.names import DEPLOY_JOB, DEPLOY_JOBS, REDEPLOY_JOB, ROLLBACK_JOB
from coderemote_pipeline.rules.settings import Settings, SettingsError

MotoAws = fixtures.MotoAws
moto_endpoint = fixtures.moto_endpoint
emulated_aws = fixtures.emulated_aws


def aws_settings(tmp_path: Path) -> Settings:
    return Settings(target="aws", state_dir=tmp_path, app_remote=str(tmp_path / "app.git"), app_config=None)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, no AWS credentials, no `pulumi` or `docker` on PATH, no Gemini key."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used while loading definitions: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in [n for n in __import__("os").environ if n.startswith(("AWS_", "PULUMI_", "DOCKER_"))]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_aws_resources_fill_every_key_the_local_target_fills(tmp_path: Path) -> None:
    settings = aws_settings(tmp_path)
    resources = aws_resources(settings)
    assert resources.keys() == local_resources(settings).keys()
    expected = {
        "app_source": AppSource,
        "environments": Environments,
        "aws": RealAws,
        "docker": HostDockerEngine,
        "registry": EcrRegistry,
        "provisioner": PulumiProvisioner,
        "api_runtime": LambdaUrlRuntime,
        "site_edge": CloudFrontOriginEdge,
        "readiness": AwsReadiness,
        "targets": EnvTargets,
    }
    assert {key: type(value) for key, value in resources.items()} == expected
    assert resources["aws"].region == "us-east-1"  # from infra/pulumi/Pulumi.*.yaml
    assert resources["aws"].object_acl is None  # the bucket is private behind CloudFront
    assert resources["docker"].base_image() == "public.ecr.aws/lambda/python:3.12"
    provisioner = resources["provisioner"]
    assert isinstance(provisioner.gemini_api_key, dg.EnvVar) and provisioner.gemini_api_key.env_var_name == (
        "GEMINI_API_KEY"
    )
    assert provisioner.registry is resources["registry"] and resources["registry"].aws is resources["aws"]
    assert type(resources_for(settings)["provisioner"]) is PulumiProvisioner


@pytest.mark.usefixtures("offline")
def test_aws_definitions_load_offline_without_credentials_or_cli(tmp_path: Path) -> None:
    loaded = build_defs(aws_settings(tmp_path))
    dg.Definitions.validate_loadable(loaded)
    for name in DEPLOY_JOBS:
        assert loaded.resolve_job_def(name).nodes_in_topological_order


@pytest.mark.usefixtures("offline")
def test_a_rollback_needs_credentials_but_neither_the_gemini_key_nor_pulumi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = aws_settings(tmp_path)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the chain's last resort: no instance role here
    with pytest.raises(AwsCredentialsMissing, match="no AWS credentials found"):
        check_ready(settings, ROLLBACK_JOB)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    check_ready(settings, ROLLBACK_JOB)  # it builds and provisions nothing (the job has no infra stage)
    for building in (DEPLOY_JOB, REDEPLOY_JOB):
        with pytest.raises(SettingsError, match="GEMINI_API_KEY is not set"):
            check_ready(settings, building)


def test_a_daemon_that_cannot_build_on_aws_holds_a_push_instead_of_failing_it(
    tmp_path: Path, repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensors ask what the CLI asks before a building run: without the Gemini key or the Pulumi CLI (not
    on PATH), a push to main requests no run, says why, and keeps the cursor for when it is fixed."""
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(only_git))
    for name in [n for n in __import__("os").environ if n.startswith(("AWS_", "PULUMI_"))]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(target="aws", state_dir=tmp_path / "state", app_remote=str(repo.remote), app_config=None)
    readiness = resources_for(settings)["readiness"]
    with dg.instance_for_test() as instance:
        no_key = tick(settings, instance, "main_push_sensor", None, readiness=readiness)
        monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret-value")
        no_cli = tick(settings, instance, "main_push_sensor", None, readiness=readiness)
    for held in (no_key, no_cli):
        assert held.run_requests == [] and held.cursor is None
        assert "; deploying once the target is back: " in held.skip
    assert "GEMINI_API_KEY is not set" in no_key.skip
    assert "Pulumi CLI not found" in no_cli.skip and "gemini-secret-value" not in no_cli.skip


@pytest.mark.usefixtures("offline")
def test_the_target_switch_is_one_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEREMOTE_TARGET", "aws")
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path))
    assert Settings.from_env().target == "aws"
    assert type(build_defs().resources["provisioner"]) is PulumiProvisioner


def test_stack_files_in_several_regions_are_refused_at_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def policy(region: str):
        return type("P", (), {"stack": type("S", (), {"region": region})()})()

    monkeypatch.setattr(
        settings_module, "load_policies", lambda _dir: {"dev": policy("us-east-1"), "prod": policy("eu-west-1")}
    )
    said = r"one region.*eu-west-1 in Pulumi.prod.yaml; us-east-1 in Pulumi.dev.yaml: set the same aws:region"
    with pytest.raises(SettingsError, match=said):
        settings_module.aws_region(aws_settings(tmp_path))


class FunctionUrl(BaseHTTPRequestHandler):
    """Answers /health like the app behind a Function URL: first not yet (503), then the old release, then new."""

    script: list[tuple[int, str]] = []

    def do_GET(self) -> None:
        status, release = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        body = json.dumps({"release": release, "commit": "abc"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def function_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(lambda_url_runtime, "PAUSE_S", 0.02)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FunctionUrl)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def served(release: str) -> ServedVersion:
    image = ImageRef("code-remote-dev-api", "sha256:" + "a" * 64, "acct.dkr.ecr.us-east-1.amazonaws.com/x", 1)
    return ServedVersion("dev", "code-remote-dev-api", "7", image, {"APP_RELEASE": release, "GEMINI_API_KEY": "k"})


def test_confirm_waits_until_the_url_serves_the_new_release(function_url: str) -> None:
    FunctionUrl.script = [(503, ""), (503, ""), (200, "main-old0000"), (200, "main-new1111")]
    runtime = LambdaUrlRuntime(aws=RealAws(), health_timeout_s=10)
    activation = runtime.confirm(served("main-new1111"), api_url=function_url, health_path="/health")
    assert activation.cold_start_s is not None and 0 < activation.cold_start_s <= activation.seconds
    assert "version 7" in activation.detail and not activation.reused
    assert FunctionUrl.script == [(200, "main-new1111")]


def test_confirm_gives_up_in_bounded_time_naming_what_it_saw(function_url: str) -> None:
    FunctionUrl.script = [(200, "main-old0000")]
    runtime = LambdaUrlRuntime(aws=RealAws(), health_timeout_s=0.5)
    with pytest.raises(
        ApiUnhealthy, match=r"did not answer as main-new1111.*got {'release': 'main-old0000'}"
    ):
        runtime.confirm(served("main-new1111"), api_url=function_url, health_path="/health")


def test_current_reads_the_live_alias_without_the_secret(emulated_aws: MotoAws) -> None:
    lam, iam = emulated_aws.client("lambda"), emulated_aws.client("iam")
    role = iam.create_role(RoleName="current-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    name = stack_outputs.lambda_function_name("staging")
    lam.create_function(
        FunctionName=name,
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/code-remote-staging-api@sha256:" + "d" * 64},
        Role=role,
        Environment={"Variables": {"APP_RELEASE": "v1.2.3", "GEMINI_API_KEY": "do-not-show"}},
    )
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name=stack_outputs.LIVE_ALIAS, FunctionVersion=version)

    current = LambdaUrlRuntime(aws=emulated_aws).current("staging")

    assert current is not None and current["version"] == version and current["release"] == "v1.2.3"
    assert current["digest"].startswith("sha256:")
    assert "do-not-show" not in json.dumps(current)
    assert LambdaUrlRuntime(aws=emulated_aws).current("prod") is None


def test_traffic_reads_cloudwatch_per_executed_version_of_the_alias(emulated_aws: MotoAws) -> None:
    lam, iam, cw = emulated_aws.client("lambda"), emulated_aws.client("iam"), emulated_aws.client("cloudwatch")
    role = iam.create_role(RoleName="traffic-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    name = stack_outputs.lambda_function_name("prod")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/r@sha256:" + "e" * 64
    lam.create_function(FunctionName=name, PackageType="Image", Role=role, Code={"ImageUri": image})
    old = lam.publish_version(FunctionName=name)["Version"]
    lam.update_function_configuration(FunctionName=name, Description="the canary")
    new = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name=stack_outputs.LIVE_ALIAS, FunctionVersion=old,
                     RoutingConfig={"AdditionalVersionWeights": {new: 0.1}})  # fmt: skip
    at = datetime.now(UTC) - timedelta(minutes=2)  # inside the window asked for, whatever the clock's rounding
    for version, invocations, errors in ((old, 90, 0), (new, 10, 3)):
        dims = [{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:live"},
                {"Name": "ExecutedVersion", "Value": version}]  # fmt: skip
        cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[
            {"MetricName": "Invocations", "Dimensions": dims, "Value": invocations, "Unit": "Count", "Timestamp": at},
            {"MetricName": "Errors", "Dimensions": dims, "Value": errors, "Unit": "Count", "Timestamp": at},
        ])  # fmt: skip

    figures = LambdaUrlRuntime(aws=emulated_aws).traffic("prod", since=time.time() - 600)

    assert (figures[old].requests, figures[old].errors) == (90, 0)
    assert (figures[new].requests, figures[new].errors) == (10, 3) and figures[new].error_rate == 0.3


def test_cloudfront_follows_the_pointer_once_and_says_what_it_serves(emulated_aws: MotoAws) -> None:
    """The edge's own word on the release: a process killed between the pointer's flip and `follow` leaves
    CloudFront's origin path on the release before, which only reading it back shows. Following again is free."""
    cf = emulated_aws.client("cloudfront")
    origin = {"Id": "site", "DomainName": "site.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    created = cf.create_distribution(DistributionConfig={
        "CallerReference": "edge-test", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "allow-all",
                                 "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })["Distribution"]  # fmt: skip
    outputs = {stack_outputs.CLOUDFRONT_DISTRIBUTION_ID: created["Id"]}
    edge = CloudFrontOriginEdge(aws=emulated_aws)
    assert edge.serves("dev", outputs) is None  # nothing followed yet
    assert edge.follow("dev", outputs, "v1.0.0").endswith("serves origin path /_releases/v1.0.0")
    assert edge.serves("dev", outputs) == "v1.0.0"
    etag = cf.get_distribution_config(Id=created["Id"])["ETag"]
    assert "already serves" in edge.follow("dev", outputs, "v1.0.0")
    assert cf.get_distribution_config(Id=created["Id"])["ETag"] == etag  # no update, no redeploy of the edge
    edge.follow("dev", outputs, "v1.1.0")
    assert edge.serves("dev", outputs) == "v1.1.0"
