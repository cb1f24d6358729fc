"""Putting an environment back on a release it already ran: nothing is built, nothing is published.

The one restore-and-record path, used by the automatic rollback of a failed smoke test and by the settling of a
failed run: the alias moves to that release's published version, the API runtime follows it, the site's pointer
flips back to the release's snapshot in the bucket (nothing is copied), the CDN forgets what changed, and the live
record says so.
A manual rollback is a redeploy of the old partition, which reaches the same state through the stages.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import botocore.exceptions
import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.cdn import invalidate
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.switch import Serving, switch
from coderemote_pipeline.ledger.live import LogEvent, record_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.errors import InfrastructureError
from coderemote_pipeline.rules.transient import is_transient

# More paths than this in a printed command: one wildcard instead (CloudFront bills a wildcard as one path).
_LISTED_PATHS = 10
# What the CDN's forgetting may raise once the env serves the release again (a bug in our code is not one of them).
CDN_ERRORS = (RuntimeError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError,
              InfrastructureError)  # fmt: skip
CDN_TRIES = 3


@dataclass(frozen=True)
class Restored:
    live: LiveRecord
    changed_paths: list[str]
    seconds: float


class CdnNotCleared(RuntimeError):
    """The environment serves the release again, whole; only the CDN's forgetting of the release it left failed.
    Not a failed restore: putting the env back "by hand" would find it already there and invalidate nothing."""

    def __init__(self, part: str, paths: list[str], cause: BaseException, command: str, watch: str = ""):
        self.paths, self.cause, self.command, self.watch = paths, cause, command, watch
        self.live: LiveRecord | None = None  # set once the restored release is recorded
        super().__init__(f"invalidating {len(paths)} path(s) on {part} failed: {cause}")

    def hint(self) -> str:
        """What the CDN may still hold, and the command that clears it (or watches the invalidation under way)."""
        held = f"{', '.join(self.paths[:5])}{', ...' if len(self.paths) > 5 else ''}"
        if self.watch:
            return (f"but CloudFront has not finished invalidating what the release it left changed ({held}): "
                    f"{self}. Until it completes, some edges may serve cached files of that release. Watch it: "
                    f"`{self.watch}`")  # fmt: skip
        return (f"but the CDN may still serve cached files of the release it left ({held}): {self}. Invalidate "
                f"them: `{self.command}`")  # fmt: skip


def cloudfront_not_cleared(target: EnvTarget, paths: list[str], cause: BaseException) -> CdnNotCleared:
    """The AWS CLI commands for this target (its profile, or the emulator's endpoint and keys)."""
    cli, distribution = target.aws_cli, target.outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
    pending = getattr(cause, "invalidation_id", None)  # taken by CloudFront, still in progress: watch, not redo
    watch = pending and shlex.join([*cli, "cloudfront", "get-invalidation", "--distribution-id", distribution, "--id",
                                    pending])  # fmt: skip
    # Made before the distribution's last change is deployed, an invalidation lets an edge still on the old origin
    # cache the release before again: the command waits for it first, as cdn.invalidate does.
    wait = shlex.join([*cli, "cloudfront", "wait", "distribution-deployed", "--id", distribution])
    listed = paths if len(paths) <= _LISTED_PATHS else ["/*"]
    make = shlex.join([*cli, "cloudfront", "create-invalidation", "--distribution-id", distribution, "--paths",
                       *listed])  # fmt: skip
    return CdnNotCleared(f"CloudFront distribution {distribution}", paths, cause, f"{wait} && {make}", watch or "")


def restore(target: EnvTarget, to: LiveRecord, caller_reference: str, away_from: str | None = None) -> list[str]:
    """Make `target` serve `to` again (API, then site, then the CDN); the site paths that changed.
    `away_from`: the site release being left. The CDN forgets what differs between the two snapshots, not only what
    this flip changed: a retried restore finds the site flipped already while the CDN may still hold the release
    it left (and the same paths make the same caller reference return the same invalidation).
    A transient failure of the CDN's forgetting is tried again here: the env serves `to` already, and retrying the
    whole step would judge the release it fled against what it serves now (a settle has no retry at all)."""
    wanted = Serving(str(to.version), to.release, to.commit, to.digest, to.frontend_release or None)
    switched = switch(target, wanted)
    changed = switched.changed_paths
    if away_from and to.frontend_release and away_from != to.frontend_release:
        changed = store.changed_since(target.s3, target.outputs[out.FRONTEND_BUCKET], away_from, to.frontend_release)
    paths = ff.invalidation_paths(changed)
    if paths:
        _forget(target, paths, caller_reference)
    return changed


def _forget(target: EnvTarget, paths: list[str], caller_reference: str):
    """CloudFront invalidates `paths` and the site's edge forgets them (locally varnish, which users hit), each
    whatever the other did; the edge's failure is the one reported, as the cache users hit."""
    distribution = target.outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
    began = time.monotonic()  # one 20-min budget for all its tries: a hiccup late in the wait does not renew it
    cloudfront = _tried(lambda: invalidate(target.cf, distribution, paths, caller_reference, started=began))
    edge = _tried(lambda: target.site.forget(target.env, paths))
    if edge is not None:
        try:
            command = target.site.forget_command(target.env, paths)
        except Exception:  # a hint that cannot be built must not hide that the env is back
            command = "coderemote-pipeline local up"  # the local stack is down: its edge starts again empty
        raise CdnNotCleared("the site's edge", paths, edge, command) from edge
    if cloudfront is not None:
        raise cloudfront_not_cleared(target, paths, cloudfront) from cloudfront


def _tried(act: Callable[[], object]) -> BaseException | None:
    """Run `act`, again after 1 s then 2 s while its failure is transient; the last failure, or None."""
    for attempt in range(CDN_TRIES):
        try:
            act()
            return None
        except CDN_ERRORS as exc:
            if attempt + 1 < CDN_TRIES and is_transient(exc):
                time.sleep(2**attempt)
                continue
            return exc
    return None


def restore_and_record(
    instance: dg.DagsterInstance,
    target: EnvTarget,
    to: LiveRecord,
    *,
    reason: str,
    run_id: str,
    log_event: LogEvent | None = None,
    away_from: str | None = None,
) -> Restored:
    """Restore `to` and record it as what the environment serves, with the reason and the run that did it.
    Raises CdnNotCleared with the record made when only the CDN's invalidation failed."""
    started = time.monotonic()
    live = replace(to, reason=reason, run_id=run_id, since=time.time())
    stale: CdnNotCleared | None = None
    try:
        changed = restore(target, to, f"restore-{run_id}-{to.release}", away_from)
    except CdnNotCleared as exc:  # the env serves `to` whole: recorded all the same
        changed, stale = exc.paths, exc
    record_live(instance, target.env, live, log_event)
    if stale is not None:
        stale.live = live
        raise stale
    return Restored(live, changed, time.monotonic() - started)
