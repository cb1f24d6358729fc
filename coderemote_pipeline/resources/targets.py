"""The one place the target is chosen: which implementation stands behind each resource key."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import EmulatorAws, RealAws
from coderemote_pipeline.resources.docker_engine import HostDockerEngine, LocalDockerEngine
from coderemote_pipeline.resources.ecr_registry import EcrRegistry
from coderemote_pipeline.resources.emulator_provisioner import EmulatorProvisioner
from coderemote_pipeline.resources.env_targets import EnvTargets
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.image_registry import LocalRegistry
from coderemote_pipeline.resources.lambda_url_runtime import LambdaUrlRuntime
from coderemote_pipeline.resources.local_runtime import LocalContainerRuntime
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.pulumi_provisioner import PulumiProvisioner
from coderemote_pipeline.resources.readiness import AwsReadiness, TargetReadiness
from coderemote_pipeline.resources.site_edge import CloudFrontOriginEdge, LocalSiteEdge
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.settings import Settings, SettingsError, aws_region


def local_resources(settings: Settings) -> dict[str, Any]:
    """Real local processes standing in for AWS: the emulator, the registry, the Docker engine, API containers."""
    stack = LocalStackResource(state_dir=str(settings.state_dir))
    aws = EmulatorAws(stack=stack)
    docker = LocalDockerEngine(stack=stack)
    registry = LocalRegistry(aws=aws, stack=stack)
    return with_targets({
        "app_source": AppSource(**settings.app_source_fields()),
        "environments": Environments(infra_dir=str(settings.infra_dir)),
        "aws": aws,
        "docker": docker,
        "registry": registry,
        "provisioner": EmulatorProvisioner(
            aws=aws, registry=registry, docker=docker, stack=stack, gemini_api_key=_gemini_api_key()
        ),
        "api_runtime": LocalContainerRuntime(stack=stack, docker=docker, registry=registry),
        "site_edge": LocalSiteEdge(stack=stack),
        "readiness": TargetReadiness(aws=aws),
    })


def _gemini_api_key() -> dg.EnvVar | None:
    """The local target passes the key on like the aws one (a secret in the function's environment) when the
    variable is set where definitions load; the value itself is read only at launch, through dg.EnvVar."""
    return dg.EnvVar("GEMINI_API_KEY") if "GEMINI_API_KEY" in os.environ else None


def aws_resources(settings: Settings) -> dict[str, Any]:
    """Real AWS through boto3's default credential chain, the host's Docker engine, ECR, and `pulumi up`.

    Nothing here calls AWS, Docker or Pulumi: credentials and the CLI are first needed when a step runs.
    """
    aws = RealAws(region=aws_region(settings))
    docker = HostDockerEngine()
    registry = EcrRegistry(aws=aws)
    return with_targets({
        "app_source": AppSource(**settings.app_source_fields()),
        "environments": Environments(infra_dir=str(settings.infra_dir)),
        "aws": aws,
        "docker": docker,
        "registry": registry,
        "provisioner": PulumiProvisioner(
            registry=registry,
            docker=docker,
            gemini_api_key=dg.EnvVar("GEMINI_API_KEY"),
            work_dir=str(settings.infra_dir / "pulumi"),
        ),
        "api_runtime": LambdaUrlRuntime(aws=aws),
        "site_edge": CloudFrontOriginEdge(aws=aws),
        "readiness": AwsReadiness(aws=aws, docker=docker),
    })


def resources_for(settings: Settings) -> dict[str, Any]:
    if settings.target == "local":
        return local_resources(settings)
    if settings.target == "aws":
        return aws_resources(settings)
    raise SettingsError(f"unknown target {settings.target!r}: use local or aws")


def check_ready(settings: Settings, job_name: str) -> None:
    """Refuse in one line, before a run starts, a target that cannot be there for it (resources/readiness.py)."""
    resources_for(settings)["readiness"].check(builds=job_name in names.BUILDING_JOBS)


def with_targets(resources: dict[str, Any]) -> dict[str, Any]:
    """The resources plus `targets`, the bundle the stages that change an environment take."""
    bundle = EnvTargets(aws=resources["aws"], api_runtime=resources["api_runtime"], site_edge=resources["site_edge"])
    return {**resources, "targets": bundle}


def target_for(resources: dict[str, Any], layout: AppLayout | None = None):
    """An EnvTarget maker bound to a resources dict (resources_for), for code outside a step."""
    bundle = with_targets(resources)["targets"]
    return lambda env, outputs: bundle.target(env, outputs, layout or resources["app_source"].layout)
