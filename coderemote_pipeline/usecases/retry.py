"""Re-executing a failed deploy or rollback run from its failure.

Only the steps that did not succeed run again (and what depends on them), in a new run of the same job, partition
and tags, linked to the failed one as its parent: the UI's "Re-execute from failure", from a terminal. Every stage
is safe to repeat, so this finishes a deploy that an infrastructure fault interrupted. The retry uses the remote and
layout the failed run recorded, whatever the caller's environment says. A run whose process was killed stays
STARTED in the instance; `mark_failed` records it as failed first. `retry ENV` takes the env's last run.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.ledger.history import switched_in
from coderemote_pipeline.ledger.lease_slot import STEP
from coderemote_pipeline.ledger.leases import HEARTBEAT_S, POLL_S, Holder, Lease
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.process_place import process_gone
from coderemote_pipeline.local_stack.processes import pid_alive
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import DeployRefused
from coderemote_pipeline.usecases.launch import DeployOutcome, launch
from coderemote_pipeline.usecases.rollback import settings_of

PAGE = 500
_RUN_ID = re.compile(r"[0-9a-f-]+")
RETRYABLE = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def find_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """A run by its id, or by the first characters of it (the CLI and the UI show 8), newest runs first."""
    run = instance.get_run_by_id(run_id) if len(run_id) == 36 else None
    if run is not None:
        return run
    where = "`coderemote-pipeline history ENV` lists an environment's runs with their ids"
    if len(run_id) < 4:
        raise DeployRefused(f"run id {run_id!r} is too short: give its first 4+ characters ({where})")
    matches: list[dg.DagsterRun] = []
    cursor = None
    while True:
        page = instance.get_runs(limit=PAGE, cursor=cursor)
        matches += [r for r in page if r.run_id.startswith(run_id)]
        if len(matches) > 1 or len(page) < PAGE:
            break
        cursor = page[-1].run_id
    if not matches:
        raise DeployRefused(f"no run's id starts with {run_id!r} in this instance: {where}")
    if len(matches) > 1:
        raise DeployRefused(f"{len(matches)} runs with id {run_id!r} in this instance: give more of the id (4+ "
                            "characters)")  # fmt: skip
    return matches[0]


def _newest_run(instance: dg.DagsterInstance, env: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env}), limit=1)  # deploy and rollback runs only
    return runs[0] if runs else None


def last_deploy_run(instance: dg.DagsterInstance, env: str) -> dg.DagsterRun:
    """`retry ENV`: the env's newest deploy or rollback run, which must be the one that failed; an older failure
    is not retried over a newer run (it would put an older release back)."""
    run = _newest_run(instance, env)
    if run is None:
        raise DeployRefused(f"{env} has no deploy or rollback run to retry")
    if run.status not in RETRYABLE and run.status is not dg.DagsterRunStatus.STARTED:
        raise DeployRefused(
            f"{env}'s last run {run.run_id[:8]} ({run.tags.get(names.RELEASE_TAG)}) is {run.status.value}: "
            "nothing to retry"
        )
    return run


def _refuse_if_superseded(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """A retry finishes the env's last run; re-executing an older one would put its release back over what came
    after (as `retry ENV` refuses: only the last run is retried)."""
    env, release = run.tags[names.ENV_TAG], run.tags[names.RELEASE_TAG]
    later = _newest_run(instance, env)
    if later is None or later.run_id == run.run_id:
        return
    commit = run.tags.get(names.COMMIT_TAG, "")
    ref = release if release.startswith("v") or not commit else commit[:12]
    raise DeployRefused(
        f"run {run.run_id[:8]} ({release}) is not {env}'s last run: run {later.run_id[:8]} "
        f"({later.tags.get(names.RELEASE_TAG, '?')}, {later.status.value.lower()}) came after it, and retrying the "
        f"older one would put {release} back over it. To deploy {release} again: coderemote-pipeline deploy {env} "
        f"{ref}" + (f"; to finish the last run: coderemote-pipeline retry {later.run_id[:8]}"
                    if later.status in RETRYABLE else "")
    )


def _gone_from_here(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the process that executed the run was on this machine and is gone, and nothing heartbeats for it
    since: then nobody need wait out the lease's reclaim time to know it is dead."""
    lease = Lease(instance, run.tags[names.ENV_TAG])
    holder = lease.holder()
    if holder is None or holder.run_id != run.run_id or holder.step != STEP:
        return False
    if names.EXECUTED_BY_TAG in run.tags:  # the process, its host's boot and pid namespace: what the sensors judge
        return process_gone(run) is not None and _no_more_beats(lease, holder)
    if holder.where != socket.gethostname():
        return False
    # A run from before the tag, or a daemon's run worker: the pid its engine event names, on this host.
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.get_dagster_event().event_specific_data
        pid = data.metadata.get("pid") if data is not None and data.metadata else None
        if pid is not None:  # "Executing steps in process (pid: N)", or the multiprocess executor's parent
            return not pid_alive(int(str(pid.value))) and _no_more_beats(lease, holder)
    return False


def _no_more_beats(lease: Lease, holder: Holder) -> bool:
    """A step started by a process-per-step executor outlives its killed parent and keeps beating: a few heartbeat
    periods without a new beat tell it is gone too (seconds, against the lease's reclaim time)."""
    quiet_s = 3 * HEARTBEAT_S
    while holder.beat is not None and time.time() - holder.beat < quiet_s:
        time.sleep(POLL_S)
        now = lease.holder()
        if now is None or (now.run_id, now.step) != (holder.run_id, holder.step):
            return True  # freed or reclaimed meanwhile
        if (now.beat or 0.0) > (holder.beat or 0.0):  # a new beat (a row dropped meanwhile only makes it older)
            return False
    return True


def _to_mark_failed(instance: dg.DagsterInstance, run: dg.DagsterRun, mark_failed: bool) -> bool:
    """Whether the run must be marked failed before its retry; refuses a run that cannot be retried."""
    if mark_failed and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        alive = Lease(instance, run.tags[names.ENV_TAG]).working(run.run_id)
        if alive and not _gone_from_here(instance, run):
            # Marked failed, it would lose the lease to the retry: two deploys of one env at once.
            raise DeployRefused(f"run {run.run_id[:8]} may still be running: {alive}")
        return True
    if run.status not in RETRYABLE:
        hint = " (if its process is gone, add --mark-failed)" if run.status is dg.DagsterRunStatus.STARTED else ""
        raise DeployRefused(f"run {run.run_id[:8]} is {run.status.value}: only a failed run is re-executed{hint}")
    return False


def retry_from_failure(
    run_id: str,
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    mark_failed: bool = False,
    echo: Callable[[str], None] = print,
    preflight: Callable[[], None] | None = None,
) -> DeployOutcome:
    """`preflight`: raises when the target cannot take a run, before the failed run is marked or a new one made."""
    envs = load_policies(settings.infra_dir)
    if run_id not in envs and not _RUN_ID.fullmatch(run_id):
        # Not hex: a mistyped environment (`prodd`) rather than a run id, which `too short` would misname.
        raise DeployRefused(f"{run_id[:80]!r} is neither an environment ({', '.join(envs)}) nor a run id: give "
                            "one (`coderemote-pipeline history ENV` lists an environment's runs and their "
                            "ids)")  # fmt: skip
    run = last_deploy_run(instance, run_id) if run_id in envs else find_run(instance, run_id)
    if names.ENV_TAG not in run.tags or names.RELEASE_TAG not in run.tags:
        raise DeployRefused(f"run {run.run_id[:8]} ({run.job_name}) is not a deploy or rollback run")
    _refuse_if_superseded(instance, run)
    marking = _to_mark_failed(instance, run, mark_failed)
    if preflight is not None:
        preflight()
    if marking:
        instance.report_run_failed(run, "marked failed by `coderemote-pipeline retry --mark-failed`: process gone")
        run = find_run(instance, run.run_id)
    carried = carried_tags(run)
    deploy = Deployment.of(run.tags[names.ENV_TAG], run.tags[names.RELEASE_TAG], envs,
                           run.tags.get(names.COMMIT_TAG, ""))  # fmt: skip
    reexecute, why = _steps_to_rerun(instance, run, deploy)
    echo(f"re-executing {run.run_id[:8]} ({run.job_name}, {deploy.label}) {why}")
    return launch(deploy, settings=settings_of(settings, dict(run.tags)), instance=instance, job_name=run.job_name,
                  trigger=names.TRIGGER_RETRY, echo=echo, extra_tags=carried, reexecute=reexecute)  # fmt: skip


# What a retry carries from the run it re-executes (Dagster gives a re-execution only the tags it is passed): the
# override and who approved it, and checks skipped on purpose, which would otherwise run and could fail the retry.
CARRIED = (names.OVERRIDE_TAG, names.OVERRIDE_BY_TAG, names.APPROVED_BY_TAG, names.SKIP_CHECKS_TAG,
           names.SKIP_CHECKS_BY_TAG)  # fmt: skip


def carried_tags(run: dg.DagsterRun) -> dict[str, str]:
    return {key: value for key, value in run.tags.items() if key in CARRIED}


def _steps_to_rerun(instance: dg.DagsterInstance, run: dg.DagsterRun, deploy: Deployment) -> tuple[
        dg.ReexecutionOptions, str]:  # fmt: skip
    """From failure; from the switch on when the run had switched and its failure put the env back on the release
    before (the automatic rollback, or the settle after it, recorded for this run): re-running only the steps after
    the switch would smoke-test a release nobody serves, and fail every time. Without that record the env may still
    serve the release (auto_rollback off, a process killed mid-bake): the steps after the switch finish it, its
    bake included, as they would have."""
    from_failure = dg.ReexecutionOptions.from_failure(run.run_id, instance)
    live = recorded_live(instance, deploy.env)
    if live is None or not live.automatic or live.release == deploy.release.key:
        return from_failure, "from failure"
    lineage = _lineage(instance, run)
    if live.run_id not in {a.run_id for a in lineage} or not any(switched_in(instance, a.run_id) for a in lineage):
        return from_failure, "from failure"  # not put back by this run's failure, or the switch runs again anyway
    return (dg.ReexecutionOptions(run.run_id, step_selection=[f"{names.TRAFFIC_SHIFT}*"]),
            f"from {names.TRAFFIC_SHIFT} (the failure put {deploy.env} back on {live.release}, so the switch runs "
            "again)")  # fmt: skip


def _lineage(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.DagsterRun]:
    """`run` and the runs it re-executed, newest first."""
    found = [run]
    while found[-1].parent_run_id and (parent := instance.get_run_by_id(found[-1].parent_run_id)) is not None:
        found.append(parent)
    return found
