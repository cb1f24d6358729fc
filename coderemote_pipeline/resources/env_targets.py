"""One resource for what an action needs to change an environment: the AWS clients, the API runtime, the site edge.

Stages that switch, restore or read an environment ask it for an `EnvTarget` (actions/serving.py) instead of
wiring three resources each.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.resources.site_edge import SiteEdge
from coderemote_pipeline.rules.app_layout import AppLayout


class EnvTargets(dg.ConfigurableResource):
    aws: AwsResource
    api_runtime: ApiRuntime
    site_edge: SiteEdge

    def target(
        self, env: str, outputs: dict[str, str], layout: AppLayout, fence: Callable[[], None] | None = None
    ) -> EnvTarget:
        """`fence`: the writer's check that it still holds the env's deploy lease (a stage's: assets/stage.fence)."""
        return EnvTarget(
            env=env,
            outputs=outputs,
            lam=self.aws.client("lambda"),
            s3=self.aws.client("s3"),
            cf=self.aws.client("cloudfront"),
            runtime=self.api_runtime,
            site=self.site_edge,
            acl=self.aws.object_acl,
            container_command=layout.container_command,
            health_path=layout.health_path,
            aws_cli=self.aws.cli(),
            **({"fence": fence} if fence is not None else {}),
        )
