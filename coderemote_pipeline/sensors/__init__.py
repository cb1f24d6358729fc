"""The git sensors, the approval sensor and the run sensors, as one Definitions merged into the code location."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from coderemote_pipeline.sensors.approved_release import approved_release_sensor_def
from coderemote_pipeline.sensors.failed_deploy import (
    canceled_deploy_sensor,
    delivery_figures_sensor,
    failed_deploy_sensor,
)
from coderemote_pipeline.sensors.main_push import main_push_sensor_def
from coderemote_pipeline.sensors.version_tags import version_tag_sensor_def
from coderemote_pipeline.sensors.waiting_settles import waiting_settles_sensor


def sensor_defs(interval_s: int, deploy_jobs: Sequence[dg.UnresolvedAssetJobDefinition]) -> dg.Definitions:
    """The sensors, the git ones ticking every `interval_s` and launching one of `deploy_jobs` (chosen per commit)."""
    return dg.Definitions(
        sensors=[
            main_push_sensor_def(interval_s, deploy_jobs),
            version_tag_sensor_def(interval_s, deploy_jobs),
            approved_release_sensor_def(interval_s, deploy_jobs),
            failed_deploy_sensor,
            canceled_deploy_sensor,
            delivery_figures_sensor,
            waiting_settles_sensor,
        ]
    )
