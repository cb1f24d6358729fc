"""The Code Remote stack of one environment: `code_remote_stack(env, settings)` declares it and exports outputs.

Importable and side-effect free until called, so tests run it under Pulumi's mock runtime. The output keys
are the constants of `coderemote_pipeline.rules.stack_outputs`, shared with the emulator provisioner and the assets.
"""

from __future__ import annotations

import pulumi
from ecr_repository import api_repository
from frontend_site import frontend_site
from lambda_api import lambda_api
from monitoring import api_errors_alarm
from stack_settings import StackSettings
from vpc_network import private_network

from coderemote_pipeline.rules import stack_outputs as keys


def stack_tags(env: str) -> dict[str, str]:
    return {"project": keys.PROJECT, "environment": env, "managed-by": "pulumi"}


def code_remote_stack(env: str, settings: StackSettings) -> dict[str, pulumi.Output]:
    tags = stack_tags(env)
    repository = api_repository(env, tags)
    network = private_network(env, settings, tags) if settings.has_vpc else None
    frontend = frontend_site(env, tags)
    api = lambda_api(env, settings, frontend_origin=frontend.url, network=network, tags=tags)
    api_errors_alarm(api.function.name, tags)

    outputs: dict[str, pulumi.Output] = {
        keys.REGION: pulumi.Output.from_input(settings.region),
        keys.ECR_REPOSITORY_NAME: repository.name,
        keys.ECR_REPOSITORY_URL: repository.repository_url,
        keys.LAMBDA_FUNCTION_NAME: api.function.name,
        keys.LAMBDA_ALIAS_NAME: api.alias.name,
        keys.LAMBDA_ALIAS_ARN: api.alias.arn,
        keys.API_URL: api.base_url,
        keys.FRONTEND_BUCKET: frontend.bucket.bucket,
        keys.CLOUDFRONT_DISTRIBUTION_ID: frontend.distribution.id,
        keys.CLOUDFRONT_DOMAIN: frontend.distribution.domain_name,
        keys.FRONTEND_URL: frontend.url,
        # Exported by every stack, "" without a VPC, so all stacks have the same keys.
        keys.VPC_ID: network.vpc.id if network is not None else pulumi.Output.from_input(""),
    }
    if outputs.keys() != keys.ALL_KEYS:
        raise RuntimeError(f"stack outputs differ from stack_outputs.ALL_KEYS: {outputs.keys() ^ keys.ALL_KEYS}")
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
