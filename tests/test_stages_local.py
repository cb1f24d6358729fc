"""Each stage on the real local stack, one materialization at a time, then checked against the stack itself."""

import json
import urllib.request

import dagster as dg
import docker
import pytest

from coderemote_pipeline.assets.jobs import STAGE_ASSETS as STAGES
from coderemote_pipeline.resources.aws import EmulatorAws
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.targets import local_resources
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.frontend_files import NO_CACHE
from coderemote_pipeline.rules.release_keys import commit_release_key
from coderemote_pipeline.usecases.demo import commit_and_push

pytestmark = pytest.mark.stack


def _materialize(name, key, settings, instance):
    result = dg.materialize(
        STAGES, selection=[name], partition_key=key, resources=local_resources(settings), instance=instance
    )
    assert result.success
    mats = [m for m in result.asset_materializations_for_node(name) if m.asset_key.to_user_string() == name]
    return {k: v.value for k, v in mats[0].metadata.items()}


@pytest.fixture(scope="module")
def release(app_remote, instance):
    clone = app_remote[1]
    (clone / "backend" / "app" / "stage_test.txt").write_text("stage test\n")
    (clone / "frontend" / "src" / "style.css").write_text("/* stage test */\nbody { margin: 0; }\n")
    commit = commit_and_push(clone, "stage test commit")
    key = commit_release_key("main", commit)
    instance.add_dynamic_partitions("release", [key])
    return key, commit


def test_each_stage_against_the_live_stack(settings, instance, release, local_stack):
    key, commit = release
    partition = f"dev|{key}"
    aws = EmulatorAws(stack=LocalStackResource(state_dir=str(settings.state_dir)))

    infra = _materialize("infra_stack", partition, settings, instance)
    outputs = infra["stack_outputs"]
    assert set(outputs) == out.ALL_KEYS
    ecr, lam, s3, cf = (aws.client(s) for s in ("ecr", "lambda", "s3", "cloudfront"))
    assert ecr.describe_repositories(repositoryNames=["code-remote-dev-api"])["repositories"]
    assert lam.get_alias(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Name="live")["AliasArn"]
    assert s3.head_bucket(Bucket=outputs[out.FRONTEND_BUCKET])
    assert cf.get_distribution(Id=outputs[out.CLOUDFRONT_DISTRIBUTION_ID])["Distribution"]["DomainName"]
    again = _materialize("infra_stack", partition, settings, instance)
    assert again["change_count"] == 0 and again["stack_outputs"] == outputs

    image = _materialize("api_image", partition, settings, instance)
    assert image["outcome"] == "built" and image["commit"] == commit
    detail = ecr.describe_images(repositoryName="code-remote-dev-api", imageIds=[{"imageTag": key}])["imageDetails"]
    assert detail[0]["imageDigest"] == image["digest"]
    engine = docker.DockerClient(base_url=local_stack.docker_host)
    pulled = engine.images.get(f"{local_stack.registry_host}/code-remote-dev-api@{image['digest']}")
    assert pulled.labels["org.opencontainers.image.revision"] == commit

    live_before = lam.get_alias(FunctionName="code-remote-dev-api", Name="live")["FunctionVersion"]
    version = _materialize("lambda_version", partition, settings, instance)
    # Published, not live: users switch in traffic_shift, once the site is ready too.
    assert lam.get_alias(FunctionName="code-remote-dev-api", Name="live")["FunctionVersion"] == live_before
    published = lam.get_function_configuration(FunctionName="code-remote-dev-api", Qualifier=str(version["version"]))
    assert published["CodeSha256"] in (image["digest"], image["digest"].removeprefix("sha256:"))
    assert published["Description"].startswith(key)

    bundle = _materialize("frontend_bundle", partition, settings, instance)
    assert bundle["files_uploaded"] >= 1 and bundle["outcome"] == "built"
    snapshot = f"_releases/{key}/"
    hashed = next(k["Key"] for k in s3.list_objects_v2(Bucket=outputs[out.FRONTEND_BUCKET], Prefix=snapshot)["Contents"]
                  if k["Key"].endswith(".css"))  # fmt: skip
    head = s3.head_object(Bucket=outputs[out.FRONTEND_BUCKET], Key=hashed)
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["ContentType"] == "text/css; charset=utf-8"

    shift = _materialize("traffic_shift", partition, settings, instance)
    alias = lam.get_alias(FunctionName="code-remote-dev-api", Name="live")
    assert alias["FunctionVersion"] == str(version["version"]) == str(shift["version"])
    assert shift["site_release"] == key and "config.json" in shift["changed_paths"]
    with urllib.request.urlopen(outputs[out.API_URL] + "/health", timeout=5) as response:
        health = json.load(response)
    assert (health["release"], health["commit"], health["env"]) == (key, commit, "dev")
    # The site went live by one write of its pointer; the HTML stays in the release's snapshot.
    pointer = s3.head_object(Bucket=outputs[out.FRONTEND_BUCKET], Key="_edge/LIVE")
    assert pointer["Metadata"]["release"] == key
    index = s3.head_object(Bucket=outputs[out.FRONTEND_BUCKET], Key=f"{snapshot}index.html")
    # Browsers revalidate the HTML; the edge keeps it (its cache is keyed by release, and invalidated by path).
    assert (index["CacheControl"], index["ContentType"]) == (NO_CACHE, "text/html; charset=utf-8")
    with urllib.request.urlopen(f"{outputs[out.FRONTEND_URL]}/config.json", timeout=5) as response:
        assert json.load(response)["release"] == key

    invalidation = _materialize("cloudfront_invalidation", partition, settings, instance)
    assert "/config.json" in invalidation["paths"] and invalidation["status"] in ("COMPLETED", "Completed")
    listed = cf.list_invalidations(DistributionId=outputs[out.CLOUDFRONT_DISTRIBUTION_ID])["InvalidationList"]
    assert invalidation["invalidation_id"] in [i["Id"] for i in listed["Items"]]

    smoke = _materialize("smoke_result", partition, settings, instance)
    assert smoke["passed"] is True
    assert {c["name"] for c in smoke["checks"]} == {"api_health", "frontend_index", "frontend_config"}


def test_prod_refuses_a_commit_partition_at_the_asset(settings, instance, release):
    key, _ = release
    result = dg.materialize(
        STAGES,
        selection=["infra_stack"],
        partition_key=f"prod|{key}",
        resources=local_resources(settings),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "prod deploys only stable version tags" in str(failure.message) + str(failure.cause)
