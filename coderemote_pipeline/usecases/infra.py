"""`infra ENV history|preview|refresh`: the strategy's infrastructure rollback steps as commands. `history` lists
every infra update the pipeline applied to the env (release, run, changes; from the ledger) and, on the aws target,
Pulumi's own stack history; `preview` and `refresh` are `pulumi preview` and `pulumi refresh` of the env's stack
through the Automation API on aws, and the emulator provisioner's read-only plan locally."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from coderemote_pipeline.ledger.records import StackRecord
from coderemote_pipeline.ledger.stages import in_run
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.settings import Settings

RECENT_RUNS = 30


def applied_updates(instance: dg.DagsterInstance, env: str) -> list[str]:
    """The infra updates the pipeline's runs applied to `env`, newest first (runs found by their env tag)."""
    lines = []
    for record in instance.get_run_records(dg.RunsFilter(tags={names.ENV_TAG: env}), limit=RECENT_RUNS):
        run = record.dagster_run
        if not names.is_deploy_run(run):
            continue
        found = in_run(instance, StackRecord, run)
        if found is None:
            continue
        when = dt.datetime.fromtimestamp(found.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        stack = found.record
        what = "; ".join(stack.changes[:3]) + (" …" if len(stack.changes) > 3 else "") if stack.changes else "no change"
        lines.append(f"{when}  {run.tags.get(names.RELEASE_TAG, '?'):<16} run {run.run_id[:8]}  "
                     f"{stack.change_count} change(s): {what}")  # fmt: skip
    return lines


def infra(settings: Settings, instance: dg.DagsterInstance, env: str, action: str) -> list[str]:
    check_env(env)
    provisioner = resources_for(settings)["provisioner"]
    if action == "history":
        own = provisioner.history(env)
        return [*applied_updates(instance, env), *(["", "the stack's own history:", *own] if own else [])]
    config = policy_for(env, settings.infra_dir).stack
    changes = provisioner.preview(env, config) if action == "preview" else provisioner.refresh(env, config)
    verdict = "would change" if action == "preview" else "differs from what was applied"
    return [f"{env}: {verdict}:", *(f"  {c}" for c in changes)] if changes else [f"{env}: nothing to change"]
