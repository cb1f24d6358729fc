"""The frontend branch: the bundle of the release's commit in the env's bucket, then the CDN invalidation."""

import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.cdn import invalidate
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
from coderemote_pipeline.resources.app_source import AppSource, FrontendEnvMode
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.environments import policy_for


@dg.asset(deps=[infra_stack], kinds={"s3", "npm"}, group_name="frontend", **STAGE_KWARGS)
@permanent_failures_fail_fast
def frontend_bundle(context: dg.AssetExecutionContext, app_source: AppSource, aws: AwsResource) -> dg.MaterializeResult:
    """The release's frontend files live in the env's bucket, from the release's snapshot kept beside them."""
    env, release = deployment(context)
    outputs = stack_outputs(context)
    timer = Stopwatch()
    s3 = aws.client("s3")
    bucket = outputs[out.FRONTEND_BUCKET]
    commit = commit_for(context, app_source, release)
    require_verified(context, policy_for(env), commit)
    with timer.step("lookup"):
        manifest = store.read_manifest(s3, bucket, release.key)
    uploaded: list[ff.BundleFile] = []
    if manifest is not None:
        outcome = "restored from snapshot"
    else:
        if partition_metadata(context, "frontend_bundle") is not None:
            context.log.warning(f"the bundle of {release.key} is gone from {bucket}: rebuilding it from {commit[:12]}")
        build_time = app_source.frontend_env_mode is FrontendEnvMode.BUILD_TIME
        build_env = {"APP_RELEASE": release.key, "API_URL": outputs[out.API_URL], "APP_ENV": env} if build_time else {}
        with timer.step("build"):
            build = app_source.build_frontend(commit, build_env)
        bundle = ff.collect(build.directory)
        files = list(bundle)
        if not build_time:
            files.append(ff.runtime_config(release=release.key, api_url=outputs[out.API_URL], env=env, commit=commit))
        with timer.step("upload"):
            manifest, uploaded = store.store_snapshot(
                s3,
                bucket,
                release.key,
                files,
                {
                    "commit": commit,
                    "build_key": build.build_key,
                    "build_mode": app_source.frontend_env_mode.value,
                    "content_hash": ff.content_hash(bundle),
                },
            )
        origin = deployed_elsewhere(context.instance, "frontend_bundle", "content_hash", manifest["content_hash"], env)
        if build.built:
            outcome = "built"
        elif origin and manifest["build_mode"] == FrontendEnvMode.RUNTIME_CONFIG.value:
            outcome = f"promoted from {origin[0]} (run {origin[1][:8]})"  # the same bundle bytes, not rebuilt
        else:
            outcome = "reused build"
    with timer.step("activate"):
        activation = store.activate(s3, bucket, manifest, aws.object_acl)
    if not activation.changed_paths and activation.previous_release == release.key:
        outcome = "unchanged"
    context.log.info(
        f"{outcome}: {len(uploaded)} file(s) uploaded, {len(activation.changed_paths)} live path(s) changed "
        f"(was {activation.previous_release or 'nothing'})"
    )
    index = next((f for f in manifest["files"] if f["path"] == "index.html"), None)
    return dg.MaterializeResult(
        metadata={
            "outcome": outcome,
            "build": "built" if outcome == "built" else "reused",
            "build_mode": manifest["build_mode"],
            "build_key": manifest["build_key"],
            "previous_release": activation.previous_release or "",
            "files": len(manifest["files"]),
            "files_uploaded": len(uploaded),
            "bytes_uploaded": sum(len(f.data) for f in uploaded),
            "bundle_bytes": sum(f["size"] for f in manifest["files"]),
            "changed_paths": dg.MetadataValue.json(activation.changed_paths),
            "content_hash": manifest["content_hash"],
            "index_sha256": index["sha256"] if index else "",
            "bucket": bucket,
            "snapshot": f"s3://{bucket}/{store.snapshot_key(release.key, '')}",
            "frontend_url": dg.MetadataValue.url(outputs[out.FRONTEND_URL]),
            "release": release.key,
            "commit": commit,
            **timer.metadata(),
        }
    )


@dg.asset(deps=[frontend_bundle], kinds={"aws", "cloudfront"}, group_name="frontend", **STAGE_KWARGS)
@permanent_failures_fail_fast
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
    # The same run retrying the step reuses its invalidation instead of creating another.
    done = invalidate(aws.client("cloudfront"), distribution, paths, f"{context.run_id}-{context.partition_key}")
    return dg.MaterializeResult(
        metadata={
            "invalidation_id": done.id,
            "distribution_id": distribution,
            "paths": dg.MetadataValue.json(paths),
            "path_count": len(paths),
            "status": done.status,
            "seconds": round(done.seconds, 3),
        }
    )
