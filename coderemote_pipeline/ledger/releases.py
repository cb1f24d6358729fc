"""Which releases passed smoke where: the rollback targets of an environment and the proof a promotion gate asks.

`smoke_result` carries a data version `passed:<commit>` or `failed:<commit>`, which the instance indexes with the
partition's env: "did commit C pass in dev" is one tag lookup, whatever the release key it ran under there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import sqlalchemy.exc

from coderemote_pipeline.ledger.live import live_history, recorded_live
from coderemote_pipeline.ledger.records import LiveRecord, SmokeRecord
from coderemote_pipeline.ledger.stages import Found, latest
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.partitions import ENV_DIMENSION, RELEASE_DIMENSION, partition_key

DATA_VERSION_TAG = "dagster/data_version"


@dataclass(frozen=True)
class Passed:
    """A release whose smoke passed in an env: the proof a promotion gate or a rollback looks for."""

    env: str
    release: str
    commit: str
    run_id: str
    at: float


def passed(instance: dg.DagsterInstance, env: str, release: str) -> Passed | None:
    """The release's latest smoke in env, if it passed."""
    found = latest(instance, SmokeRecord, partition_key(env, release))
    if found is None or not found.record.passed:
        return None
    return Passed(env, release, found.record.commit, found.run_id, found.timestamp)


def _good_commits(instance: dg.DagsterInstance, env: str, release: str) -> list[str]:
    """The commits a rollback may put `release` back at in env without a new approval, best first: the one its
    latest smoke there passed with, and, for the release recorded live, the one users have now. Putting that one
    back is the repair of an env split off its record, whatever its last smoke said (a rollback whose smoke failed
    stays on its target), and a tag moved since does not matter."""
    found = [proof.commit] if (proof := passed(instance, env, release)) is not None else []
    live = recorded_live(instance, env)
    return found + ([live.commit] if live is not None and live.release == release and live.commit else [])


def known_good_commit(instance: dg.DagsterInstance, env: str, release: str) -> str | None:
    return next(iter(_good_commits(instance, env, release)), None)


def known_good(instance: dg.DagsterInstance, env: str, release: str, commit: str) -> bool:
    return commit in _good_commits(instance, env, release)


def last_smoke_failed(instance: dg.DagsterInstance, env: str, release: str) -> str | None:
    """The run of the release's latest smoke in env ("" when none is known), if that smoke failed; else None."""
    found = latest(instance, SmokeRecord, partition_key(env, release))
    return found.run_id if found is not None and not found.record.passed else None


def verification(instance: dg.DagsterInstance, env: str, commit: str) -> Passed | None:
    """The newest passed smoke of `commit` in `env`, under whichever release key it ran there."""
    tags = instance.get_event_tags_for_asset(
        names.key(names.SMOKE_RESULT),
        filter_tags={
            f"dagster/partition/{ENV_DIMENSION}": env,
            DATA_VERSION_TAG: SmokeRecord.data_version(True, commit).value,
        },
    )
    release_tag = f"dagster/partition/{RELEASE_DIMENSION}"
    releases = {t[release_tag] for t in tags if release_tag in t}
    proofs = [p for release in releases if (p := passed(instance, env, release)) and p.commit == commit]
    return max(proofs, key=lambda p: p.at, default=None)


def latest_failed_deploy(instance: dg.DagsterInstance, env: str, commit: str) -> dg.DagsterRun | None:
    """The latest deploy run of `commit` in `env`, if it failed (an indexed run-tag query)."""
    runs = instance.get_runs(dg.RunsFilter(tags={names.ENV_TAG: env, names.COMMIT_TAG: commit}), limit=1)
    if runs and runs[0].status is dg.DagsterRunStatus.FAILURE:
        return runs[0]
    return None


def register_release(instance: dg.DagsterInstance, key: str) -> None:
    """Add `key` to the release partitions. Dagster checks, then inserts: two deploys of one release at once (two
    envs) can both find it missing, and the second insert then fails on the unique key though the partition is there."""
    try:
        instance.add_dynamic_partitions(RELEASE_DIMENSION, [key])
    except sqlalchemy.exc.IntegrityError:
        if not instance.has_dynamic_partition(RELEASE_DIMENSION, key):
            raise


@dataclass(frozen=True)
class Candidate:
    record: LiveRecord
    # A rollback took the env away from it, or went past it to an older release, and nothing deployed it there since:
    # whatever made someone roll back stands, so `rollback` without --to passes it by (`--to` still takes it).
    rolled_away: bool


# A record of env's live history, with when a rollback fled it (None: none did).
Walked = tuple[Found[LiveRecord], float | None]


def rollback_candidates(instance: dg.DagsterInstance, env: str) -> Iterator[Candidate]:
    """Releases `env` served before, newest first, each once, never what is live now: every one of them passed
    smoke there (only a passed deploy or a rollback to a passed release makes a release live)."""
    live = recorded_live(instance, env)
    seen = {live.release} if live else set()
    for found, fled_at in _walk(instance, env):
        record = found.record
        if record.release in seen:
            continue
        seen.add(record.release)
        if passed(instance, env, record.release) is not None:
            yield Candidate(record, fled_at is not None)


def fled_since(instance: dg.DagsterInstance, env: str, release: str, since: float) -> float | None:
    """When a rollback made after `since` last fled `release` in env (took env away from it or went past it), or
    None: an approval given before that moment no longer stands, even if a `rollback --to` put it back in between."""
    newest: float | None = None
    for found, fled_at in _walk(instance, env, since):
        if found.record.release != release:
            continue
        if fled_at is not None:
            newest = max(newest or fled_at, fled_at)
        if found.timestamp < since:
            break  # an older record of it lies in no span this one is not in: it was fled no later
    return newest


def fled_by_rollback_to(instance: dg.DagsterInstance, env: str, target: str) -> list[str]:
    """What a rollback to `target` flees, read before it records itself live: every release env served since target
    was last live, newest first. Written into the rollback's record, so the span is closed even where target's
    earlier record is gone (history from before live_release, or wiped): then it flees only what it replaced."""
    fled: list[str] = []
    for found in live_history(instance, env):
        if found.record.release == target:
            return fled
        if found.record.release not in fled:
            fled.append(found.record.release)
    return fled[:1]


def _walk(instance: dg.DagsterInstance, env: str, since: float = 0.0) -> Iterator[Walked]:
    """Env's live history, newest first, each record with the time of the newest rollback (made after `since`)
    that fled it, or None. A rollback to A from C flees C and every release served since A was live before it (B, of
    A, B, C): `rollback --to A`, then `rollback`, goes older than A, not to B. A rollback's record names what it fled;
    one written before records did is a span that A's older record closes. Past `since`, the walk ends once no
    rollback's span is open and each release a rollback named was seen."""
    spans: dict[str, float] = {}  # target of a newer unnamed rollback whose span the walk is in -> its time
    named: dict[str, float] = {}  # release a newer rollback named as fled -> the newest such rollback's time
    unseen: set[str] = set()  # named, and no record of it walked yet
    for found in live_history(instance, env):
        record = found.record
        spans.pop(record.release, None)
        if found.timestamp < since and not spans and not unseen:
            return
        fled_at = [*spans.values(), named[record.release]] if record.release in named else list(spans.values())
        yield found, max(fled_at, default=None)
        unseen.discard(record.release)
        if found.timestamp > since and _by_rollback(instance, record):
            for release in record.fled:
                named.setdefault(release, found.timestamp)  # newest first: the first rollback met is the newest
                unseen.add(release)
            if not record.fled:
                spans[record.release] = found.timestamp


def _by_rollback(instance: dg.DagsterInstance, record: LiveRecord) -> bool:
    if record.by_rollback or record.automatic:
        return record.by_rollback
    # Records written before rollbacks said so in their reason: the run that made it live tells.
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    return run is not None and names.is_rollback_run(run)
