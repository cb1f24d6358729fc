"""What is live in each environment, as the pipeline recorded it and as the target itself reports it.

The record is the `live_release` asset, partitioned by environment: one materialization each time an environment's
live release changes (a deploy whose smoke passed, a rollback, an automatic rollback), so the UI shows per env the
history of what was live, since when, by which run. The target is asked separately; a difference is drift.
"""

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.partitions import env_partitions_def

LIVE_RELEASE = dg.AssetKey("live_release")

live_release = dg.AssetSpec(
    LIVE_RELEASE,
    partitions_def=env_partitions_def,
    group_name="live",
    kinds={"aws"},
    owners=["team:platform"],
    description="The release live in each environment: recorded by every deploy, rollback and automatic rollback.",
)


@dataclass(frozen=True)
class TargetState:
    version: str
    release: str
    commit: str
    digest: str
    frontend_release: str | None
    runtime: dict[str, str] | None


def record_live(instance: dg.DagsterInstance, env: str, *, reason: str, run_id: str, **fields: Any) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=LIVE_RELEASE,
            partition=env,
            description=reason,
            metadata={**fields, "reason": reason, "run_id": run_id, "since": time.time()},
        )
    )


def recorded_live(instance: dg.DagsterInstance, env: str) -> dict[str, Any] | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LIVE_RELEASE, asset_partitions=[env]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def release_of_version(description: str) -> tuple[str, str]:
    """A version's description is "<release> <commit12>" (lambda_deploy.version_description)."""
    release, _, commit = description.partition(" ")
    return release, commit


def target_state(lam: Any, s3: Any, outputs: dict[str, str], runtime: dict[str, str] | None) -> TargetState:
    alias = lam.get_alias(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Name=outputs[out.LAMBDA_ALIAS_NAME])
    version = alias["FunctionVersion"]
    config = lam.get_function_configuration(FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Qualifier=version)
    release, commit = release_of_version(config.get("Description", ""))
    return TargetState(
        version=version,
        release=release,
        commit=commit,
        digest=config.get("CodeSha256", ""),
        frontend_release=store.live_release(s3, outputs[out.FRONTEND_BUCKET]),
        runtime=runtime,
    )


def drift(recorded: dict[str, Any] | None, target: TargetState) -> list[str]:
    """Every way the target differs from what the pipeline last made live."""
    if recorded is None:
        return []
    problems = []
    if str(recorded.get("version")) != target.version:
        problems.append(
            f"alias points to version {target.version} ({target.release or 'no release'}), "
            f"recorded {recorded.get('version')} ({recorded.get('release')})"
        )
    if recorded.get("frontend_release") and recorded.get("frontend_release") != target.frontend_release:
        problems.append(f"site serves {target.frontend_release}, recorded {recorded.get('frontend_release')}")
    if target.runtime is not None and target.runtime.get("version") not in (None, target.version):
        problems.append(f"the API runtime serves version {target.runtime.get('version')}, alias {target.version}")
    return problems


def env_outputs(instance: dg.DagsterInstance, env: str) -> dict[str, str] | None:
    """The stack outputs of the env's latest infra_stack materialization (any release)."""
    for record in instance.fetch_materializations(dg.AssetKey("infra_stack"), limit=200).records:
        mat = record.asset_materialization
        if mat is not None and str(mat.partition or "").startswith(f"{env}|"):
            return dict(mat.metadata["stack_outputs"].value)
    return None


@dataclass(frozen=True)
class Passed:
    """A release whose smoke passed in an env: the proof a promotion gate or a rollback looks for."""

    env: str
    release: str
    commit: str
    run_id: str
    at: float


def passed_releases(instance: dg.DagsterInstance, env: str) -> list[Passed]:
    """Every release whose smoke passed in env, newest first, each release once (its latest pass)."""
    seen: dict[str, Passed] = {}
    for record in instance.fetch_materializations(dg.AssetKey("smoke_result"), limit=500).records:
        mat = record.asset_materialization
        if mat is None or not str(mat.partition or "").startswith(f"{env}|"):
            continue
        release = str(mat.partition).split("|", 1)[1]
        if release not in seen and getattr(mat.metadata.get("passed"), "value", False):
            commit = str(mat.metadata["commit"].value)
            seen[release] = Passed(env, release, commit, record.run_id, record.timestamp)
    return list(seen.values())
