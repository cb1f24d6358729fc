"""What every stage asks first: which deployment is this, what did the stages before it record, how long did it take."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from coderemote_pipeline.assets.retries import STAGE_RETRY_POLICY
from coderemote_pipeline.ledger.approvals import approval_refusal
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.partitions import deployment_partitions_def, parse_deployment_key
from coderemote_pipeline.rules.release_keys import Release

OWNERS = ["team:platform"]
COMMIT_TAG = "coderemote/commit"
TRIGGER_TAG = "coderemote/trigger"
ENV_TAG = "coderemote/env"
RELEASE_TAG = "coderemote/release"
# Transient infrastructure failures are retried (assets/retries.py); stages wrap themselves in
# `permanent_failures_fail_fast` so that nothing else is.
STAGE_KWARGS: dict[str, Any] = {
    "partitions_def": deployment_partitions_def,
    "owners": OWNERS,
    "retry_policy": STAGE_RETRY_POLICY,
}


def deployment(context: dg.AssetExecutionContext) -> tuple[str, Release]:
    """The env and release of this run's partition; refuses what the env's policy refuses, whatever launched it."""
    env, release = parse_deployment_key(context.partition_key)
    policy = policy_for(env)
    # Approval is checked here, not only where runs are launched, so the UI and every other path are gated too.
    refusal = policy.refusal(release) or approval_refusal(
        context.instance, env, release.key, context.run.tags.get(COMMIT_TAG), policy
    )
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)
    return env, release


def commit_for(context: dg.AssetExecutionContext, app_source: AppSource, release: Release) -> str:
    """The commit this run deploys: pinned in the run's tags when it was launched, else resolved from git."""
    pinned = context.run.tags.get(COMMIT_TAG)
    if pinned:
        # Sensors pin the commit they saw on the remote without fetching it: make sure the mirror has it.
        return app_source.remote().ensure_commit(pinned)
    return app_source.commit_of(release)


def partition_metadata(context: dg.AssetExecutionContext, asset: str) -> dict[str, Any] | None:
    """The metadata of the latest materialization of `asset` for this same partition, as plain values, or None."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[str(context.partition_key)]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def upstream_metadata(context: dg.AssetExecutionContext, asset: str) -> dict[str, Any]:
    """What an upstream stage recorded for this partition; its absence is a clear failure, not a KeyError."""
    metadata = partition_metadata(context, asset)
    if metadata is None:
        raise dg.Failure(
            description=f"{asset} has never been materialized for {context.partition_key}: "
            f"materialize {asset} (or the whole deploy) for this partition first",
            allow_retries=False,
        )
    return metadata


def stack_outputs(context: dg.AssetExecutionContext) -> dict[str, str]:
    return dict(upstream_metadata(context, "infra_stack")["stack_outputs"])


class Stopwatch:
    """Seconds per sub-step, recorded as numbers so the UI plots them."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[f"{name}_s"] = round(self.seconds.get(f"{name}_s", 0.0) + time.monotonic() - start, 3)

    def metadata(self) -> dict[str, float]:
        return {**self.seconds, "total_s": round(time.monotonic() - self.started, 3)}
