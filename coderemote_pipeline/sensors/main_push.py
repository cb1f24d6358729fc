"""main → dev: every new head of `main` on the app remote is registered as a release and deployed.

A tick reads the remote's refs (`git ls-remote`, no objects): its cost does not grow with the repository's history.
Only when the head moved does it fetch `main` into the mirror (incremental: what was pushed since) to name the
commits skipped between two ticks, or to tell a force-push from a fast-forward.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg

from coderemote_pipeline.actions.git_remote import GitError, GitRemote
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.readiness import TargetReadiness
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import Trigger
from coderemote_pipeline.rules.names import ENV_TAG, RELEASE_TAG
from coderemote_pipeline.rules.release_keys import MAIN_REF, commit_release_key
from coderemote_pipeline.sensors.tick import WINDOW, Tick, load_cursor

# Commits named in a tick's log when several pushes landed between two ticks; beyond that, a count.
NAMED_COMMITS = 20
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# A run "in progress" for longer than this is taken as dead (its process was killed and nothing marked it failed),
# so it cannot hold dev back forever; a real deploy takes a minute or two.
STALE_RUN_S = 30 * 60


def deploy_in_progress(instance: dg.DagsterInstance, env: str, tick: Tick) -> dg.RunRecord | None:
    """The env's newest run that is still working: not one whose process is gone (marked failed here, so that the
    run queue does not hold the next deploy behind it) nor one older than STALE_RUN_S."""
    for why in tick.reaped(env):
        tick.note(f"not waiting for it: {why}; marked failed (the run queue would hold the next deploy behind it)")
    records = instance.get_run_records(dg.RunsFilter(tags={ENV_TAG: env}, statuses=IN_PROGRESS), limit=5)
    fresh = [r for r in records if time.time() - r.create_timestamp.timestamp() < STALE_RUN_S]
    return fresh[0] if fresh else None


def _subject(commits: list[tuple[str, str]], sha: str) -> str:
    return next((f" “{subject}”" for c, subject in commits if c == sha), "")


def describe_move(remote: GitRemote, old: str | None, head: str, tick: Tick) -> None:
    """Log how main got from `old` to `head`: first sight, fast-forward (naming skipped commits) or force-push."""
    if old is None:
        remote.fetch_refs(MAIN_REF)
        tick.note(f"first tick: main is at {head[:12]}; deploying it unless it is live already")
        return
    remote.fetch_refs(MAIN_REF)
    if remote.is_ancestor(old, head):
        commits = remote.commits_between(old, head, limit=NAMED_COMMITS + 1) or []
        tick.note(f"main moved {old[:12]} → {head[:12]}; deploying the newest head{_subject(commits, head)}")
        skipped = commits[1:]
        if skipped:
            named = ", ".join(f"{sha[:12]} “{subject}”" for sha, subject in skipped[:NAMED_COMMITS])
            more = " and more" if len(skipped) > NAMED_COMMITS else ""
            tick.note(
                f"skipped {len(skipped[:NAMED_COMMITS])}{more} commit(s) pushed between two ticks, "
                f"not deployed on their own (the new head contains them): {named}{more}"
            )
        return
    if remote.is_ancestor(head, old):
        dropped = remote.commits_between(head, old, limit=NAMED_COMMITS + 1) or []
        count = f"{len(dropped)}" if len(dropped) <= NAMED_COMMITS else f"more than {NAMED_COMMITS}"
        tick.warn(
            f"main was force-pushed back from {old[:12]} to {head[:12]} ({count} commit(s) dropped); "
            "deploying the new head"
        )
    else:
        tick.warn(
            f"main was force-pushed: the previous head {old[:12]} is not in the new history of {head[:12]}; "
            "deploying the new head"
        )


def main_push_sensor_def(interval_s: int, jobs: Sequence[dg.UnresolvedAssetJobDefinition]) -> dg.SensorDefinition:
    @dg.sensor(
        name="main_push_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every new head of main on the app remote: register the release main-<sha> and deploy it to the "
        "environments whose trigger is main_push (dev). Skipped intermediate commits and force-pushes are logged.",
    )
    def main_push_sensor(context: dg.SensorEvaluationContext, app_source: AppSource, environments: Environments,
                         readiness: TargetReadiness):  # fmt: skip
        remote = app_source.remote()
        cursor = load_cursor(context.cursor)
        old, moves = cursor.get("main"), int(cursor.get("moves", 0)) + 1
        try:
            head = remote.ls_remote().get(MAIN_REF)
        except GitError as exc:
            return dg.SkipReason(f"cannot read the app remote: {exc}")
        if head is None:
            return dg.SkipReason(f"the app remote {remote.url!r} has no branch main (yet)")
        if head == old:
            return dg.SkipReason(f"main unchanged at {head[:12]}")
        if (down := readiness.blocker()) is not None:
            return dg.SkipReason(f"main moved to {head[:12]}; deploying once the target is back: {down}")
        all_policies = environments.policies()
        policies = [p for p in all_policies.values() if p.trigger is Trigger.MAIN_PUSH]
        tick = Tick(context, app_source)
        for policy in policies:
            busy = deploy_in_progress(context.instance, policy.name, tick)
            if busy is not None:
                # Two deploys of one env at once could finish in either order and leave the older commit live.
                # Wait, cursor unchanged: when it ends, the newest head deploys and the commits between are named.
                return dg.SkipReason(
                    f"main moved to {head[:12]}; waiting for the {policy.name} deploy in progress "
                    f"(run {busy.dagster_run.run_id}, {busy.dagster_run.tags.get(RELEASE_TAG)}) to end"
                )
        try:
            describe_move(remote, old, head, tick)
        except GitError as exc:
            # The cursor stays where it was: the next tick sees the same move again, nothing is lost.
            return dg.SkipReason(f"main moved to {head[:12]} but its history could not be read: {exc}")
        release = commit_release_key("main", head)
        tick.register(release)
        for policy in policies:
            deploy = Deployment.of(policy.name, release, all_policies, head)
            refusal = deploy.refusal()
            if refusal:
                tick.warn(f"not deploying {release} to {policy.name}: {refusal}")
                continue
            # The commit plus the count of moves main made: a tick evaluated again after a daemon restart (same
            # cursor) requests nothing twice, while main force-pushed back to an earlier head deploys it again.
            run_key = f"{policy.name}:main@{head}#{moves}"
            outcome = tick.deploy_or_hold(deploy, trigger=Trigger.MAIN_PUSH.value, run_key=run_key, ref=MAIN_REF,
                                          commit_time=lambda: remote.commit_time(head))  # fmt: skip
            if outcome == WINDOW:
                # Cursor unchanged: every tick sees the move again, and the newest head deploys when the window ends.
                return tick.result(cursor, idle=f"main at {head[:12]}, held by a deploy window")
        return tick.result({"main": head, "moves": moves}, idle=f"main at {head[:12]}")

    return main_push_sensor
