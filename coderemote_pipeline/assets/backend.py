"""The backend branch: the API image of the release's commit, then the Lambda version serving it."""

import tempfile
from pathlib import Path

import botocore.exceptions
import dagster as dg

from coderemote_pipeline.actions.lambda_versions import publish_release_version
from coderemote_pipeline.assets.common import (
    STAGE_KWARGS,
    Stopwatch,
    commit_for,
    deployment,
    partition_metadata,
    stack_outputs,
    upstream_metadata,
)
from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.assets.retries import permanent_failures_fail_fast
from coderemote_pipeline.ledger.gate import deployed_elsewhere, require_verified
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource, error_code
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.image_registry import ImageRef, ImageRegistry
from coderemote_pipeline.resources.runtime import Activation, ApiRuntime, ApiUnhealthy, ServedVersion
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.partitions import ENVIRONMENTS


def _build_tag(build_key: str) -> str:
    return f"build-{build_key[:16]}"


def _recorded_digest(context: dg.AssetExecutionContext, commit: str) -> str | None:
    """The digest this partition's last materialization recorded, if it was for the same commit."""
    previous = partition_metadata(context, "api_image") or {}
    return previous.get("digest") if previous.get("commit") == commit else None


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
@permanent_failures_fail_fast
def api_image(
    context: dg.AssetExecutionContext, app_source: AppSource, docker: DockerEngine, registry: ImageRegistry
) -> dg.MaterializeResult:
    """The API container image of the release's commit in the env's ECR repository, pinned by digest."""
    env, release = deployment(context)
    outputs = stack_outputs(context)
    repository = outputs[out.ECR_REPOSITORY_NAME]
    timer = Stopwatch()
    with timer.step("resolve"):
        commit = commit_for(context, app_source, release)
        require_verified(context, policy_for(env), commit)
        # A re-run or a rollback: the image this partition recorded, still tagged with the release and still
        # whole, is reused without the engine or a build key (so a newer base image never forces a rebuild).
        recorded = _recorded_digest(context, commit)
        ref = registry.find(repository, release.key) if recorded else None
        if ref is not None and (ref.digest != recorded or not registry.has_layers(ref)):
            context.log.warning(f"{repository}:{release.key} is no longer the recorded {recorded}: re-resolving")
            ref = None
    build_key, outcome = "", "reused"
    tagged = ref is not None
    if ref is None:
        with timer.step("resolve"):
            build_key = app_source.backend_build_key(commit, docker.base_image_id())
            ref = registry.find(repository, _build_tag(build_key))
            if ref is not None and not registry.has_layers(ref):
                ref = None
        if ref is None and recorded:
            context.log.warning(
                f"the image of {release.key} is gone from {repository}: rebuilding it from {commit[:12]}"
            )
    if ref is None:
        with timer.step("promote"):
            source = _promotable(registry, env, _build_tag(build_key))
            if source is None and (
                gone := deployed_elsewhere(context.instance, "api_image", "build_key", build_key, env)
            ):
                context.log.warning(
                    f"the image of commit {commit[:12]} built for {gone[0]} (run {gone[1][:8]}) is gone from its "
                    f"registry: rebuilding it from the commit"
                )
            if source is not None:
                ref = registry.copy(source[1], repository, [_build_tag(build_key), release.key])
                origin = deployed_elsewhere(context.instance, "api_image", "digest", ref.digest, env)
                outcome = f"promoted from {source[0]}" + (f" (run {origin[1][:8]})" if origin else "")
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
            ref = registry.push(docker.client(), built.image_id, repository, [_build_tag(build_key), release.key])
        outcome = "built"
    elif not tagged:
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
            "tags": dg.MetadataValue.json([t for t in (_build_tag(build_key) if build_key else "", release.key) if t]),
            "commit": commit,
            "build_key": build_key,
            "size_bytes": ref.size_bytes,
            "built": outcome == "built",
            "promoted": outcome.startswith("promoted"),
            **timer.metadata(),
        }
    )


@dg.asset(deps=[api_image], kinds={"aws", "lambda"}, group_name="backend", **STAGE_KWARGS)
@permanent_failures_fail_fast
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
            # The alias has moved: the run goes on to smoke_result, which decides with both branches done
            # whether to roll the whole environment back (policy auto_rollback) or to fail saying what is live.
            context.log.error(f"{function}:{outputs[out.LAMBDA_ALIAS_NAME]} → {published.version} is unhealthy: {exc}")
            activation = Activation(False, 0.0, None, f"unhealthy: {exc}", healthy=False)
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
            "api_healthy": activation.healthy,
            "cold_start_s": activation.cold_start_s if activation.cold_start_s is not None else 0.0,
            "release": release.key,
            "commit": commit,
            **published.seconds,
            **timer.metadata(),
        }
    )
