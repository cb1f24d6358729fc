"""After a deploy run fails: say in the run exactly what its environment serves now, and put the environment back
on its recorded live release whenever the failure left it split (any env), or, where policy rolls back
automatically, on anything but that release.

Inside a run the switch already keeps an environment whole (actions/switch.py); this is the net beneath it, for a
process killed mid-switch or a failure nothing in the run could see. It runs once the run is over: the use case
that executed the run calls it, and `failed_deploy_sensor` for runs the daemon launched. Its verdict is an engine
event in the failed run's log (once per run), so the UI and `deploy` show the same sentence.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import botocore.exceptions
import dagster as dg
import docker.errors

from coderemote_pipeline.actions.notify import Notifier
from coderemote_pipeline.actions.restore import CdnNotCleared, restore_and_record
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.switch import SwitchFailed
from coderemote_pipeline.actions.target_state import TargetState, drift, read_target, split_parts
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.ledger.lease_fence import fence
from coderemote_pipeline.ledger.lease_slot import describe_run, settle_step
from coderemote_pipeline.ledger.leases import Holder, Lease, LeaseBusy
from coderemote_pipeline.ledger.live import last_live_as, recorded_live
from coderemote_pipeline.ledger.records import ROLLED_BACK_TO, LiveRecord, StackRecord
from coderemote_pipeline.ledger.releases import fled_by_rollback_to
from coderemote_pipeline.ledger.stages import in_run
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules.environments import EnvironmentPolicy
from coderemote_pipeline.rules.errors import InfrastructureError

MARKER = "after this failure:"
UNREADABLE = (InfrastructureError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
              docker.errors.DockerException, OSError)  # fmt: skip
TargetFor = Callable[[str, dict[str, str]], EnvTarget]


@dataclass(frozen=True)
class Settled:
    env: str
    text: str
    whole: bool | None  # None: what is live could not be read
    rolled_back: bool = False
    waiting: bool = False  # not settled yet: the env's lease is held by a run it waits for (SETTLE_TAG)


def _describe(env: str, run: dg.DagsterRun, state: TargetState, recorded: LiveRecord | None) -> tuple[bool, str]:
    parts = split_parts(state)
    live = f"{state.release or 'no release'} (alias version {state.version}, site {state.frontend_release})"
    if not parts:
        return True, f"{env} serves {live} as one whole release"
    release = run.tags.get(names.RELEASE_TAG, "the release")
    back = f" --to {recorded.release}" if recorded else ""  # without --to: the release before the recorded one
    return False, (
        f"{env} is NOT one whole release: {'; '.join(parts)}. Re-execute this run from failure to finish {release} "
        f"(`coderemote-pipeline retry {run.run_id[:8]}`, or the UI), or put it back with "
        f"`coderemote-pipeline rollback {env}{back}`"
    )


def _rollback_goal(instance, run: dg.DagsterRun, recorded: LiveRecord | None, state: TargetState,
                   whole: bool) -> LiveRecord | None:  # fmt: skip
    """Where a failed rollback run leaves its env: on the release it went back to, when its switch left the env
    split or whole on it and not yet recorded. Never back on the recorded release, which is what it fled."""
    release = run.tags.get(names.RELEASE_TAG)
    if not names.is_rollback_run(run) or not release:
        return None
    if whole and (state.release != release or (recorded is not None and recorded.release == release)):
        return None
    return last_live_as(instance, state.env, release)


ENDED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
WAITS = "not settled yet:"


def _said(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.message or "" for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]


def verdict(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The settle's verdict in the run's log, if it has one."""
    return next((m.removeprefix(MARKER).strip() for m in _said(instance, run_id) if m.startswith(MARKER)), None)


def already_settled(instance: dg.DagsterInstance, run_id: str) -> bool:
    return verdict(instance, run_id) is not None


def settle_failed_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    policy: EnvironmentPolicy,
    target_for: TargetFor,
    patience: float | None = None,
) -> Settled | None:
    """Read what the failed run's env serves, restore it if needed, and write the verdict into the run's log.
    `patience`: how long to wait for a run that holds the env's lease and deploys nothing (None: until it ends);
    past it, the run is tagged as waiting and its settle is left to a later try."""
    env = run.tags.get(names.ENV_TAG)
    # Only an ended run: a UI re-execution copies its parent's tags, `coderemote/settle=waiting` included.
    if not env or not names.is_deploy_run(run) or run.status not in ENDED or already_settled(instance, run.run_id):
        return None

    def deploys(run_id: str) -> bool:
        holder = instance.get_run_by_id(run_id)
        return holder is not None and names.is_deploy_run(holder)

    # Under the env's lease: a deploy created while this settle reads and puts back what the env serves waits for
    # it, instead of switching the env meanwhile.
    step = settle_step()  # what it holds the lease for: its writes check they still hold it (ledger/lease_fence.py)
    try:
        with Lease(instance, env).settling(run.run_id, defer_to=deploys, patience=patience, step=step) as holder:
            if (holder is not None and holder.run_id == run.run_id) or already_settled(instance, run.run_id):
                return None  # another process settles this run at this moment, or just did
            if holder is not None:
                settled = Settled(env, f"not settled by this run: {describe_run(instance, holder.run_id)} holds "
                                  f"{env}'s deploy lease, deploys it now and settles it", None)  # fmt: skip
            else:
                settled = _settle(instance, run, env, policy, target_for, step)
            instance.report_engine_event(f"{MARKER} {settled.text}", run)
            now = instance.get_run_by_id(run.run_id) or run  # tagged waiting meanwhile, maybe, by another try
            if now.tags.get(names.SETTLE_TAG) == names.SETTLE_WAITING:
                instance.add_run_tags(run.run_id, {names.SETTLE_TAG: names.SETTLE_DONE})
    except LeaseBusy as busy:
        return _waiting(instance, run, env, busy.holder)
    if policy.receivers:
        release, commit = run.tags.get(names.RELEASE_TAG, ""), run.tags.get(names.COMMIT_TAG, "")
        failed = nc.ReleaseEvent(nc.FAILED, env, release, commit, run.run_id, settled.text)
        Notifier(list(policy.receivers), instance, lambda line: instance.report_engine_event(line, run)).send(failed)
    return settled


def _waiting(instance: dg.DagsterInstance, run: dg.DagsterRun, env: str, holder: Holder) -> Settled | None:
    """Tag `run` as waiting for its settle and say so in its log, once: the sensors try again until it is done.
    None if another try settled it meanwhile."""
    said = _said(instance, run.run_id)
    if any(m.startswith(MARKER) for m in said):
        return None
    text = (f"{WAITS} {holder.describe(functools.partial(describe_run, instance))} holds {env}'s deploy lease; "
            f"{env} is settled as soon as it is free")  # fmt: skip
    instance.add_run_tags(run.run_id, {names.SETTLE_TAG: names.SETTLE_WAITING})
    if not any(m.startswith(WAITS) for m in said):
        instance.report_engine_event(text, run)
    return Settled(env, text, None, waiting=True)


def superseded_by(instance: dg.DagsterInstance, run: dg.DagsterRun, env: str) -> dg.DagsterRun | None:
    """A run of `env` created after `run` (its retry, the next deploy): what env serves is that run's now, to finish
    or to settle; putting back `run`'s recorded release would undo it (a settle comes seconds after a failure)."""
    record = instance.get_run_record_by_id(run.run_id)
    if record is None:
        return None
    later = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env}, created_after=record.create_timestamp), limit=20)
    # A run that deploys nothing (a stage or two from the UI) owns nothing users get, and nothing settles it.
    return next((r for r in later if r.run_id != run.run_id and names.is_deploy_run(r)), None)


def _settle(instance, run, env: str, policy: EnvironmentPolicy, target_for: TargetFor, step: str) -> Settled:
    if (later := superseded_by(instance, run, env)) is not None:
        does = ("deployed it since" if later.is_success else "is settled in its place") if later.is_finished else (
            f"deploys {env} now and settles it")
        return Settled(env, f"not settled by this run: run {later.run_id[:8]} ({later.status.value.lower()}), "
                       f"started after it, {does}", None)  # fmt: skip
    recorded = recorded_live(instance, env)
    stack = in_run(instance, StackRecord, run)
    outputs = (recorded.stack_outputs if recorded else None) or (stack.record.stack_outputs if stack else None)
    if not outputs:
        return Settled(env, f"nothing was ever deployed to {env} from this instance: nothing of it is live", True)
    try:
        target = replace(target_for(env, outputs), fence=fence(instance, env, run.run_id, step))
        state = read_target(target, probe=False)
    except UNREADABLE as exc:
        return Settled(env, f"what {env} serves cannot be read now ({exc}); check it with "
                       f"`coderemote-pipeline status {env}` once that is fixed", None)  # fmt: skip
    goal = _rollback_goal(instance, run, recorded, state, not split_parts(state))
    whole, text = _describe(env, run, state, goal or recorded)  # a failed rollback is repaired onto its target
    if goal is None and (recorded is None or (whole and not (policy.auto_rollback and drift(recorded, state)))):
        return Settled(env, text, whole)
    to = goal or recorded
    if goal is not None:
        to = replace(goal, fled=fled_by_rollback_to(instance, env, goal.release), stack_outputs=outputs)
        reason = f"{ROLLED_BACK_TO} {goal.release} (rollback run {run.run_id[:8]} failed after its switch)"
    else:
        reason = f"automatic rollback: run {run.run_id[:8]} failed and left {env} serving {state.release}"
    cdn = ""
    try:
        # The CDN may hold the site of what the env left: the fled release's, for a rollback finished here.
        away = recorded.frontend_release if goal is not None and recorded else state.site_edge
        live = restore_and_record(instance, target, to, reason=reason, run_id=run.run_id, away_from=away).live
    except CdnNotCleared as stale:
        live, cdn = stale.live or to, f", {stale.hint()}"
    except LeaseLost as lost:  # silent past the reclaim time (its host paused): the env is the next deploy's now
        return Settled(env, f"{text}. Not put on {to.release}: {lost}", None)
    except (*UNREADABLE, SwitchFailed, RuntimeError) as exc:
        return Settled(env, f"{text}. Putting {env} on {to.release} FAILED: {exc}. Put it there by hand: "
                       f"coderemote-pipeline rollback {env} --to {to.release}", whole)  # fmt: skip
    if goal is not None:
        left = recorded.release if recorded and recorded.release != live.release else ""
        fled = f", not back on {left}, which it fled" if left else ""
        return Settled(env, f"{env} serves {live.release}, the release this rollback went back to (version "
                       f"{live.version}, site {live.frontend_release}){fled}; recorded as live{cdn}", True)  # fmt: skip
    return Settled(
        env,
        f"rolled back automatically: {env} serves {live.release} again (version {live.version}, site "
        f"{live.frontend_release}); deploy {run.tags.get(names.RELEASE_TAG, 'the release')} again to retry{cdn}",
        True,
        rolled_back=True,
    )
