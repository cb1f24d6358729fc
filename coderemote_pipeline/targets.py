"""The one place the target is chosen: which implementation stands behind each resource key."""

from __future__ import annotations

from typing import Any

from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import EmulatorAws
from coderemote_pipeline.resources.docker_engine import LocalDockerEngine
from coderemote_pipeline.resources.provisioner import EmulatorProvisioner
from coderemote_pipeline.resources.registry import LocalRegistry
from coderemote_pipeline.resources.runtime import LocalContainerRuntime
from coderemote_pipeline.resources.stack import LocalStackResource
from coderemote_pipeline.settings import Settings, SettingsError


def local_resources(settings: Settings) -> dict[str, Any]:
    """Real local processes standing in for AWS: the emulator, the registry, the Docker engine, API containers."""
    stack = LocalStackResource(state_dir=str(settings.state_dir))
    aws = EmulatorAws(stack=stack)
    docker = LocalDockerEngine(stack=stack)
    registry = LocalRegistry(aws=aws, stack=stack)
    return {
        "app_source": AppSource(**settings.app_source_fields()),
        "aws": aws,
        "docker": docker,
        "registry": registry,
        "provisioner": EmulatorProvisioner(aws=aws, registry=registry, docker=docker, stack=stack),
        "api_runtime": LocalContainerRuntime(stack=stack, docker=docker, registry=registry),
    }


def resources_for(settings: Settings) -> dict[str, Any]:
    if settings.target == "local":
        return local_resources(settings)
    raise SettingsError(
        "CODEREMOTE_TARGET=aws: the aws target (Pulumi Automation API, ECR, Lambda URL) is not built yet; "
        "unset CODEREMOTE_TARGET to use the local target"
    )
