"""Whether the target can take a run now: asked by the CLI before it launches one and by the sensors before they
request one. A run that meets an absent target at its first step is a failed deploy in the ledger, counted in the
change failure rate, for something nobody deployed; refused before it starts, it is one line (CLI) or a tick that
waits with its reason and keeps its cursor (sensors)."""

from __future__ import annotations

import os

import dagster as dg

from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.pulumi_provisioner import PulumiProvisioner
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.settings import SettingsError


class TargetReadiness(dg.ConfigurableResource):
    """The local target: its stack is up and its emulator answers. The other parts of a running stack (registry,
    engine, edges) may be restarting: the steps retry and name them."""

    aws: AwsResource

    def check(self, builds: bool) -> None:
        """Raise, with the fix, when a run could not reach the target; `builds`: the run builds and provisions."""
        self.aws.check_reachable()
        if builds:
            self.check_builds()

    def check_builds(self) -> None:
        return None

    def blocker(self, builds: bool = True) -> str | None:
        """Why a run could not reach the target now, or None. The sensors request only runs that build."""
        try:
            self.check(builds)
        except UserError as exc:
            return str(exc)
        return None


class AwsReadiness(TargetReadiness):
    """The aws target: credentials (or a misspelled AWS_PROFILE); for a run that builds and provisions, also the
    Gemini key, the Pulumi CLI and a Docker engine on the machine that runs the steps. The key is looked up by
    name, not held: a resource holding dg.EnvVar("GEMINI_API_KEY") fails its own start-up when it is unset."""

    docker: DockerEngine

    def check_builds(self) -> None:
        if not os.environ.get("GEMINI_API_KEY"):
            raise SettingsError(
                "GEMINI_API_KEY is not set: the aws target's infra stage stores it as the API's secret. Export it "
                "where the deploy runs (docs/aws.md)"
            )
        PulumiProvisioner.check_cli()
        self.docker.client()
