"""What every stage asks first: which deployment is this, may it go on, what did the stages before it record.

Every stage is wrapped by `deploy_stage`: it holds the environment's deploy lease while it works (one deploy per
environment, whatever launched the run: ledger/leases.py), and only transient infrastructure failures are retried
(assets/retries.py).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import dagster as dg

from coderemote_pipeline.actions.release_tags import off_main_refusal
from coderemote_pipeline.assets.retries import STAGE_RETRY_POLICY, permanent_failures_fail_fast
from coderemote_pipeline.ledger.approvals import clearance
from coderemote_pipeline.ledger.gate import gate_refusal, overridden
from coderemote_pipeline.ledger.lease_fence import fence
from coderemote_pipeline.ledger.lease_slot import describe_run
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.records import Record
from coderemote_pipeline.ledger.releases import known_good, known_good_commit, last_smoke_failed
from coderemote_pipeline.ledger.stages import latest
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.failures import NOT_STARTED_AFTER_STOP
from coderemote_pipeline.rules.partitions import deployment_partitions_def, split_partition_key
from coderemote_pipeline.rules.release_keys import MAIN_REF

OWNERS = ["team:platform"]
STAGE_KWARGS: dict[str, Any] = {
    "partitions_def": deployment_partitions_def,
    "owners": OWNERS,
    "retry_policy": STAGE_RETRY_POLICY,
}
F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R", bound=Record)


def deploy_stage(stage: F) -> F:
    """The stage holds its environment's deploy lease while it runs, and fails fast on permanent errors."""

    @functools.wraps(stage)
    def run(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        with lease_held(context, context.partition_key) as lease:
            result = stage(context, *args, **kwargs)
            if stage.__name__ == names.SMOKE_RESULT:
                # The last stage done: the next deploy may go. Not on a failure: Dagster may retry the step, and in
                # that gap another deploy would take the env; a run that ends failed frees the lease as it ends.
                lease.release(context.run.run_id, context.log.info)
            return result

    return permanent_failures_fail_fast(run)  # type: ignore[return-value]


def lease_held(context, partition_key: str) -> AbstractContextManager[Lease]:
    """The env's deploy lease, held and heartbeaten by this run's step for as long as it works: by every stage and by
    the app's checks, which are steps of their own between two stages (a check running minutes without a
    heartbeat would let another deploy reclaim the lease from this working run). Lease.held itself, not wrapped in a
    generator of its own: each one adds a moment where a Ctrl-C leaves the beat running until garbage collection."""
    env, _ = split_partition_key(partition_key)
    if (now := context.instance.get_run_by_id(context.run.run_id)) is not None and now.tags.get(names.STOPPED_TAG):
        raise dg.Failure(description=NOT_STARTED_AFTER_STOP, allow_retries=False)
    describe = functools.partial(describe_run, context.instance)
    return Lease(context.instance, env).held(context.run.run_id, context.log.warning, describe, context.log.info)


def lease_fence(context: dg.AssetExecutionContext) -> Callable[[], None]:
    """The check in front of each write that changes what users get: this run still holds its env's lease (a step
    frozen past the reclaim time, on a host whose processes another host cannot see, lost it to the next deploy)."""
    env, _ = split_partition_key(context.partition_key)
    return fence(context.instance, env, context.run.run_id)


def run_tags(context: dg.AssetExecutionContext) -> Mapping[str, str]:
    """This run's tags. A run launched without its commit (from the UI) has it pinned by the first stage that
    resolves it (commit_for), and a later stage in the same process reads that back: a tag moved meanwhile cannot
    give the image one commit and the site another."""
    tags = context.run.tags
    if tags.get(names.COMMIT_TAG):
        return tags
    run = context.instance.get_run_by_id(context.run.run_id)
    return run.tags if run is not None else tags


def deployment(context: dg.AssetExecutionContext, environments: Environments) -> Deployment:
    """This run's deployment; refused when the env's policy refuses the release, whatever launched the run."""
    found = environments.deployment(context.partition_key, run_tags(context).get(names.COMMIT_TAG, ""))
    refusal = found.refusal()
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)
    return found


def require_cleared(context: dg.AssetExecutionContext, deploy: Deployment) -> tuple[str, ...]:
    """Approval and the promotion gate, checked in the stages that change what users get (infra, the switch), so
    a run launched from the UI, or any path that skipped the launcher's checks, is held too. Returns whose approvals
    cleared it (none for a rollback, which goes out on none)."""
    rollback = puts_back_what_served(context, deploy)
    cleared = clearance(context.instance, deploy.policy, deploy.release.key, deploy.commit or None,
                        rollback=rollback, at=_started(context))  # fmt: skip
    # Putting back what served the env (rollback: known good here at this commit, recorded live included) needs
    # no proof from the env before: the gate would hold the release prod serves when its last smoke failed.
    # rollback_job only: it reuses what was built; a deploy job tagged "rollback" by hand builds anew.
    gated = bool(deploy.commit) and not (rollback and context.run.job_name == names.ROLLBACK_JOB)
    refusal = cleared.refusal(deploy.env, deploy.release.key) or (
        gate_refusal(context.instance, deploy.policy, deploy.commit, context.run.tags) if gated else None
    )
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)
    return () if rollback else cleared.approvers


def require_on_main(context: dg.AssetExecutionContext, deploy: Deployment, app_source: AppSource) -> None:
    """A stable tag switched into an env of stable tags is on main, whatever launched the run (the UI, a retry, a
    hold made before the CLI refused such tags); a rollback puts back what served, and `--force --reason` is on
    the record."""
    if not deploy.must_be_on_main or overridden(run_tags(context)) or puts_back_what_served(context, deploy):
        return
    remote = app_source.remote()
    with contextlib.suppress(Exception):  # git's host down at the switch: judged on main as last fetched
        remote.fetch_refs(MAIN_REF)
    if (off_main := off_main_refusal(remote, deploy)) is not None:
        raise dg.Failure(description=f"nothing switched: {off_main}", allow_retries=False)


def puts_back_what_served(context: dg.AssetExecutionContext, deploy: Deployment) -> bool:
    """A rollback to what passed smoke in the env at this commit (or is recorded live there: the repair of a split
    env): it served the env with its approval, which stands however old, or voided since (a trigger tag alone does
    not make a deploy a rollback)."""
    if not names.is_rollback_run(context.run) or not deploy.commit:
        return False
    return known_good(context.instance, deploy.env, deploy.release.key, deploy.commit)


def _started(context: dg.AssetExecutionContext) -> float:
    """When this run was made, so an approval that stood when it started is not found expired at its switch, minutes
    later (a retry is a run of its own: made after the expiry, it needs a new approval)."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    return record.create_timestamp.timestamp() if record is not None else time.time()


def commit_for(context: dg.AssetExecutionContext, app_source: AppSource, deploy: Deployment) -> Deployment:
    """The deployment at its commit: pinned in the run's tags when it was launched, else resolved from git."""
    if deploy.commit:
        # Sensors pin the commit they saw on the remote without fetching it: make sure the mirror has it.
        return deploy.at(app_source.remote().ensure_commit(deploy.commit))
    pinned = deploy.at(_rollback_commit(context, deploy) or app_source.commit_of(deploy.release))
    _pin_launch_tags(context, app_source, pinned)
    return pinned


def _rollback_commit(context: dg.AssetExecutionContext, deploy: Deployment) -> str | None:
    """For a rollback launched without its commit (rollback_job from the UI): the commit that passed smoke in the
    env, not the one the tag names now; a release that never passed there is no rollback (and would skip checks)."""
    if not names.is_rollback_run(context.run):
        return None
    commit = known_good_commit(context.instance, deploy.env, deploy.release.key)
    if commit is None:
        failed_in = last_smoke_failed(context.instance, deploy.env, deploy.release.key)
        said = "never passed smoke" if failed_in is None else "did not pass its latest smoke"
        raise dg.Failure(description=f"{deploy.release.key} {said} in {deploy.env}: rollback_job puts back only a "
                         f"release that passed there. Deploy it instead (deploy_job, or `coderemote-pipeline deploy "
                         f"{deploy.env} {deploy.release.key}`)", allow_retries=False)  # fmt: skip
    return commit


def _pin_launch_tags(context: dg.AssetExecutionContext, app_source: AppSource, deploy: Deployment) -> None:
    """Give a run launched without them (the UI, a backfill) the tags the CLI gives its runs, those it lacks: the
    commit and its time, the remote and the layout it was built with. History and DORA, the promotion gate, retry,
    rollback and the settle net read them."""
    made = app_source.remote().commit_time(deploy.commit)
    tags = deploy.built_tags(names.TRIGGER_UI, app_source.remote_url, app_source.layout.to_json(), made)
    if not names.is_deploy_run(context.run):  # a stage or two short of the switch: no deploy of the env's record
        tags = {k: v for k, v in tags.items() if k not in (names.ENV_TAG, names.RELEASE_TAG, names.TRIGGER_TAG)}
    present = run_tags(context)
    missing = {key: value for key, value in tags.items() if not present.get(key)}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
        context.log.info(f"this run was launched without its commit: pinned {deploy.label} to {deploy.commit[:12]}")


def previous(context: dg.AssetExecutionContext, kind: type[R]) -> R | None:
    """What `kind`'s stage last recorded for this same partition (a re-run, a rollback), or None."""
    found = latest(context.instance, kind, str(context.partition_key))
    return found.record if found else None


def upstream(context: dg.AssetExecutionContext, kind: type[R]) -> R:
    """What an upstream stage recorded for this partition; its absence is a clear failure, not a KeyError."""
    record = previous(context, kind)
    if record is None:
        raise dg.Failure(
            description=f"{kind.ASSET} has never been materialized for {context.partition_key}: "
            f"materialize {kind.ASSET} (or the whole deploy) for this partition first",
            allow_retries=False,
        )
    return record


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
