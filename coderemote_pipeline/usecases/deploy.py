"""One deployment through Dagster: resolve the ref, check policy, register the release, run the six stages.

Runs go into the persistent instance under DAGSTER_HOME, so `dagster dev` afterwards shows them with lineage and
timings exactly as if they had been launched from the UI.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from coderemote_pipeline.actions.failure_report import settle_after_failure
from coderemote_pipeline.assets.common import COMMIT_TAG, ENV_TAG, RELEASE_TAG, TRIGGER_TAG
from coderemote_pipeline.ledger.approvals import approval_refusal
from coderemote_pipeline.ledger.gate import OVERRIDE_BY_TAG, OVERRIDE_TAG, gate_refusal
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.partitions import ENV_DIMENSION, RELEASE_DIMENSION, check_env, deployment_key
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings

REQUEST_TAG = "coderemote/request"
QUALIFIED_CLASS = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)+[A-Z]\w*: ")
# The event log keeps every event for the UI; the terminal gets our own progress lines, not Dagster's DEBUG stream.
HISTORY_SCAN = 200
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
STAGE_ORDER = [
    "infra_stack",
    "api_image",
    "lambda_version",
    "frontend_bundle",
    "cloudfront_invalidation",
    "smoke_result",
]


class DeployRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class Override:
    """`--force --reason`: deploy past the promotion gate; who and why stay on the run, so in its history."""

    reason: str
    by: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise DeployRefused("--force needs --reason TEXT: say why the promotion gate is overridden")

    def tags(self) -> dict[str, str]:
        return {OVERRIDE_TAG: self.reason.strip(), OVERRIDE_BY_TAG: self.by}


@dataclass
class DeployOutcome:
    run_id: str
    job_name: str
    env: str
    release: str
    commit: str
    success: bool
    seconds: float
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str = ""


def dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME if set, else the project's own instance inside the state directory (SQLite, telemetry off)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(dagster_home(settings)))


def export_settings(settings: Settings) -> None:
    """For processes that load the code location themselves (`dagster dev`): the same settings, via environment."""
    os.environ.update({f"CODEREMOTE_{k.upper()}": v for k, v in settings.as_fields().items() if k != "app_remote"})
    os.environ["CODEREMOTE_APP_REMOTE"] = settings.app_remote
    os.environ["DAGSTER_HOME"] = str(dagster_home(settings))


def failure_text(error: Any) -> str:
    """The user's exception message, without Dagster's wrappers ("Error occurred while executing op ...", and
    "Exceeded max_retries of N" when the stage's RetryPolicy gave up on a transient error: then it says so)."""
    tries = ""
    while error is not None and error.cause is not None:
        if error.message.startswith("Exceeded max_retries of "):
            tries = f" (still failing after {int(error.message.split()[-1]) + 1} tries)"
        elif "Error occurred while executing" not in error.message:
            break
        error = error.cause
    if error is None:
        return "unknown error"
    # "dagster._core.definitions.events.Failure: ", "botocore.exceptions.EndpointConnectionError: ": the class is
    # the reader's least concern.
    return QUALIFIED_CLASS.sub("", error.message.strip(), count=1) + tries


def _built_before(instance: dg.DagsterInstance, asset: str, commit: str) -> bool:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=HISTORY_SCAN).records
    return any(
        r.asset_materialization is not None
        and getattr(r.asset_materialization.metadata.get("commit"), "value", None) == commit
        and getattr(r.asset_materialization.metadata.get("build_mode"), "value", "runtime_config") == "runtime_config"
        for r in records
    )


def choose_job(instance: dg.DagsterInstance, commit: str, executor: str = "auto") -> str:
    """deploy_job (parallel branches) when something must be built; redeploy_job (one process) when nothing does."""
    if executor == "parallel":
        return "deploy_job"
    if executor == "serial":
        return "redeploy_job"
    reusable = _built_before(instance, "api_image", commit) and _built_before(instance, "frontend_bundle", commit)
    return "redeploy_job" if reusable else "deploy_job"


def deployment_tags(env: str, release: str, commit: str, trigger: str) -> dict[str, str]:
    key = deployment_key(env, release)
    return {
        "dagster/partition": str(key),
        f"dagster/partition/{ENV_DIMENSION}": env,
        f"dagster/partition/{RELEASE_DIMENSION}": release,
        ENV_TAG: env,
        RELEASE_TAG: release,
        COMMIT_TAG: commit,
        TRIGGER_TAG: trigger,
    }


def _stage_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    stages: dict[str, dict[str, Any]] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = record.asset_materialization
        if mat is not None:
            stages[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return stages


def _follow(instance: dg.DagsterInstance, request_id: str, done: threading.Event, echo: Callable[[str], None]):
    """Print step starts, successes and failures as they land in the event log of the run we launched."""
    marks = {
        dg.DagsterEventType.STEP_START: "…",
        dg.DagsterEventType.STEP_SUCCESS: "✓",
        dg.DagsterEventType.STEP_FAILURE: "✗",
    }
    run_id, seen, started = None, 0, {}
    while True:
        finished = done.wait(0.25)
        if run_id is None:
            runs = instance.get_run_records(dg.RunsFilter(tags={REQUEST_TAG: request_id}), limit=1)
            run_id = runs[0].dagster_run.run_id if runs else None
        if run_id is not None:
            logs = instance.all_logs(run_id)
            for record in logs[seen:]:
                event = record.dagster_event
                if event is None or event.event_type not in marks or not event.step_key:
                    continue
                if event.event_type is dg.DagsterEventType.STEP_START:
                    started[event.step_key] = record.timestamp
                    echo(f"  … {event.step_key}")
                else:
                    took = record.timestamp - started.get(event.step_key, record.timestamp)
                    echo(f"  {marks[event.event_type]} {event.step_key} ({took:.1f}s)")
            seen = len(logs)
        if finished:
            return


def check_deployable(
    instance: dg.DagsterInstance, env: str, release: str, commit: str, override: Override | None = None
) -> dict[str, str]:
    """Refuse, with the reason and the fix, what ENV may not run: its policy, its approval, its promotion gate.
    Returns the tags that carry an override onto the run."""
    policy = policy_for(env)
    extra_tags = override.tags() if override else {}
    refusal = (
        policy.refusal(parse_release_key(release))
        or approval_refusal(instance, env, release, commit)
        or gate_refusal(instance, policy, commit, extra_tags)
    )
    if refusal:
        raise DeployRefused(refusal)
    return extra_tags


def run_deployment(
    env: str,
    ref: str,
    *,
    settings: Settings,
    trigger: str = "cli",
    echo: Callable[[str], None] = print,
    preflight: Callable[[], None] | None = None,
    instance: dg.DagsterInstance | None = None,
    executor: str = "auto",
    override: Override | None = None,
) -> DeployOutcome:
    """Deploy a REF of the app remote (branch, tag or commit) to ENV."""
    check_env(env)
    app = AppSource(**settings.app_source_fields())
    resolved = app.remote().resolve(ref)
    app.check_paths(resolved.commit)
    release = parse_release_key(resolved.release_key)
    instance = instance or open_instance(settings)
    extra_tags = check_deployable(instance, env, release.key, resolved.commit, override)
    if preflight is not None:
        preflight()
    instance.add_dynamic_partitions(RELEASE_DIMENSION, [release.key])
    job_name = choose_job(instance, resolved.commit, executor)
    echo(f"deploying {ref} → {env}|{release.key} (commit {resolved.commit[:12]}) with {job_name}")
    return launch(env, release.key, resolved.commit, settings=settings, instance=instance, job_name=job_name,
                  trigger=trigger, echo=echo, extra_tags=extra_tags)  # fmt: skip


def launch(
    env: str,
    release: str,
    commit: str,
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    job_name: str,
    trigger: str,
    echo: Callable[[str], None] = print,
    stages: list[str] | None = None,
    extra_tags: dict[str, str] | None = None,
    from_failure_of: str | None = None,
) -> DeployOutcome:
    """Run `job_name` for the partition ENV|RELEASE (all six stages, or `stages` and what they need) and report.
    With `from_failure_of` (a failed run of the same job and partition), re-execute that run from its failure:
    only the steps that did not succeed, and what depends on them."""
    from coderemote_pipeline.definitions import reconstructable_deploy_job

    tags = {**deployment_tags(env, release, commit, trigger), **(extra_tags or {})}
    request_id = uuid.uuid4().hex
    tags[REQUEST_TAG] = request_id
    started = time.monotonic()
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(instance, request_id, done, echo), daemon=True)
    follower.start()
    try:
        result = dg.execute_job(
            reconstructable_deploy_job(job_name, settings),
            instance=instance,
            tags=tags,
            run_config=QUIET,
            asset_selection=[dg.AssetKey(s) for s in stages] if stages else None,
            reexecution_options=dg.ReexecutionOptions.from_failure(from_failure_of, instance)
            if from_failure_of
            else None,
        )
    finally:
        done.set()
        follower.join(timeout=10)
    failure = ""
    if not result.success:
        failures = [e for e in result.all_events if e.event_type is dg.DagsterEventType.STEP_FAILURE]
        failure = (
            "; ".join(f"{e.step_key}: {failure_text(e.step_failure_data.error)}" for e in failures) or "run failed"
        )
        # Say what the env serves after this failure (a parallel branch may have gone live), and roll back an
        # auto_rollback env the failure left on anything but its recorded release (after_failure.py).
        settled = settle_after_failure(instance, result.run_id, settings)
        if settled is not None:
            failure = f"{failure}. {settled.text}"
    return DeployOutcome(
        run_id=result.run_id,
        job_name=job_name,
        env=env,
        release=release,
        commit=commit,
        success=result.success,
        seconds=time.monotonic() - started,
        stages=_stage_metadata(instance, result.run_id),
        failure=failure,
    )
