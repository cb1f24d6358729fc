"""The one place the target is chosen: which implementation stands behind each resource key."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource, EmulatorAws, RealAws
from coderemote_pipeline.resources.docker_engine import HostDockerEngine, LocalDockerEngine
from coderemote_pipeline.resources.ecr_registry import EcrRegistry
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.image_registry import LocalRegistry
from coderemote_pipeline.resources.lambda_url_runtime import LambdaUrlRuntime
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.provisioner import EmulatorProvisioner
from coderemote_pipeline.resources.pulumi_provisioner import PulumiProvisioner
from coderemote_pipeline.resources.runtime import ApiRuntime, LocalContainerRuntime
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.settings import Settings, SettingsError


def local_resources(settings: Settings) -> dict[str, Any]:
    """Real local processes standing in for AWS: the emulator, the registry, the Docker engine, API containers."""
    stack = LocalStackResource(state_dir=str(settings.state_dir))
    aws = EmulatorAws(stack=stack)
    docker = LocalDockerEngine(stack=stack)
    registry = LocalRegistry(aws=aws, stack=stack)
    return {
        "app_source": AppSource(**settings.app_source_fields()),
        "environments": Environments(infra_dir=str(settings.infra_dir)),
        "aws": aws,
        "docker": docker,
        "registry": registry,
        "provisioner": EmulatorProvisioner(
            aws=aws, registry=registry, docker=docker, stack=stack, gemini_api_key=_gemini_api_key()
        ),
        "api_runtime": LocalContainerRuntime(stack=stack, docker=docker, registry=registry),
    }


def _gemini_api_key() -> dg.EnvVar | None:
    """The local target passes the key on like the aws one (a secret in the function's environment) when the
    variable is set where definitions load; the value itself is read only at launch, through dg.EnvVar."""
    return dg.EnvVar("GEMINI_API_KEY") if "GEMINI_API_KEY" in os.environ else None


def aws_region(settings: Settings) -> str:
    """The region of every stack file (`aws:region` in infra/pulumi/Pulumi.<env>.yaml): one for all envs."""
    regions = {policy.stack.region for policy in load_policies(settings.infra_dir).values()}
    if len(regions) != 1:
        raise SettingsError(
            f"CODEREMOTE_TARGET=aws runs every environment in one region, but infra/pulumi/Pulumi.*.yaml set "
            f"aws:region to {sorted(regions)}"
        )
    return regions.pop()


def aws_resources(settings: Settings) -> dict[str, Any]:
    """Real AWS through boto3's default credential chain, the host's Docker engine, ECR, and `pulumi up`.

    Nothing here calls AWS, Docker or Pulumi: credentials and the CLI are first needed when a step runs.
    """
    aws = RealAws(region=aws_region(settings))
    docker = HostDockerEngine()
    registry = EcrRegistry(aws=aws)
    return {
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
    }


def resources_for(settings: Settings) -> dict[str, Any]:
    if settings.target == "local":
        return local_resources(settings)
    if settings.target == "aws":
        return aws_resources(settings)
    raise SettingsError(f"unknown target {settings.target!r}: use local or aws")


def env_target(
    env: str,
    outputs: dict[str, str],
    *,
    aws: AwsResource,
    api_runtime: ApiRuntime,
    app_source: AppSource | None = None,
    layout: AppLayout | None = None,
) -> EnvTarget:
    """The clients, runtime and layout an action needs to change one environment; `layout` (a release's recorded
    one) wins over the app source's current one."""
    layout = layout or (app_source.layout if app_source is not None else AppLayout())
    return EnvTarget(
        env=env,
        outputs=outputs,
        lam=aws.client("lambda"),
        s3=aws.client("s3"),
        cf=aws.client("cloudfront"),
        runtime=api_runtime,
        acl=aws.object_acl,
        container_command=layout.container_command,
        health_path=layout.health_path,
    )


def target_for(resources: dict[str, Any], layout: AppLayout | None = None):
    """`env_target` bound to a resources dict (resources_for), for code outside a step."""
    return lambda env, outputs: env_target(
        env, outputs, aws=resources["aws"], api_runtime=resources["api_runtime"], app_source=resources["app_source"],
        layout=layout,
    )  # fmt: skip
