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
from dataclasses import dataclass, replace

import dagster as dg

from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.cdn import invalidate
from coderemote_pipeline.actions.serving import EnvTarget
from coderemote_pipeline.actions.switch import Serving, switch
from coderemote_pipeline.ledger.live import LogEvent, record_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import stack_outputs as out

# More paths than this in a printed command: one wildcard instead (CloudFront bills a wildcard as one path).
_LISTED_PATHS = 10


@dataclass(frozen=True)
class Restored:
    live: LiveRecord
    changed_paths: list[str]
    seconds: float


class CdnNotCleared(RuntimeError):
    """The environment serves the release again, whole; only the CDN's forgetting of the release it left failed.
    Not a failed restore: putting the env back "by hand" would find it already there and invalidate nothing."""

    def __init__(self, distribution: str, paths: list[str], cause: BaseException, endpoint: str = ""):
        self.distribution, self.paths, self.cause = distribution, paths, cause
        self.endpoint = endpoint  # the emulator's, locally: the command must not go to AWS
        self.live: LiveRecord | None = None  # set once the restored release is recorded
        super().__init__(f"invalidating {len(paths)} path(s) on CloudFront distribution {distribution} failed: "
                         f"{cause}")  # fmt: skip

    def hint(self) -> str:
        listed = self.paths if len(self.paths) <= _LISTED_PATHS else ["/*"]
        command = shlex.join(["aws", "cloudfront", "create-invalidation", "--distribution-id", self.distribution,
                              "--paths", *listed, *(["--endpoint-url", self.endpoint] if self.endpoint else [])])
        return (f"but the CDN may still serve cached files of the release it left ({', '.join(self.paths[:5])}"
                f"{', ...' if len(self.paths) > 5 else ''}): {self}. Invalidate them: `{command}`")


def restore(target: EnvTarget, to: LiveRecord, caller_reference: str, away_from: str | None = None) -> list[str]:
    """Make `target` serve `to` again (API, then site, then the CDN); the site paths that changed.
    `away_from`: the site release being left. The CDN forgets what differs between the two snapshots, not only what
    this flip changed: a retried restore finds the site flipped already while the CDN may still hold the release
    it left (and the same paths make the same caller reference return the same invalidation)."""
    wanted = Serving(str(to.version), to.release, to.commit, to.digest, to.frontend_release or None)
    switched = switch(target, wanted)
    changed = switched.changed_paths
    if away_from and to.frontend_release and away_from != to.frontend_release:
        changed = store.changed_since(target.s3, target.outputs[out.FRONTEND_BUCKET], away_from, to.frontend_release)
    paths = ff.invalidation_paths(changed)
    if paths:
        distribution = target.outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
        try:
            invalidate(target.cf, distribution, paths, caller_reference)
            target.site.forget(target.env, paths)
        except Exception as exc:  # any cause: the env serves `to` now, and the caller must say so, then this
            raise CdnNotCleared(distribution, paths, exc, _emulated(target.cf)) from exc
    return changed


def _emulated(cf) -> str:
    """The endpoint of a CloudFront client that does not talk to AWS (the local emulator), else ""."""
    endpoint = str(getattr(getattr(cf, "meta", None), "endpoint_url", "") or "")
    return "" if not endpoint or endpoint.endswith(".amazonaws.com") else endpoint


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
    try:
        changed = restore(target, to, caller_reference=f"restore-{run_id}-{to.release}", away_from=away_from)
    except CdnNotCleared as stale:
        record_live(instance, target.env, live, log_event)
        stale.live = live
        raise
    record_live(instance, target.env, live, log_event)
    return Restored(live, changed, time.monotonic() - started)
