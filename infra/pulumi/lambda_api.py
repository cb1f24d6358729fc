"""The API: a container-image Lambda function, its `live` alias and the alias's HTTPS Function URL.

Pulumi owns the function's configuration; the release pipeline owns its code and its traffic. Its
`lambda_version` stage points the function at an image digest, publishes a version and moves the `live`
alias. Hence `ignore_changes` on `image_uri` and on the alias's `function_version`: without them every
`pulumi up` would put back the bootstrap image and the first version, undoing (or rolling back) the release.
`bootstrap_image_uri` is therefore used only when the function is created (or replaced): an image function
cannot be created without an image, and it must already exist in ECR in this account and region.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from stack_settings import StackSettings
from vpc_network import Network

from coderemote_pipeline.rules.stack_outputs import (
    GEMINI_SECRET_ARN_VARIABLE,
    LIVE_ALIAS,
    gemini_secret_name,
    lambda_function_name,
)

MEMORY_MB = 512
TIMEOUT_SECONDS = 30

ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# What AWSLambdaVPCAccessExecutionRole grants for ENIs. The Describe* actions support no resource scoping and
# Lambda creates the interfaces in subnets it picks from the config, so AWS's own policy uses "*" too.
VPC_ENI_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ManageVpcNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        }
    ],
}


@dataclass(frozen=True)
class Api:
    function: aws.lambda_.Function
    alias: aws.lambda_.Alias
    url: aws.lambda_.FunctionUrl

    @property
    def base_url(self) -> pulumi.Output[str]:
        """The Function URL without its trailing slash: `https://<id>.lambda-url.<region>.on.aws`."""
        return self.url.function_url.apply(lambda url: url.rstrip("/"))


def secret_read_policy(secret_arn: str) -> dict[str, object]:
    """The function may read its own secret, and nothing else in Secrets Manager."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOwnSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arn,
            }
        ],
    }


def logs_policy(log_group_arn: str) -> dict[str, object]:
    """AWSLambdaBasicExecutionRole narrowed to the function's own log group (created here, so no
    logs:CreateLogGroup)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            }
        ],
    }


def lambda_api(
    env: str,
    settings: StackSettings,
    *,
    frontend_origin: pulumi.Input[str],
    network: Network | None,
    tags: Mapping[str, str],
) -> Api:
    name = lambda_function_name(env)
    role = aws.iam.Role(
        "api-role",
        name=f"{name}-lambda",
        description=f"Execution role of the {name} Lambda function",
        assume_role_policy=json.dumps(ASSUME_ROLE_POLICY),
        tags=dict(tags),
    )
    log_group = aws.cloudwatch.LogGroup(
        "api-logs", name=f"/aws/lambda/{name}", retention_in_days=settings.log_retention_days, tags=dict(tags)
    )
    # Role policies exist before the function: Lambda checks ENI permissions when it is created in a VPC.
    policies = [
        aws.iam.RolePolicy(
            "api-logs-policy",
            role=role.name,
            policy=log_group.arn.apply(lambda arn: json.dumps(logs_policy(arn))),
        )
    ]
    if network is not None:
        policies.append(aws.iam.RolePolicy("api-vpc-policy", role=role.name, policy=json.dumps(VPC_ENI_POLICY)))
    # The Gemini key in Secrets Manager: the function's environment holds the secret's ARN, the role may read
    # that one secret, and the API reads the key at start. Its value stays encrypted in the Pulumi state too.
    secret = aws.secretsmanager.Secret(
        "gemini-api-key", name=gemini_secret_name(env), description=f"Gemini API key of {name}", tags=dict(tags)
    )
    aws.secretsmanager.SecretVersion("gemini-api-key-value", secret_id=secret.id, secret_string=settings.gemini_api_key)
    policies.append(
        aws.iam.RolePolicy(
            "api-secret-policy",
            role=role.name,
            policy=secret.arn.apply(lambda arn: json.dumps(secret_read_policy(arn))),
        )
    )

    function = aws.lambda_.Function(
        "api-function",
        name=name,
        role=role.arn,
        package_type="Image",
        image_uri=settings.bootstrap_image_uri,
        memory_size=MEMORY_MB,
        timeout=TIMEOUT_SECONDS,
        publish=True,
        environment={
            "variables": {
                "APP_ENV": env,
                "GEMINI_MODEL": settings.gemini_model,
                # Only where the key is: lambda:GetFunctionConfiguration shows environment variables to many.
                GEMINI_SECRET_ARN_VARIABLE: secret.arn,
            }
        },
        logging_config={"log_format": "Text", "log_group": log_group.name},
        vpc_config=(
            {
                "subnet_ids": [subnet.id for subnet in network.private_subnets],
                "security_group_ids": [network.function_security_group.id],
            }
            if network is not None
            else None
        ),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(depends_on=[log_group, *policies], ignore_changes=["image_uri"]),
    )
    alias = aws.lambda_.Alias(
        "api-live-alias",
        name=LIVE_ALIAS,
        function_name=function.name,
        # Only the first version: from then on the pipeline moves the alias (deploy and rollback) and sets its
        # routing config (a canary's AdditionalVersionWeights), which a `pulumi up` mid-shift must not reset.
        function_version=function.version,
        opts=pulumi.ResourceOptions(ignore_changes=["function_version", "routing_config"]),
    )
    # The HTTPS entry point of the API, bound to the alias: moving `live` moves what it serves.
    url = aws.lambda_.FunctionUrl(
        "api-url",
        function_name=function.name,
        qualifier=alias.name,
        authorization_type="NONE",
        cors={
            "allow_origins": [frontend_origin],
            "allow_methods": ["GET", "HEAD", "POST"],
            "allow_headers": ["content-type"],
            "max_age": 300,
        },
    )
    # A public URL (auth NONE) needs both statements on the alias: lambda:InvokeFunctionUrl, and, for URLs
    # created since October 2025, lambda:InvokeFunction limited to calls through the Function URL.
    aws.lambda_.Permission(
        "api-url-invoke-url",
        action="lambda:InvokeFunctionUrl",
        function=function.name,
        qualifier=alias.name,
        principal="*",
        function_url_auth_type="NONE",
    )
    aws.lambda_.Permission(
        "api-url-invoke-function",
        action="lambda:InvokeFunction",
        function=function.name,
        qualifier=alias.name,
        principal="*",
        invoked_via_function_url=True,
    )
    return Api(function=function, alias=alias, url=url)
