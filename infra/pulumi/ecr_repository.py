"""ECR repository of the API image: `code-remote-<env>-api`."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi_aws as aws

from coderemote_pipeline.rules.stack_outputs import ecr_repository_name

# Rollback re-points the `live` alias at an already published version, and a Lambda version runs only while its
# image digest still exists in ECR: keep the images of the last KEEP_TAGGED_IMAGES releases.
KEEP_TAGGED_IMAGES = 30
UNTAGGED_EXPIRY_DAYS = 7
# The image the function is created from (see lambda_api.py); pushed once as `<repository>:bootstrap` and kept
# forever, so a replacement of the function can still be created.
BOOTSTRAP_TAG = "bootstrap"


def lifecycle_policy() -> dict[str, object]:
    """ECR evaluates rules by priority and an image is expired by at most one rule; an image matched by a
    higher-priority rule is never expired by a lower one. `tagStatus: any` must be the lowest priority."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the bootstrap image the function is created from",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [BOOTSTRAP_TAG],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_EXPIRY_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 3,
                "description": f"keep the last {KEEP_TAGGED_IMAGES} tagged images for rollback",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": KEEP_TAGGED_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    }


def api_repository(env: str, tags: Mapping[str, str]) -> aws.ecr.Repository:
    repository = aws.ecr.Repository(
        "api-repository",
        name=ecr_repository_name(env),
        # Mutable: the pipeline may move convenience tags; releases are pinned by digest, never by tag.
        image_tag_mutability="MUTABLE",
        image_scanning_configuration={"scan_on_push": True},
        tags=dict(tags),
    )
    aws.ecr.LifecyclePolicy(
        "api-repository-lifecycle",
        repository=repository.name,
        policy=json.dumps(lifecycle_policy()),
    )
    return repository
