"""Executing one deployment run in this process, and what follows its end: the progress lines while it runs, the
settling of a failed run (what the environment serves, put back when split), the delivery figures, the lease.

Runs go into the persistent instance under DAGSTER_HOME, so `dagster dev` afterwards shows them with lineage and
timings exactly as if they had been launched from the UI.
"""

from __future__ import annotations

import atexit
import gc
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from coderemote_pipeline.actions.failure_report import already_settled, settle_failed_run, verdict
from coderemote_pipeline.actions.git_remote import GitRemote
from coderemote_pipeline.definitions import reconstructable_deploy_job
from coderemote_pipeline.ledger.figures import record_figures
from coderemote_pipeline.ledger.instance_problems import RunCutOff, storage_problem
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.process_place import process_place
from coderemote_pipeline.resources.targets import check_ready, resources_for, target_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.failures import INTERRUPTED, each_reason_once
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.progress import QUIET, failure_text, follow, worker_output_to


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

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or a stop signal: whichever step or set-up it stopped, the failure says so."""
        return INTERRUPTED in self.failure


def run_tags(deploy: Deployment, settings: Settings, trigger: str, extra: dict[str, str] | None) -> dict[str, str]:
    """The deployment's tags, plus how the release is built (remote, layout) and when its commit was made."""
    made = GitRemote(settings.app_remote, settings.work_dir / "git").commit_time(deploy.commit)
    return {**deploy.built_tags(trigger, settings.app_remote, settings.app_layout.to_json(), made), **(extra or {})}


CHECK_PREFIX = "check:"
# How long a failed run's settle waits for a run that holds the env's lease and deploys nothing before saying so.
SAY_WAIT_AFTER_S = 3.0
_GC_SETTLED: list[bool] = []


def settle_garbage_collector() -> None:
    """Once per process that executes runs: what is loaded by now (Dagster, boto3, the definitions, the instance)
    lives as long as the process, so it leaves the collector's generations, and the process's exit frees its objects
    without walking them. Measured on a CLI deploy (2026-12, this 2-core machine): the collector's full passes took
    0.7-1.4 s of the run, and the interpreter's exit 1.0-1.4 s after the summary was printed; frozen, 0.06 s.
    Garbage that exists at this moment is never collected: one process's start-up, not one per run."""
    if not _GC_SETTLED:
        _GC_SETTLED.append(True)
        gc.freeze()
        atexit.register(gc.freeze)


def _stage_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """What each stage recorded in the run (by asset name), and each app check (`check:<name>`)."""
    stages: dict[str, dict[str, Any]] = {}
    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    for record in instance.all_logs(run_id, of_type=kinds):
        event = record.get_dagster_event()
        if event.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            values = {k: v.value for k, v in evaluation.metadata.items()}
            stages[f"{CHECK_PREFIX}{evaluation.check_name}"] = {**values, "passed": evaluation.passed}
        elif (mat := record.asset_materialization) is not None:
            stages[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return stages


def launch(
    deploy: Deployment,
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    job_name: str,
    trigger: str,
    echo: Callable[[str], None] = print,
    extra_tags: dict[str, str] | None = None,
    reexecute: dg.ReexecutionOptions | None = None,
) -> DeployOutcome:
    """Run `job_name` for `deploy`'s partition (the stages the job selects) and report. With `reexecute` (of a
    failed run of the same job and partition), only the steps it selects."""
    check_ready(settings, job_name)
    request_id = uuid.uuid4().hex
    tags = {**run_tags(deploy, settings, trigger, extra_tags), names.REQUEST_TAG: request_id,
            names.EXECUTED_BY_TAG: f"{process_place()}:{os.getpid()}"}  # fmt: skip
    started, done, found = time.monotonic(), threading.Event(), []
    follower = threading.Thread(target=follow, args=(instance, request_id, done, echo, found), daemon=True)
    follower.start()
    job = reconstructable_deploy_job(job_name, settings)
    settle_garbage_collector()
    try:
        with worker_output_to(settings.state_dir / "logs" / "workers.log"):
            result = dg.execute_job(
                job,
                instance=instance,
                tags=tags,
                run_config=QUIET,
                reexecution_options=reexecute,
            )
        run_id, success, why = result.run_id, result.success, ""
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
        # Stopped (Ctrl-C, `kill`) while Dagster set the run up, before its steps watch for it: what follows a
        # failed run still happens, so the environment is left whole, its lease free, the run not left STARTED.
        run_id, success, why = _interrupted_run(instance, request_id), False, INTERRUPTED
    except Exception as exc:
        if storage_problem(exc) is None:
            raise
        # Nothing can be read or settled without the instance: the person gets where the env may be, and the way on.
        raise RunCutOff(deploy.env, deploy.label, found[0] if found else None) from exc
    finally:
        done.set()
        follower.join(timeout=10)
    # A failed run's settle takes the lease over from it (no other deploy of the env may start before the env is
    # whole again) and frees it; released after in any case: the settle may have had nothing to do, or failed.
    try:
        try:
            failure = "" if success else _settle(instance, run_id, deploy, settings, why, echo)
        finally:
            Lease(instance, deploy.env).release(run_id)
        record_figures(instance, deploy.env, run_id)
    except Exception as exc:
        if storage_problem(exc) is None:
            raise
        raise RunCutOff(deploy.env, deploy.label, run_id, ended="succeeded" if success else "failed") from exc
    return DeployOutcome(run_id, job_name, deploy.env, deploy.release.key, deploy.commit, success,
                         time.monotonic() - started, _stage_metadata(instance, run_id), failure)  # fmt: skip


def _interrupted_run(instance: dg.DagsterInstance, request_id: str) -> str:
    runs = instance.get_runs(dg.RunsFilter(tags={names.REQUEST_TAG: request_id}), limit=1)
    if not runs:
        raise KeyboardInterrupt  # stopped before the run was created: nothing ran, nothing to settle
    if not runs[0].is_finished:
        instance.report_run_failed(runs[0], INTERRUPTED)
    return runs[0].run_id


def _settle(instance: dg.DagsterInstance, run_id: str, deploy: Deployment, settings: Settings, why: str,
            echo: Callable[[str], None]) -> str:  # fmt: skip
    failures = [r.get_dagster_event() for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
    text = each_reason_once([(e.step_key, failure_text(e.step_failure_data.error)) for e in failures])
    text = text or why or "run failed"
    run = instance.get_run_by_id(run_id)
    if run is not None:
        target = target_for(resources_for(settings), settings.app_layout)
        try:
            settled = settle_failed_run(instance, run, deploy.policy, target, patience=SAY_WAIT_AFTER_S)
        except KeyboardInterrupt:
            # A second Ctrl-C: the env may be half switched. The run is left to the waiting-settles sensor, which
            # settles it once the daemon runs, rather than to nobody.
            if not already_settled(instance, run_id):
                instance.add_run_tags(run_id, {names.SETTLE_TAG: names.SETTLE_WAITING})
                echo(f"stopped again while {deploy.env} was being settled: run {run_id[:8]} is left marked to settle "
                     "(the daemon's waiting-settles sensor does it: `coderemote-pipeline ui`)")  # fmt: skip
            raise
        if settled is not None and settled.waiting:
            # No daemon may be running to settle it later: the command waits, saying for what.
            echo(f"{settled.text} (this command waits for it)")
            run = instance.get_run_by_id(run_id) or run
            settled = settle_failed_run(instance, run, deploy.policy, target)
            while settled is None and (said := verdict(instance, run_id)) is None:
                # The waiting-settles sensor got the lease first: its verdict is on its way (or, if its process
                # died, its lease goes silent and this try reclaims it and settles).
                time.sleep(0.5)
                settled = settle_failed_run(instance, run, deploy.policy, target)
            text = f"{text}. {said}" if settled is None else text
        if settled is not None:
            text = f"{text}. {settled.text}"
    return text
