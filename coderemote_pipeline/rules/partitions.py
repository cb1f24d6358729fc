"""The partitions of every stage, defined once: environment × release."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.rules.release_keys import Release, ReleaseKeyError, parse_release_key

ENVIRONMENTS = ("dev", "staging", "prod")
ENV_DIMENSION = "env"
RELEASE_DIMENSION = "release"

env_partitions_def = dg.StaticPartitionsDefinition(list(ENVIRONMENTS))
release_partitions_def = dg.DynamicPartitionsDefinition(name="release")
deployment_partitions_def = dg.MultiPartitionsDefinition(
    {ENV_DIMENSION: env_partitions_def, RELEASE_DIMENSION: release_partitions_def}
)


class UnknownEnvironmentError(ValueError):
    pass


def check_env(env: str) -> str:
    if env not in ENVIRONMENTS:
        raise UnknownEnvironmentError(
            f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)} "
            "(environments are declared in infra/environments.yaml)"
        )
    return env


def deployment_key(env: str, release: str) -> dg.MultiPartitionKey:
    """The partition key of one deployment, `dev|main-3f9c2ab`; both parts validated."""
    check_env(env)
    parse_release_key(release)
    return dg.MultiPartitionKey({ENV_DIMENSION: env, RELEASE_DIMENSION: release})


def parse_deployment_key(key: str | dg.MultiPartitionKey) -> tuple[str, Release]:
    """`dev|main-3f9c2ab` (or a MultiPartitionKey) → ("dev", Release)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        env, release = dims[ENV_DIMENSION], dims[RELEASE_DIMENSION]
    else:
        env, sep, release = str(key).partition("|")
        if not sep:
            raise ReleaseKeyError(f"deployment key {key!r} must be ENV|RELEASE, e.g. dev|main-3f9c2ab")
    return check_env(env), parse_release_key(release)
