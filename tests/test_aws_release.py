"""The release checklist on a real AWS account: the whole graph, on the aws target, for dev and then staging.

Behind the `aws` marker: conftest.py skips these without AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID) and
the Pulumi CLI on PATH; they also need a Docker engine that can pull `public.ecr.aws/lambda/python:3.12`.
They deploy to the `dev` and `staging` stacks of the Pulumi backend you are logged in to, in the account your
credentials reach: run them in a sandbox account (docs/aws.md, "Release checklist"). By default the app is
`examples/code-remote-app`; CODEREMOTE_AWS_TEST_APP_REMOTE deploys another remote with the same contract.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import dagster as dg
import docker
import pytest
import yaml

from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, make_app_repo
from coderemote_pipeline.usecases.deploy import DeployOutcome, run_deployment

pytestmark = pytest.mark.aws


def _get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def aws_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"needs a Docker engine to build the API image: {exc}")
    root = tmp_path_factory.mktemp("aws-release")
    remote = os.environ.get("CODEREMOTE_AWS_TEST_APP_REMOTE")
    if not remote:
        make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
        remote = str(root / "app.git")
    # The example app never calls Gemini: any value proves the key travels as a Pulumi secret.
    os.environ.setdefault("GEMINI_API_KEY", "release-checklist-placeholder")
    return Settings(target="aws", state_dir=root / "state", app_remote=remote, app_config=None)


@pytest.fixture(scope="module")
def aws_instance(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("aws-dagster-home")
    prepare_home(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture(scope="module")
def dev_release(aws_settings: Settings, aws_instance) -> DeployOutcome:
    outcome = run_deployment("dev", "main", settings=aws_settings, instance=aws_instance, echo=print)
    assert outcome.success, outcome.failure
    return outcome


def test_dev_release_serves_this_release_over_https(dev_release: DeployOutcome) -> None:
    outputs = dev_release.stages["infra_stack"]["stack_outputs"]
    assert outputs["api_url"].startswith("https://") and ".lambda-url." in outputs["api_url"]
    assert outputs["frontend_url"].startswith("https://") and outputs["frontend_url"].endswith(".cloudfront.net")
    assert dev_release.stages["smoke_result"]["passed"] is True
    status, body = _get(outputs["api_url"] + "/health")
    assert status == 200 and json.loads(body)["release"] == dev_release.release
    status, body = _get(outputs["frontend_url"] + "/config.json")
    assert status == 200 and json.loads(body)["release"] == dev_release.release
    image = dev_release.stages["api_image"]
    assert image["image_uri"].endswith(f"@{image['digest']}") and ".dkr.ecr." in image["image_uri"]
    version = dev_release.stages["lambda_version"]
    assert version["alias"] == "live" and version["image_digest"] == image["digest"]


def test_redeploy_skips_pulumi_and_builds_nothing(aws_settings: Settings, aws_instance, dev_release) -> None:
    again = run_deployment("dev", "main", settings=aws_settings, instance=aws_instance, echo=print)
    assert again.success, again.failure
    assert again.stages["infra_stack"]["change_count"] == 0  # `pulumi up` skipped: program and config unchanged
    assert again.stages["api_image"]["digest"] == dev_release.stages["api_image"]["digest"]
    assert again.stages["api_image"]["built"] is False


def test_staging_promotes_the_very_digest_dev_tested(aws_settings: Settings, aws_instance, dev_release) -> None:
    staging = run_deployment("staging", "main", settings=aws_settings, instance=aws_instance, echo=print)
    assert staging.success, staging.failure
    assert staging.stages["api_image"]["outcome"] in ("promoted from dev", "reused")
    assert staging.stages["api_image"]["digest"] == dev_release.stages["api_image"]["digest"]
    assert staging.stages["smoke_result"]["passed"] is True


def test_the_gemini_key_is_a_secret_in_the_stack_file(dev_release: DeployOutcome) -> None:
    stack_file = Path(__file__).resolve().parents[1] / "infra" / "pulumi" / "Pulumi.dev.yaml"
    assert os.environ["GEMINI_API_KEY"] not in stack_file.read_text()
    config = yaml.safe_load(stack_file.read_text())["config"]
    assert set(config["code-remote:gemini_api_key"]) == {"secure"}
    assert config["code-remote:bootstrap_image_uri"].endswith("/code-remote-dev-api:bootstrap")
