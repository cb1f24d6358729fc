"""Putting an environment back on a release it already ran: nothing is built, nothing is published.

The alias moves to that release's published version, the API runtime follows it, the live site is restored from
the release's snapshot in the bucket, and the CDN forgets what changed. Used by the automatic rollback of a failed
smoke test; a manual rollback is a redeploy of the old partition, which reaches the same state through the stages.
"""

import time
from dataclasses import dataclass
from typing import Any

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.cdn import invalidate
from coderemote_pipeline.ledger.live import release_of_version
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.image_registry import ImageRef
from coderemote_pipeline.resources.runtime import ApiRuntime, ServedVersion
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import stack_outputs as out


@dataclass(frozen=True)
class Restored:
    version: str
    release: str
    commit: str
    digest: str
    frontend_release: str | None
    changed_paths: list[str]
    seconds: float


def image_of_version(lam: Any, outputs: dict[str, str], version: str) -> tuple[ImageRef, dict[str, str], str]:
    """The image (by digest), environment and description a published version runs.

    The digest comes from the version's CodeSha256 (what Lambda pinned at publish time), not from get_function's
    ImageUri, which the emulator reports for $LATEST whatever the qualifier.
    """
    config = lam.get_function_configuration(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Qualifier=version)
    digest = config["CodeSha256"]
    image = ImageRef(
        outputs[out.ECR_REPOSITORY_NAME],
        digest if digest.startswith("sha256:") else f"sha256:{digest}",
        outputs[out.ECR_REPOSITORY_URL],
        0,
    )
    return image, dict(config.get("Environment", {}).get("Variables", {})), config.get("Description", "")


def restore(
    *,
    lam: Any,
    s3: Any,
    cf: Any,
    api_runtime: ApiRuntime,
    app_source: AppSource,
    env: str,
    outputs: dict[str, str],
    version: str,
    frontend_release: str | None,
    acl: str | None,
    caller_reference: str,
) -> Restored:
    started = time.monotonic()
    function = outputs[out.LAMBDA_FUNCTION_NAME]
    image, variables, description = image_of_version(lam, outputs, version)
    lam.update_alias(FunctionName=function, Name=outputs[out.LAMBDA_ALIAS_NAME], FunctionVersion=version)
    api_runtime.activate(
        ServedVersion(env, function, version, image, variables),
        api_url=outputs[out.API_URL],
        command=app_source.container_command,
        health_path=app_source.health_path,
    )
    changed: list[str] = []
    bucket = outputs[out.FRONTEND_BUCKET]
    manifest = store.read_manifest(s3, bucket, frontend_release) if frontend_release else None
    if manifest is not None:
        changed = store.activate(s3, bucket, manifest, acl).changed_paths
        paths = ff.invalidation_paths(changed)
        if paths:
            invalidate(cf, outputs[out.CLOUDFRONT_DISTRIBUTION_ID], paths, caller_reference)
    release, commit = release_of_version(description)
    return Restored(
        version=version,
        release=release,
        commit=commit,
        digest=image.digest,
        frontend_release=frontend_release if manifest is not None else None,
        changed_paths=changed,
        seconds=time.monotonic() - started,
    )
