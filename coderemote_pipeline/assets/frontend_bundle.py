"""frontend_bundle: the release's frontend files, stored as a snapshot in the env's bucket, not yet live."""

import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.assets.stage import (
    STAGE_KWARGS,
    Stopwatch,
    commit_for,
    deploy_stage,
    deployment,
    previous,
    upstream,
)
from coderemote_pipeline.ledger.records import BundleRecord, StackRecord
from coderemote_pipeline.ledger.stages import deployed_elsewhere
from coderemote_pipeline.resources.app_source import AppSource, FrontendEnvMode
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import stack_outputs as out


@dg.asset(name=names.FRONTEND_BUNDLE, deps=[infra_stack], kinds={"s3", "npm"}, group_name="frontend", **STAGE_KWARGS)
@deploy_stage
def frontend_bundle(
    context: dg.AssetExecutionContext, app_source: AppSource, aws: AwsResource, environments: Environments
) -> dg.MaterializeResult:
    """The release's snapshot under `_releases/<release>/` in the env's bucket: kept if it is there and whole,
    else built once per source tree (plus the env's config.json) and uploaded, only the bytes the bucket lacks.
    Users still get the previous release: traffic_shift switches the site."""
    deploy = commit_for(context, app_source, deployment(context, environments))
    outputs, timer, s3 = upstream(context, StackRecord).stack_outputs, Stopwatch(), aws.client("s3")
    bucket, release, commit = outputs[out.FRONTEND_BUCKET], deploy.release.key, deploy.commit
    with timer.step("lookup"):
        manifest = store.read_manifest(s3, bucket, release)
        if manifest is not None and manifest.get("commit", commit) != commit:
            manifest = _moved_tag(context, s3, bucket, release, manifest["commit"], commit)
    uploaded: list[ff.BundleFile] = []
    outcome, ahead = "snapshot kept", None
    if manifest is None:
        if previous(context, BundleRecord) is not None:
            context.log.warning(f"the bundle of {release} is gone from {bucket}: rebuilding it from {commit[:12]}")
        build_time = app_source.frontend_env_mode is FrontendEnvMode.BUILD_TIME
        build_env = app_source.build_env(release=release, api_url=outputs[out.API_URL], env=deploy.env)
        with timer.step("build"):
            build = app_source.build_frontend(commit, build_env, by=context.run.run_id)
        if build.ahead:
            ahead = build
            context.log.info(f"built beside the image in {build.seconds:.2f} s; waited {build.waited_s:.2f} s for it")
        bundle = ff.collect(build.directory)
        config = [] if build_time else [ff.runtime_config(release=release, api_url=outputs[out.API_URL],
                                                          env=deploy.env, commit=commit)]  # fmt: skip
        with timer.step("upload"):
            manifest, uploaded = store.store_snapshot(s3, bucket, release, bundle + config, {
                "commit": commit, "build_key": build.build_key, "build_mode": app_source.frontend_env_mode.value,
                "content_hash": ff.content_hash(bundle)}, aws.object_acl)  # fmt: skip
        origin = deployed_elsewhere(context.instance, BundleRecord, commit, deploy.env, "content_hash",
                                    manifest["content_hash"])  # fmt: skip
        outcome = "built" if build.built else "reused build"
        if not build.built and origin and not build_time:
            outcome = f"promoted from {origin[0]} (run {origin[1][:8]})"  # the same bundle bytes, not rebuilt
    context.log.info(f"{outcome}: {len(uploaded)} file(s) uploaded to s3://{bucket}/{store.snapshot_key(release, '')}")
    index = next((f for f in manifest["files"] if f["path"] == "index.html"), None)
    record = BundleRecord(
        outcome=outcome, build_mode=manifest["build_mode"], build_key=manifest["build_key"],
        content_hash=manifest["content_hash"], index_sha256=index["sha256"] if index else "", release=release,
        commit=commit, bucket=bucket, files=len(manifest["files"]), files_uploaded=len(uploaded),
        bytes_uploaded=sum(len(f.data) for f in uploaded), bundle_bytes=sum(f["size"] for f in manifest["files"]),
        frontend_url=outputs[out.FRONTEND_URL],
    )  # fmt: skip
    # The stage's own work: a build made ahead ran beside the image build, so the step's wall holds only the wait.
    own = timer.metadata()
    if ahead is not None:
        own = {**own, "build_ahead_s": round(ahead.seconds, 3), "build_waited_s": round(ahead.waited_s, 3)}
    return dg.MaterializeResult(metadata={**record.to_metadata(), **own},
                                data_version=dg.DataVersion(manifest["content_hash"]))  # fmt: skip


def _moved_tag(context: dg.AssetExecutionContext, s3, bucket: str, release: str, built: str, commit: str) -> None:
    """The release's snapshot was built from another commit (its tag moved): kept, the site would serve the old
    commit's files beside the new commit's API. Rebuilt over it, unless the env serves it now: rewriting a live
    release's files would change the site before the switch."""
    if store.live_release(s3, bucket) == release:
        raise dg.Failure(
            description=f"{release} is live here from commit {built[:12]}, and its tag now names {commit[:12]}: the "
            "files of the live release are not rewritten in place (users would get them before the API). Tag the "
            "commit as a new version and deploy that",
            allow_retries=False,
        )
    context.log.warning(f"the snapshot of {release} was built from commit {built[:12]}; its tag now names "
                        f"{commit[:12]}: rebuilding it")  # fmt: skip
