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

    def __init__(self, distribution: str, paths: list[str], cause: BaseException, aws_cli: tuple[str, ...] = ("aws",)):
        self.distribution, self.paths, self.cause, self.aws_cli = distribution, paths, cause, aws_cli
        # An invalidation made, still in progress: it needs watching, not a second one.
        self.pending: str | None = getattr(cause, "invalidation_id", None)
        self.live: LiveRecord | None = None  # set once the restored release is recorded
        super().__init__(f"invalidating {len(paths)} path(s) on CloudFront distribution {distribution} failed: "
                         f"{cause}")  # fmt: skip

    def hint(self) -> str:
        """What the CDN may still hold, and the AWS CLI command (this target's profile or endpoint) that clears it."""
        held = f"{', '.join(self.paths[:5])}{', ...' if len(self.paths) > 5 else ''}"
        if self.pending:
            command = shlex.join([*self.aws_cli, "cloudfront", "get-invalidation", "--distribution-id",
                                  self.distribution, "--id", self.pending])  # fmt: skip
            return (f"but CloudFront has not finished invalidating what the release it left changed ({held}): "
                    f"{self}. Until it completes, some edges may serve cached files of that release. Watch it: "
                    f"`{command}`")  # fmt: skip
        listed = self.paths if len(self.paths) <= _LISTED_PATHS else ["/*"]
        command = shlex.join([*self.aws_cli, "cloudfront", "create-invalidation", "--distribution-id",
                              self.distribution, "--paths", *listed])  # fmt: skip
        return (f"but the CDN may still serve cached files of the release it left ({held}): {self}. Invalidate "
                f"them: `{command}`")  # fmt: skip


def restore(target: EnvTarget, to: LiveRecord, caller_reference: str, away_from: str | None = None,
            retry_cdn: Callable[[BaseException], bool] = lambda _: False) -> list[str]:  # fmt: skip
    """Make `target` serve `to` again (API, then site, then the CDN); the site paths that changed.
    `away_from`: the site release being left. The CDN forgets what differs between the two snapshots, not only what
    this flip changed: a retried restore finds the site flipped already while the CDN may still hold the release
    it left (and the same paths make the same caller reference return the same invalidation).
    `retry_cdn`: which failures of the CDN's forgetting are worth another try here (the env serves `to` already:
    retrying the whole step would judge the release it fled against what it serves now)."""
    wanted = Serving(str(to.version), to.release, to.commit, to.digest, to.frontend_release or None)
    switched = switch(target, wanted)
    changed = switched.changed_paths
    if away_from and to.frontend_release and away_from != to.frontend_release:
        changed = store.changed_since(target.s3, target.outputs[out.FRONTEND_BUCKET], away_from, to.frontend_release)
    paths = ff.invalidation_paths(changed)
    if paths:
        _forget(target, paths, caller_reference, retry_cdn)
    return changed


def _forget(target: EnvTarget, paths: list[str], caller_reference: str, retry: Callable[[BaseException], bool]):
    distribution = target.outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
    for attempt in range(CDN_TRIES):
        try:
            invalidate(target.cf, distribution, paths, caller_reference)
            target.site.forget(target.env, paths)
            return
        except CDN_ERRORS as exc:
            if attempt + 1 < CDN_TRIES and retry(exc):
                time.sleep(2**attempt)
                continue
            raise CdnNotCleared(distribution, paths, exc, target.aws_cli) from exc


def restore_and_record(
    instance: dg.DagsterInstance,
    target: EnvTarget,
    to: LiveRecord,
    *,
    reason: str,
    run_id: str,
    log_event: LogEvent | None = None,
    away_from: str | None = None,
    retry_cdn: Callable[[BaseException], bool] = lambda _: False,
) -> Restored:
    """Restore `to` and record it as what the environment serves, with the reason and the run that did it.
    Raises CdnNotCleared with the record made when only the CDN's invalidation failed."""
    started = time.monotonic()
    live = replace(to, reason=reason, run_id=run_id, since=time.time())
    try:
        changed = restore(target, to, f"restore-{run_id}-{to.release}", away_from, retry_cdn)
    except CdnNotCleared as stale:
        record_live(instance, target.env, live, log_event)
        stale.live = live
        raise
    record_live(instance, target.env, live, log_event)
    return Restored(live, changed, time.monotonic() - started)
