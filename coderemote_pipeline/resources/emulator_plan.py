"""What `infra_stack` would change in an environment on the local target, read without changing anything: the
emulator's counterpart of `pulumi preview` (and, against the recorded outputs, of `pulumi refresh`)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.stack_config import StackConfig

# What each client answers for a resource that is not there (anything else is a real error and propagates).
MISSING = {"NoSuchEntity", "RepositoryNotFoundException", "404", "NoSuchBucket", "ResourceNotFoundException"}


def _exists(call) -> bool:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING:
            return False
        raise
    return True


def planned_changes(aws: Any, env: str, config: StackConfig) -> list[str]:
    """One line per resource the provisioner would create or update; [] when the env's stack is as declared."""
    iam, ecr, s3, lam = (aws.client(n) for n in ("iam", "ecr", "s3", "lambda"))
    prefix, function = out.resource_prefix(env), out.lambda_function_name(env)
    planned = []
    if not _exists(lambda: iam.get_role(RoleName=f"{prefix}-api-role")):
        planned.append(f"create IAM role {prefix}-api-role")
    if not _exists(lambda: ecr.describe_repositories(repositoryNames=[out.ecr_repository_name(env)])):
        planned.append(f"create ECR repository {out.ecr_repository_name(env)}")
    if not _exists(lambda: s3.head_bucket(Bucket=out.frontend_bucket_name(env))):
        planned.append(f"create S3 bucket {out.frontend_bucket_name(env)}")
    try:
        variables = lam.get_function_configuration(FunctionName=function).get("Environment", {}).get("Variables", {})
    except lam.exceptions.ResourceNotFoundException:
        planned += [f"create Lambda function {function}", f"create alias {function}:{out.LIVE_ALIAS}"]
    else:
        if variables.get("GEMINI_MODEL") != config.gemini_model:
            planned.append(f"update {function} GEMINI_MODEL={config.gemini_model}")
        if "GEMINI_API_KEY" in variables:
            planned.append(f"update {function}: remove GEMINI_API_KEY (the key moves to Secrets Manager)")
        if not _exists(lambda: lam.get_alias(FunctionName=function, Name=out.LIVE_ALIAS)):
            planned.append(f"create alias {function}:{out.LIVE_ALIAS}")
    items = aws.client("cloudfront").list_distributions().get("DistributionList", {}).get("Items", []) or []
    if not any(item.get("Comment") == f"{prefix} frontend" for item in items):
        planned.append(f"create CloudFront distribution for {out.frontend_bucket_name(env)}")
    return planned
