"""The frontend branch: the bundle of the release's commit in the env's bucket, then the CDN invalidation."""

import time

import dagster as dg

from coderemote_pipeline import frontend_files as ff
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
from coderemote_pipeline.resources.app_source import AppSource, FrontendEnvMode
from coderemote_pipeline.resources.aws import AwsResource

INVALIDATION_TIMEOUT_S = 20 * 60
_DONE = {"Completed", "COMPLETED"}  # AWS says Completed; the emulator says COMPLETED


def _remote_etags(s3, bucket: str) -> dict[str, str]:
    etags: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(ff.RELEASES_PREFIX):
                etags[obj["Key"]] = obj["ETag"]
    return etags


@dg.asset(deps=[infra_stack], kinds={"s3", "npm"}, group_name="frontend", **STAGE_KWARGS)
def frontend_bundle(context: dg.AssetExecutionContext, app_source: AppSource, aws: AwsResource) -> dg.MaterializeResult:
    """The release's frontend files in the env's bucket, with their content types and cache headers."""
    env, release = deployment(context)
    outputs = stack_outputs(context)
    timer = Stopwatch()
    commit = commit_for(context, app_source, release)
    build_time = app_source.frontend_env_mode is FrontendEnvMode.BUILD_TIME
    build_env = {"APP_RELEASE": release.key, "API_URL": outputs[out.API_URL], "APP_ENV": env} if build_time else {}
    with timer.step("build"):
        build = app_source.build_frontend(commit, build_env)
    bundle = ff.collect(build.directory)
    files = list(bundle)
    if not build_time:
        files.append(ff.runtime_config(release=release.key, api_url=outputs[out.API_URL], env=env, commit=commit))
    s3 = aws.client("s3")
    bucket = outputs[out.FRONTEND_BUCKET]
    with timer.step("upload"):
        to_upload = ff.changed(files, _remote_etags(s3, bucket))
        acl = {"ACL": aws.object_acl} if aws.object_acl else {}
        for f in to_upload:
            s3.put_object(
                Bucket=bucket,
                Key=f.path,
                Body=f.data,
                ContentType=ff.content_type(f.path),
                CacheControl=ff.cache_control(f.path),
                **acl,
            )
    changed_paths = [f.path for f in to_upload]
    context.log.info(
        f"{'built' if build.built else 'reused build'} {build.build_key}; uploaded {len(to_upload)}/{len(files)} files"
    )
    index = next((f for f in files if f.path == "index.html"), None)
    return dg.MaterializeResult(
        metadata={
            "build": "built" if build.built else "reused",
            "build_mode": app_source.frontend_env_mode.value,
            "build_key": build.build_key,
            "files": len(files),
            "files_uploaded": len(to_upload),
            "bytes_uploaded": sum(len(f.data) for f in to_upload),
            "bundle_bytes": sum(len(f.data) for f in bundle),
            "changed_paths": dg.MetadataValue.json(changed_paths),
            "content_hash": ff.content_hash(bundle),
            "index_sha256": index.sha256 if index else "",
            "bucket": bucket,
            "frontend_url": dg.MetadataValue.url(outputs[out.FRONTEND_URL]),
            "release": release.key,
            "commit": commit,
            **timer.metadata(),
        }
    )


@dg.asset(deps=[frontend_bundle], kinds={"aws", "cloudfront"}, group_name="frontend", **STAGE_KWARGS)
def cloudfront_invalidation(context: dg.AssetExecutionContext, aws: AwsResource) -> dg.MaterializeResult:
    """The CDN's cached copies of what changed, invalidated and confirmed complete."""
    deployment(context)
    outputs = stack_outputs(context)
    paths = ff.invalidation_paths(list(upstream_metadata(context, "frontend_bundle")["changed_paths"]))
    distribution = outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
    if not paths:
        context.log.info("no cached path changed: nothing to invalidate")
        return dg.MaterializeResult(
            metadata={"invalidation_id": "", "paths": dg.MetadataValue.json([]), "path_count": 0, "seconds": 0.0}
        )
    cf = aws.client("cloudfront")
    started = time.monotonic()
    invalidation = cf.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            # The same run retrying the step reuses its invalidation instead of creating another.
            "CallerReference": f"{context.run_id}-{context.partition_key}",
        },
    )["Invalidation"]
    status, delay = invalidation["Status"], 0.2
    while status not in _DONE:
        if time.monotonic() - started > INVALIDATION_TIMEOUT_S:
            raise dg.Failure(f"invalidation {invalidation['Id']} of {distribution} still {status} after 20 min")
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
        status = cf.get_invalidation(DistributionId=distribution, Id=invalidation["Id"])["Invalidation"]["Status"]
    return dg.MaterializeResult(
        metadata={
            "invalidation_id": invalidation["Id"],
            "distribution_id": distribution,
            "paths": dg.MetadataValue.json(paths),
            "path_count": len(paths),
            "status": status,
            "seconds": round(time.monotonic() - started, 3),
        }
    )
