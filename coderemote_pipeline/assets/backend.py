"""The backend branch: the API image of the release's commit, then the Lambda version serving it."""

import tempfile
from pathlib import Path

import botocore.exceptions
import dagster as dg

from coderemote_pipeline import stack_outputs as out
from coderemote_pipeline.assets.common import (
    STAGE_KWARGS,
    Stopwatch,
    commit_for,
    deployment,
    stack_outputs,
    upstream_metadata,
)
from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.lambda_deploy import publish_release_version
from coderemote_pipeline.partitions import ENVIRONMENTS
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource, error_code
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.registry import ImageRef, ImageRegistry
from coderemote_pipeline.resources.runtime import ApiRuntime, ApiUnhealthy, ServedVersion


def _promotable(registry: ImageRegistry, env: str, build_tag: str) -> tuple[str, ImageRef] | None:
    """An image with the same build key already pushed for another environment."""
    for other in ENVIRONMENTS:
        if other == env:
            continue
        try:
            ref = registry.find(out.ecr_repository_name(other), build_tag)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "RepositoryNotFoundException":
                continue  # that environment was never provisioned
            raise
        if ref is not None and registry.has_layers(ref):
            return other, ref
    return None


@dg.asset(deps=[infra_stack], kinds={"docker", "ecr"}, group_name="backend", **STAGE_KWARGS)
def api_image(
    context: dg.AssetExecutionContext, app_source: AppSource, docker: DockerEngine, registry: ImageRegistry
) -> dg.MaterializeResult:
    """The API container image of the release's commit in the env's ECR repository, pinned by digest."""
    env, release = deployment(context)
    outputs = stack_outputs(context)
    repository = outputs[out.ECR_REPOSITORY_NAME]
    timer = Stopwatch()
    with timer.step("resolve"):
        base_image_id = docker.base_image_id()  # first: no engine means nothing below can work
        commit = commit_for(context, app_source, release)
        build_key = app_source.backend_build_key(commit, base_image_id)
        build_tag = f"build-{build_key[:16]}"
        ref = registry.find(repository, build_tag)
    outcome = "reused"
    if ref is not None and not registry.has_layers(ref):
        context.log.warning(f"{ref.uri} is in ECR but its layers are gone from the registry: rebuilding")
        ref = None
    if ref is None:
        with timer.step("promote"):
            source = _promotable(registry, env, build_tag)
            if source is not None:
                ref = registry.copy(source[1], repository, [build_tag, release.key])
                outcome = f"promoted from {source[0]}"
    if ref is None:
        with tempfile.TemporaryDirectory(prefix="coderemote-build-") as tmp, timer.step("build"):
            context_dir = app_source.export_backend(commit, Path(tmp) / "context")
            built = docker.build(
                context_dir,
                app_source.dockerfile,
                tag=f"coderemote-build:{build_key[:16]}",
                buildargs={"BASE_IMAGE": docker.base_image(), "GIT_COMMIT": commit},
                labels={"org.opencontainers.image.revision": commit, "coderemote.build-key": build_key},
            )
        with timer.step("push"):
            ref = registry.push(docker.client(), built.image_id, repository, [build_tag, release.key])
        outcome = "built"
    else:
        with timer.step("tag"):
            registry.add_tags(ref, [release.key])
    context.log.info(f"{outcome}: {ref.uri} ({release.key}, commit {commit[:12]})")
    return dg.MaterializeResult(
        metadata={
            "outcome": outcome,
            "image_uri": ref.uri,
            "digest": ref.digest,
            "repository": ref.repository,
            "repository_uri": ref.repository_uri,
            "tags": dg.MetadataValue.json([build_tag, release.key]),
            "commit": commit,
            "build_key": build_key,
            "size_bytes": ref.size_bytes,
            "built": outcome == "built",
            **timer.metadata(),
        }
    )


@dg.asset(deps=[api_image], kinds={"aws", "lambda"}, group_name="backend", **STAGE_KWARGS)
def lambda_version(
    context: dg.AssetExecutionContext,
    aws: AwsResource,
    api_runtime: ApiRuntime,
    app_source: AppSource,
) -> dg.MaterializeResult:
    """A published Lambda version running the release's image digest, with the `live` alias on it."""
    env, release = deployment(context)
    outputs = stack_outputs(context)
    image_meta = upstream_metadata(context, "api_image")
    image = ImageRef(
        image_meta["repository"], image_meta["digest"], image_meta["repository_uri"], int(image_meta["size_bytes"])
    )
    commit = str(image_meta["commit"])
    timer = Stopwatch()
    function = outputs[out.LAMBDA_FUNCTION_NAME]
    with timer.step("publish"):
        published = publish_release_version(
            aws.client("lambda"),
            function=function,
            alias=outputs[out.LAMBDA_ALIAS_NAME],
            image=image,
            release=release.key,
            commit=commit,
            env=env,
        )
    context.log.info(published.summary())
    with timer.step("activate"):
        try:
            activation = api_runtime.activate(
                ServedVersion(env, function, published.version, image, published.variables),
                api_url=outputs[out.API_URL],
                command=app_source.container_command,
                health_path=app_source.health_path,
            )
        except ApiUnhealthy as exc:
            # Say exactly what is live now: the alias has moved, so the env serves this release, unhealthy.
            raise dg.Failure(
                description=f"{env}: alias {function}:{outputs[out.LAMBDA_ALIAS_NAME]} now points to version "
                f"{published.version} ({release.key}), previously {published.previous_version}, and the API is "
                f"not healthy. {exc}",
                metadata={"version": int(published.version), "previous_version": published.previous_version},
                allow_retries=False,
            ) from exc
    context.log.info(activation.detail)
    return dg.MaterializeResult(
        metadata={
            "function": function,
            "version": int(published.version),
            "previous_version": published.previous_version,
            "alias": outputs[out.LAMBDA_ALIAS_NAME],
            "alias_moved": published.alias_moved,
            "version_reused": published.reused,
            "image_digest": image.digest,
            "api_url": dg.MetadataValue.url(outputs[out.API_URL]),
            "runtime": activation.detail,
            "cold_start_s": activation.cold_start_s if activation.cold_start_s is not None else 0.0,
            "release": release.key,
            "commit": commit,
            **published.seconds,
            **timer.metadata(),
        }
    )
