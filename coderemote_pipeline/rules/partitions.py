"""The partitions of every stage, defined once: environment × release."""

from __future__ import annotations

import dagster as dg

from coderemote_pipeline.rules.env_names import ENVIRONMENTS
from coderemote_pipeline.rules.release_keys import ReleaseKeyError

ENV_DIMENSION = "env"
RELEASE_DIMENSION = "release"

env_partitions_def = dg.StaticPartitionsDefinition(list(ENVIRONMENTS))
release_partitions_def = dg.DynamicPartitionsDefinition(name="release")
deployment_partitions_def = dg.MultiPartitionsDefinition(
    {ENV_DIMENSION: env_partitions_def, RELEASE_DIMENSION: release_partitions_def}
)


def partition_key(env: str, release: str) -> str:
    """`dev|main-3f9c2ab`: the partition key of one deployment, as Dagster spells a MultiPartitionKey."""
    return str(dg.MultiPartitionKey({ENV_DIMENSION: env, RELEASE_DIMENSION: release}))


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """`dev|main-3f9c2ab` → ("dev", "main-3f9c2ab"), unvalidated (see rules.deployment for the parsed value)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[ENV_DIMENSION], dims[RELEASE_DIMENSION]
    env, sep, release = str(key).partition("|")
    if not sep:
        raise ReleaseKeyError(f"deployment key {key!r} must be ENV|RELEASE, e.g. dev|main-3f9c2ab")
    return env, release


def env_tags(env: str, release: str) -> dict[str, str]:
    """The tags Dagster gives a materialization of ENV|RELEASE; runless records written by the ledger carry them
    too, so every record of a deployment looks alike in the instance."""
    return {f"dagster/partition/{ENV_DIMENSION}": env, f"dagster/partition/{RELEASE_DIMENSION}": release}
