"""api_image: the API container image of the release's commit in the env's repository, pinned by digest."""

import dagster as dg

from coderemote_pipeline.actions import checks_ahead, images
from coderemote_pipeline.actions.app_checks import check_key, run_in_image, run_on_host
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
from coderemote_pipeline.ledger.records import ImageRecord, StackRecord
from coderemote_pipeline.ledger.stages import deployed_elsewhere
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.image_registry import ImageRegistry
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.app_layout import Side


@dg.asset(name=names.API_IMAGE, deps=[infra_stack], kinds={"docker", "ecr"}, group_name="backend", **STAGE_KWARGS)
@deploy_stage
def api_image(
    context: dg.AssetExecutionContext,
    app_source: AppSource,
    docker: DockerEngine,
    registry: ImageRegistry,
    environments: Environments,
) -> dg.MaterializeResult:
    """The release's image: the one this partition recorded, else the commit's build found here or promoted from
    another environment by digest, else built and pushed."""
    deploy = commit_for(context, app_source, deployment(context, environments))
    outputs = upstream(context, StackRecord).stack_outputs
    repository = outputs[out.ECR_REPOSITORY_NAME]
    release, commit, timer = deploy.release.key, deploy.commit, Stopwatch()
    last = previous(context, ImageRecord)
    with timer.step("resolve"):
        ref = images.recorded(registry, repository, release, last.digest if last and last.commit == commit else None)
        build_key, outcome, tagged = "", "reused", ref is not None
        if ref is None:
            build_key = app_source.backend_build_key(commit, docker.base_image_id())
            ref = images.by_build_key(registry, repository, build_key)
    if ref is None and last is not None and last.commit == commit:
        context.log.warning(f"the image of {release} is gone from {repository}: rebuilding it from {commit[:12]}")
    if ref is None:
        with timer.step("promote"):
            source = images.promotable(registry, deploy.env, build_key)
            if source is None and (gone := deployed_elsewhere(context.instance, ImageRecord, commit, deploy.env,
                                                              "commit", commit)):  # fmt: skip
                context.log.warning(f"the image of commit {commit[:12]} built for {gone[0]} (run {gone[1][:8]}) is "
                                    "gone from its registry: rebuilding it from the commit")  # fmt: skip
            if source is not None:
                ref = images.promote(registry, source[1], repository, build_key, release)
                origin = deployed_elsewhere(context.instance, ImageRecord, commit, deploy.env, "digest", ref.digest)
                outcome = f"promoted from {source[0]}" + (f" (run {origin[1][:8]})" if origin else "")
    if ref is None:
        if _overlaps_branches(context):
            build_env = app_source.build_env(release=release, api_url=outputs[out.API_URL], env=deploy.env)
            app_source.start_frontend_build(commit, build_env, by=context.run.run_id)
            _start_frontend_checks(context, app_source, commit)
        with timer.step("build"):
            built = images.build(app_source, docker, commit=commit, build_key=build_key)
        if _overlaps_branches(context):
            _start_backend_checks(context, app_source, docker, commit, built.image_id)
        with timer.step("push"):
            ref = images.push(registry, docker, built.image_id, repository=repository, build_key=build_key,
                              release=release, size_bytes=built.size_bytes)  # fmt: skip
        outcome = "built"
    elif not tagged:
        with timer.step("tag"):
            registry.add_tags(ref, [release])
    context.log.info(f"{outcome}: {ref.uri} ({release}, commit {commit[:12]})")
    record = ImageRecord(
        outcome=outcome, image_uri=ref.uri, digest=ref.digest, repository=ref.repository,
        repository_uri=ref.repository_uri, size_bytes=ref.size_bytes, commit=commit, build_key=build_key,
        built=outcome == "built", promoted=outcome.startswith("promoted"),
        tags=[t for t in (images.build_tag(build_key) if build_key else "", release) if t],
    )  # fmt: skip
    return dg.MaterializeResult(metadata={**record.to_metadata(), **timer.metadata()},
                                data_version=dg.DataVersion(ref.digest))  # fmt: skip


def _overlaps_branches(context: dg.AssetExecutionContext) -> bool:
    """Whether this run builds the frontend of the same commit beside the image (npm working while this step waits on
    the engine), for its frontend_bundle to find done: only where one process runs every step of the run and the
    frontend is in it. deploy_job runs the frontend branch in a process of its own already; `--executor serial` asks
    for one branch after the other."""
    selected = context.run.asset_selection or {names.key(names.FRONTEND_BUNDLE)}
    return (context.run.job_name == names.REDEPLOY_JOB and names.key(names.FRONTEND_BUNDLE) in selected
            and context.run.tags.get(names.BRANCHES_TAG) != names.BRANCHES_SERIAL)  # fmt: skip


def _start_backend_checks(context: dg.AssetExecutionContext, app_source: AppSource, docker: DockerEngine,
                          commit: str, image_id: str) -> None:  # fmt: skip
    """The backend's checks, each in a container of the image just built, beside its push (they need nothing of the
    registry), for this run's backend_checks to collect; keyed by the tree alone until the digest is known. Each
    check's thread asks for its own client: the push uses this thread's."""
    labels = docker.owner_labels()
    _start_checks(context, app_source, Side.BACKEND, commit, lambda dest: app_source.export_backend(commit, dest),
                  lambda path, spec, key: run_in_image(docker.client(), image_id, path, spec, key, labels),
                  together=True)


def _start_frontend_checks(context: dg.AssetExecutionContext, app_source: AppSource, commit: str) -> None:
    """The frontend's checks of this commit, started for this run's frontend_checks to collect."""
    remote = app_source.remote()
    _start_checks(context, app_source, Side.FRONTEND, commit,
                  lambda dest: remote.export(commit, app_source.frontend_dir, dest), run_on_host)


def _start_checks(context: dg.AssetExecutionContext, app_source: AppSource, side: Side, commit: str, export,
                  runner, *, together: bool = False) -> None:  # fmt: skip
    """`side`'s checks of this commit, started ahead for its check step to collect (unless skipped)."""
    specs = app_source.layout.checks_of(side)
    if not specs or context.run.tags.get(names.SKIP_CHECKS_TAG):
        return
    directory = app_source.backend_context if side is Side.BACKEND else app_source.frontend_dir
    tree = app_source.remote().tree_id(commit, directory)
    checks_ahead.start(context.run.run_id, [(spec, check_key(spec, tree)) for spec in specs], export, runner,
                       app_source.scratch_root(), together=together)  # fmt: skip
