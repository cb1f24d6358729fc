"""The jobs over the stages: one deployment is one run of one of them for one partition.

- deploy_job builds: multiprocess with forkserver is the only Dagster executor that runs the backend and frontend
  branches at once (in-process is strictly serial); every step pays a process start (bench/deploy.py measures it).
- redeploy_job runs the same stages in one process: what `auto` runs (ledger/job_choice.py says why), the frontend
  built and checked beside the image build.
- rollback_job puts an environment back on a release that passed smoke there, in one process: the stages after
  infra, its image, version and snapshot reused (each verified still there), and none of the app's checks. They
  are on the record of the run that built the release, and a rollback is not held back by a test of a release
  that already served this environment (one deployed with `--skip-checks` included).
"""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.assets.api_image import api_image
from coderemote_pipeline.assets.cloudfront_invalidation import cloudfront_invalidation
from coderemote_pipeline.assets.frontend_bundle import frontend_bundle
from coderemote_pipeline.assets.infra import infra_stack
from coderemote_pipeline.assets.lambda_version import lambda_version
from coderemote_pipeline.assets.release_approval import release_approval
from coderemote_pipeline.assets.smoke_result import smoke_result
from coderemote_pipeline.assets.traffic_shift import traffic_shift
from coderemote_pipeline.rules import names

STAGE_ASSETS = [infra_stack, api_image, lambda_version, frontend_bundle, traffic_shift, cloudfront_invalidation,
                smoke_result]  # fmt: skip


def parallel_executor(preload_module: str) -> dg.ExecutorDefinition:
    return dg.multiprocess_executor.configured(
        {"max_concurrent": 4, "start_method": {"forkserver": {"preload_modules": [preload_module]}}},
        name="parallel_executor",
    )


def deploy_jobs(preload_module: str) -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            names.DEPLOY_JOB,
            selection=dg.AssetSelection.assets(*STAGE_ASSETS),
            executor_def=parallel_executor(preload_module),
            description="Deploy one release to one environment, building what is missing: "
            "infra → image → version ∥ bundle → traffic shift → CDN → smoke.",
        ),
        dg.define_asset_job(
            names.REDEPLOY_JOB,
            selection=dg.AssetSelection.assets(*STAGE_ASSETS),
            executor_def=dg.in_process_executor,
            description="Deploy one release to one environment in one process, the frontend built and checked "
            "beside the image build.",
        ),
    ]


rollback_job = dg.define_asset_job(
    names.ROLLBACK_JOB,
    selection=dg.AssetSelection.assets(*STAGE_ASSETS[1:]).without_checks(),
    executor_def=dg.in_process_executor,
    description="Put an environment back on a release that passed smoke there: its image, version and site snapshot "
    "reused, no infrastructure change, no checks (they are on the record of the run that built it).",
)


approval_job = dg.define_asset_job(
    names.APPROVAL_JOB,
    selection=[release_approval],
    executor_def=dg.in_process_executor,
    description="Record an approval or rejection of one release for one environment (config: by, decision, reason).",
)
