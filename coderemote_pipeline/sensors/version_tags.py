"""v* tags → prod: every new stable version tag on main is registered and deployed (after approval where required).

The cursor maps every `v*` tag the sensor has acted on to its commit, so each tag is decided exactly once, and a tag
that later points elsewhere (even after a delete) is noticed and reported instead of silently redeployed. A tag a
deploy window or the promotion gate holds waits in the cursor with the envs it waits for, decided again each tick.
A tick reads refs only (`git ls-remote`); it fetches `main` and the new tags into the mirror only when a new stable
tag needs its reachability from main checked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType

import dagster as dg
import semver

from coderemote_pipeline.actions.git_remote import GitError, GitRemote
from coderemote_pipeline.actions.release_notes import release_notes
from coderemote_pipeline.actions.release_tags import signature_refusal
from coderemote_pipeline.ledger.gate import gate_status
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.resources.readiness import TargetReadiness
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import EnvironmentPolicy, Trigger
from coderemote_pipeline.rules.release_keys import (
    MAIN_REF,
    Release,
    ReleaseKeyError,
    highest_stable,
    is_version_tag_name,
    release_for_tag,
)
from coderemote_pipeline.sensors import off_main
from coderemote_pipeline.sensors.off_main import OffMain
from coderemote_pipeline.sensors.tick import GATED, TAG_PREFIX, WINDOW, Tick, dump_cursor, load_cursor


def version_tags(refs: dict[str, str]) -> dict[str, str]:
    """tag name → commit for every tag in the `v*` namespace (valid or not), annotated tags peeled."""
    tags = {ref.removeprefix(TAG_PREFIX): sha for ref, sha in refs.items() if ref.startswith(TAG_PREFIX)}
    return {name: sha for name, sha in tags.items() if is_version_tag_name(name)}


def _stable_name(name: str) -> bool:
    try:
        return release_for_tag(name).is_stable
    except ReleaseKeyError:
        return False


def classify(new: dict[str, str], tick: Tick) -> list[Release]:
    """Log malformed and pre-release tags (the latter registered, never sent to prod); return the stable ones."""
    stable = []
    for name in sorted(new):
        try:
            release = release_for_tag(name)
        except ReleaseKeyError as exc:
            tick.warn(f"skipped tag {name} (commit {new[name][:12]}): {exc}")
            continue
        if release.is_stable:
            stable.append(release)
        else:
            tick.register(name)
            tick.note(
                f"{name} (commit {new[name][:12]}) is a pre-release: recorded as release {name}, never deployed to "
                "prod (deploy it to dev or staging by hand if wanted)"
            )
    return sorted(stable, key=_version)


def _version(release: Release) -> semver.Version:
    return release.version or semver.Version(0)


def report_changes(seen: dict[str, str], tags: dict[str, str], gone: dict[str, str], tick: Tick) -> None:
    """Say which known tags were deleted or moved. A tag deleted, then pushed again, is the tag it was (never a new
    one): at another commit it is a moved tag, whether a tick fell between the delete and the push or not."""
    for name in sorted(set(seen) - set(tags)):
        tick.note(f"tag {name} was deleted from the remote; nothing is deployed or undone")
    back = {name: tags[name] for name in set(gone) & set(tags) if name not in seen}
    before = {**seen, **{name: gone[name] for name in back}}
    for name in sorted(n for n in set(before) & set(tags) if before[n] != tags[n]):
        tick.warn(
            f"tag {name} moved from {before[name][:12]} to {tags[name][:12]}: NOT redeployed. A version names one "
            f"commit; to release {tags[name][:12]}, tag it with a new version. An approval given for {name} still "
            f"binds {before[name][:12]}, so a deploy of the moved tag is refused until approved again"
        )


def act_on_stable(
    remote: GitRemote,
    stable: list[Release],
    tags: dict[str, str],
    accepted: list[str],
    tick: Tick,
    policies: dict[str, EnvironmentPolicy],
    layout: AppLayout,
    rechecked: Mapping[str, float | None] = MappingProxyType({}),
) -> tuple[dict[str, list[str]], set[str], list[str]]:
    """Check each new stable tag is on main (and signed where an env requires it), then deploy it (or hold it) in
    every env triggered by stable tags. `accepted` (the releases taken so far, in the cursor) gains each tag that is
    on main. `rechecked`: tags refused earlier as off main, checked again now that main moved, each with the time
    its merge must not be later than once that time has passed (sensors/off_main.py).
    Returns the envs a deploy window or the promotion gate holds each tag from (decided again next tick), the envs
    a new tag went to, and the tags not on main."""
    remote.fetch_refs(MAIN_REF, *[f"{TAG_PREFIX}{r.key}" for r in stable])
    highest_before = highest_stable(accepted)
    on_main = {r.key for r in stable if remote.is_ancestor(tags[r.key], MAIN_REF)}
    waiting: dict[str, list[str]] = {}
    went: set[str] = set()
    off: list[str] = []
    # Late tags after this tick's new ones, newest first: each is weighed against the versions released before or
    # in this tick (a newer tag refused everywhere for its signature was not), the newest of them going out alone.
    late = sorted((r for r in stable if r.key in rechecked), key=lambda r: r.version, reverse=True)
    for release in [*(r for r in stable if r.key not in rechecked), *late]:
        commit, again = tags[release.key], release.key in rechecked
        if release.key not in on_main:
            if not again:  # said when it arrived; checked again quietly each time main moves
                tick.warn(off_main.refusal(release.key, commit))
            off.append(release.key)
            continue
        if again and (late := off_main.late_merge(release.key, commit, rechecked[release.key],
                                                  functools.partial(remote.merged_at, ref=MAIN_REF))):  # fmt: skip
            tick.warn(late)
            continue
        newest = highest_stable(accepted) if again else None
        if newest is not None and release.version is not None and release.version < newest:
            tick.warn(f"{release.key} reached main after v{newest} was tagged: not deployed over it. To ship its "
                      "commit, tag it with a new version")  # fmt: skip
            continue
        older = highest_before is not None and release.version is not None and release.version < highest_before
        if older:
            tick.note(f"{release.key} is older than v{highest_before}, already tagged: deploying it like any new tag")
        if again:
            tick.note(f"{release.key} is on main now (commit {commit[:12]}): deploying it as a new tag")
        tick.register(release.key)
        envs = [name for name, policy in policies.items() if policy.trigger is Trigger.STABLE_TAG]
        held, decided = decide(remote, release, commit, envs, tick, policies, layout)
        if decided:  # refused everywhere (its signature): not released, and it may come back fixed
            accepted.append(release.key)
        went |= decided
        # In version order: this tag goes out instead of an older one of this tick still waiting in those envs.
        waiting = {key: left for key, envs_ in waiting.items() if (left := [e for e in envs_ if e not in decided])}
        if held:
            waiting[release.key] = held
    return waiting, went, off


def decide(remote: GitRemote, release: Release, commit: str, envs: list[str], tick: Tick,
           policies: dict[str, EnvironmentPolicy], layout: AppLayout, *, again: bool = False,
           ) -> tuple[list[str], set[str]]:  # fmt: skip
    """Deploy (or hold for approval) an accepted tag in each of `envs`: the envs a deploy window or the promotion
    gate holds it from (nothing launched there yet, decided again next tick), and the envs it went to. `again`: a
    held tag, whose signature passed when it was first decided (the tag still names that commit)."""
    held, went = [], set()
    for policy in (policies[name] for name in envs):
        if policy.allowed_signers is not None and not again:
            refusal = signature_refusal(remote, release, policy.allowed_signers)
            if refusal:
                tick.warn(f"skipped {release.key} for {policy.name}: {refusal}")
                continue
        went.add(policy.name)
        outcome = tick.deploy_or_hold(
            Deployment.of(policy.name, release.key, policies, commit),
            trigger=Trigger.STABLE_TAG.value,
            run_key=f"{policy.name}:{release.key}@{commit}",
            ref=f"{TAG_PREFIX}{release.key}",
            commit_time=lambda: remote.commit_time(commit),
            notes=functools.partial(_notes, remote, layout, tick, policy, commit),
        )
        if outcome in (WINDOW, GATED):
            held.append(policy.name)
    return held, went


def still_waiting(
    remote: GitRemote,
    waiting: dict[str, list[str]],
    tags: dict[str, str],
    newer: set[str],
    tick: Tick,
    policies: dict[str, EnvironmentPolicy],
    layout: AppLayout,
) -> dict[str, list[str]]:
    """Decide again the tags a window or the gate held, oldest version first, in the envs they were held from, while
    they point where they did (a moved or deleted tag is reported instead) and no tag pushed since went to that env
    (the newest tag goes out, as the newest head of main does)."""
    left: dict[str, list[str]] = {}
    for key in sorted(waiting, key=lambda k: release_for_tag(k).version):
        envs = [n for n in waiting[key] if n in policies and policies[n].trigger is Trigger.STABLE_TAG]
        for name in [n for n in envs if n in newer]:
            tick.note(f"{key} waits no more for {name}: a tag pushed since went there instead")
        envs = [n for n in envs if n not in newer]
        if key in tags and envs and (held := decide(remote, release_for_tag(key), tags[key], envs, tick, policies,
                                                    layout, again=True)[0]):  # fmt: skip
            left[key] = held
    return left


def _notes(remote: GitRemote, layout: AppLayout, tick: Tick, policy: EnvironmentPolicy, commit: str) -> str:
    """The release notes an approver sees on the hold (markdown in the UI); none where nobody approves."""
    if not policy.approval_required:
        return ""
    instance = tick.instance
    live = recorded_live(instance, policy.name)
    gate = gate_status(instance, policy, commit)
    return release_notes(remote, layout, live.commit if live else None, live.release if live else "", commit,
                         gate).markdown()  # fmt: skip


def _first_tick(tags: dict[str, str]) -> dg.SensorResult:
    """Existing tags are history: deploying every old version to prod would be wrong."""
    listed = ", ".join(sorted(tags)) or "none"
    return dg.SensorResult(
        skip_reason=f"first tick: {len(tags)} existing v* tag(s) taken as already handled ({listed}); tags pushed "
        "from now on are acted on",
        cursor=dump_cursor({"tags": tags, "accepted": sorted(tags)}),
    )


def _target_down(down: str, **kinds: Collection[str]) -> dg.SkipReason:
    what = " and ".join(f"{kind.replace('_', '-')} tag(s) {', '.join(sorted(names))}"
                        for kind, names in kinds.items() if names)  # fmt: skip
    return dg.SkipReason(f"{what}; acting on them once the target is back: {down}")


def _remembered(known: dict[str, str], tags: dict[str, str], accepted: list[str]) -> dict[str, str]:
    """The deleted tags to tell apart if pushed again. Not a stable tag that was refused: it may come back fixed
    (signed, on main)."""
    return {name: commit for name, commit in known.items()
            if name not in tags and (name in accepted or not _stable_name(name))}  # fmt: skip


def version_tag_sensor_def(interval_s: int, jobs: Sequence[dg.UnresolvedAssetJobDefinition]) -> dg.SensorDefinition:
    @dg.sensor(
        name="version_tag_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every new v* tag on the app remote: stable vMAJOR.MINOR.PATCH tags on main are registered and "
        "deployed to the stable_tag environments (prod), held for approval where required; pre-release tags are "
        "recorded only; malformed, off-main and moved tags are reported with the reason.",
    )
    def version_tag_sensor(
        context: dg.SensorEvaluationContext,
        app_source: AppSource,
        environments: Environments,
        readiness: TargetReadiness,
    ):
        remote = app_source.remote()
        cursor = load_cursor(context.cursor)
        try:
            refs = remote.ls_remote()
        except GitError as exc:
            return dg.SkipReason(f"cannot read the app remote: {exc}")
        tags, main, now = version_tags(refs), refs.get(MAIN_REF), time.time()
        if not isinstance(cursor.get("tags"), dict):
            return _first_tick(tags)
        seen: dict[str, str] = cursor["tags"]
        gone: dict[str, str] = dict(cursor.get("gone", {}))
        waiting: dict[str, list[str]] = dict(cursor.get("waiting", {}))
        # Tags refused (off main) are in `seen` but not here: "older than" compares with accepted releases only.
        accepted: list[str] = list(cursor.get("accepted", seen))
        new = {name: sha for name, sha in tags.items() if name not in seen and name not in gone}
        off_before = OffMain.load(cursor.get("off_main"))
        recheck, off_kept, expired = off_before.split(tags, main, now)
        if (new or waiting or recheck) and (down := readiness.blocker()) is not None:
            return _target_down(down, new=new, held=waiting, off_main=recheck)
        tick = Tick(context, app_source)
        report_changes(seen, tags, gone, tick)
        gone = _remembered({**gone, **seen}, tags, accepted)
        stable = sorted(classify(new, tick) + [release_for_tag(name) for name in recheck], key=_version)
        policies, layout = environments.policies(), app_source.layout
        try:
            merge_by = {name: off_before.merge_by(name, now) for name in recheck}
            fresh, newer, off = act_on_stable(remote, stable, tags, accepted, tick, policies, layout,
                                              merge_by) if stable else ({}, set(), [])  # fmt: skip
            held = {k: v for k, v in waiting.items() if seen.get(k) == tags.get(k)}
            waiting = still_waiting(remote, held, tags, newer, tick, policies, layout) | fresh
        except GitError as exc:
            # Cursor unchanged: the next tick decides these tags again, so none is lost.
            return dg.SkipReason(f"new or held tag(s): cannot read their history: {exc}")
        # A tag a deploy window or the promotion gate holds is known, and decided again each tick in the envs it
        # waits for, until it deploys there.
        off_now, late = off_kept.with_refused(off, tags, main, now, off_before)
        for name in sorted({*expired, *late}):  # said once: after the tick can no longer be skipped and repeated
            tick.warn(off_main.expiry(name, tags[name]))
        cursor = {"tags": tags, "accepted": sorted(set(accepted)), **({"gone": gone} if gone else {}),
                  **({"waiting": waiting} if waiting else {}), **off_now.to_cursor()}  # fmt: skip
        return tick.result(cursor, idle=f"no new v* tags ({len(tags)} known){off_now.waits()}")

    return version_tag_sensor
