"""The code location: every stage, job, sensor and resource, assembled in one place."""

from __future__ import annotations

import functools

import dagster as dg

from coderemote_pipeline.assets.app_checks import app_check_defs
from coderemote_pipeline.assets.jobs import STAGE_ASSETS, approval_job, deploy_jobs, parallel_executor, rollback_job
from coderemote_pipeline.assets.live_release import delivery_metrics, live_release, live_release_matches_target
from coderemote_pipeline.assets.release_approval import release_approval
from coderemote_pipeline.assets.traffic_control import traffic_control_job
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.sensors import sensor_defs

# Step processes of deploy_job preload this module, so the code location is imported once per forkserver.
JOBS = deploy_jobs(__name__)


def stage_defs(settings: Settings) -> dg.Definitions:
    """The stages, their jobs, and the app's own checks (from its layout) as blocking checks of the builds."""
    return dg.Definitions(
        assets=STAGE_ASSETS,
        asset_checks=app_check_defs(settings.app_layout),
        jobs=[*JOBS, rollback_job],
        executor=parallel_executor(__name__),
    )


def live_defs() -> dg.Definitions:
    return dg.Definitions(assets=[live_release, delivery_metrics], asset_checks=[live_release_matches_target])


def approval_defs() -> dg.Definitions:
    return dg.Definitions(assets=[release_approval], jobs=[approval_job, traffic_control_job])


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions.merge(
        stage_defs(settings),
        live_defs(),
        approval_defs(),
        sensor_defs(settings.sensor_interval_s, JOBS),
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
