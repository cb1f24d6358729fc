"""The code location: every stage, job and resource, assembled in one place."""

from __future__ import annotations

import functools

import dagster as dg

from coderemote_pipeline.actions.failure_report import after_failure_defs
from coderemote_pipeline.assets.backend import api_image, lambda_version
from coderemote_pipeline.assets.frontend import cloudfront_invalidation, frontend_bundle
from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.assets.live_release import delivery_metrics, live_release_matches_target
from coderemote_pipeline.assets.release_approval import approval_defs
from coderemote_pipeline.assets.smoke import smoke_result
from coderemote_pipeline.ledger.live import live_release
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.sensors import sensor_defs

STAGES = [infra_stack, api_image, lambda_version, frontend_bundle, cloudfront_invalidation, smoke_result]

# One deployment = one run of one partition, by one of two jobs over the same six stages:
# - deploy_job builds: multiprocess with forkserver is the only Dagster executor that runs the backend and frontend
#   branches at once (in-process is strictly serial). Each step then pays a process start (~2 s here with this code
#   location preloaded into the forkserver, ~4 s without), which the parallel builds pay back.
# - redeploy_job builds nothing (re-run, rollback, promotion of an image and bundle that exist): every stage is a
#   few API calls, so per-step process starts would dominate; in-process runs the six stages in ~5 s.
# bench/deploy.py measures both.
PARALLEL_EXECUTOR = dg.multiprocess_executor.configured(
    {"max_concurrent": 4, "start_method": {"forkserver": {"preload_modules": [__name__]}}},
    name="parallel_executor",
)

deploy_job = dg.define_asset_job(
    "deploy_job",
    selection=dg.AssetSelection.assets(*STAGES),
    executor_def=PARALLEL_EXECUTOR,
    description="Deploy one release to one environment, building what is missing: "
    "infra → image → Lambda ∥ frontend → CDN → smoke.",
)

redeploy_job = dg.define_asset_job(
    "redeploy_job",
    selection=dg.AssetSelection.assets(*STAGES),
    executor_def=dg.in_process_executor,
    description="Deploy a release whose image and bundle already exist (rollback, promotion, re-run), in one process.",
)
JOB_NAMES = ("deploy_job", "redeploy_job")


def stage_defs() -> dg.Definitions:
    return dg.Definitions(assets=STAGES, jobs=[deploy_job, redeploy_job], executor=PARALLEL_EXECUTOR)


def live_defs() -> dg.Definitions:
    return dg.Definitions(assets=[live_release, delivery_metrics], asset_checks=[live_release_matches_target])


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions.merge(
        stage_defs(),
        live_defs(),
        approval_defs(),
        sensor_defs(settings.sensor_interval_s, [deploy_job, redeploy_job]),
        after_failure_defs(),
        dg.Definitions(resources=resources_for(settings)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


@functools.lru_cache(maxsize=8)
def deploy_job_for(job_name: str, **settings: str) -> dg.JobDefinition:
    """Rebuilds the deploy job in every step process from explicit settings, not from that process's environment.

    Step processes come from a forkserver started once per parent process: its environment may predate the
    settings of the deploy at hand, so the settings travel in the reconstructable job's arguments instead.
    Cached: a process that launches several runs (a rollback after a deploy, the sensors' daemon) builds it once.
    """
    return build_defs(Settings.from_fields(**settings)).resolve_job_def(job_name)


def reconstructable_deploy_job(job_name: str, settings: Settings):
    return dg.build_reconstructable_job(
        __name__, deploy_job_for.__name__, reconstructable_kwargs={"job_name": job_name, **settings.as_fields()}
    )
