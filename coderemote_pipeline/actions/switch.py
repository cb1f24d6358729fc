"""Switching what users get, in the order that keeps an environment one whole release.

The slow parts of a deploy (build, push, publish, upload of the new files) happen before this, in parallel, while
users still get the previous release. Then the API switches (the new version is up and healthy, then the alias and
the edge move every request to it), and right after it the site (one flip of its live-release pointer). A failure in
either part puts the part that had already switched back: callers (traffic_shift, restore) see an exception only
after the environment is whole again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from coderemote_pipeline.actions import lambda_versions as lv
from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.serving import Activation, EnvTarget, ServedVersion
from coderemote_pipeline.ledger.lease_beat import LeaseLost
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.release_keys import ReleaseKeyError, parse_release_key


@dataclass(frozen=True)
class Serving:
    """What an environment serves: the alias's version (and its release) and the site's release."""

    version: str
    release: str
    commit: str
    digest: str
    site_release: str | None


@dataclass(frozen=True)
class Switched:
    before: Serving
    after: Serving
    api: Activation
    changed_paths: list[str]
    seconds: float

    @property
    def alias_moved(self) -> bool:
        return self.before.version != self.after.version


class SwitchFailed(RuntimeError):
    """The switch failed part-way; the environment was put back on what it served before (the message says)."""


def serving(target: EnvTarget) -> Serving:
    """What the environment's alias and site point at now (the alias's primary version). The site's pointer is read
    beside the alias's two reads: every deploy and rollback asks this before it switches."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="serving") as pool:
        site = pool.submit(store.live_release, target.s3, target.outputs[out.FRONTEND_BUCKET])
        version = lv.alias_version(target.lam, target.outputs)
        info = lv.version_info(target.lam, target.outputs, version)
        return Serving(version, info.release, info.commit, info.image.digest, site.result())


def served_version(target: EnvTarget, version: str) -> ServedVersion:
    info = lv.version_info(target.lam, target.outputs, version)
    return ServedVersion(target.env, target.outputs[out.LAMBDA_FUNCTION_NAME], version, info.image, info.variables)


def prepare_api(target: EnvTarget, version: str) -> tuple[ServedVersion, Activation]:
    """`version` ready to take requests, taking none yet."""
    served = served_version(target, version)
    return served, target.runtime.prepare(served, command=target.container_command, health_path=target.health_path)


def weigh(target: EnvTarget, primary: str, extra: dict[str, int] | None = None) -> dict[str, int]:
    """The split of the env's requests: `extra` (version → percent) off `primary`, on the alias and the runtime."""
    extra = {v: w for v, w in (extra or {}).items() if v != primary}
    weights = {primary: 100 - sum(extra.values()), **extra}
    target.fence()
    lv.route(target.lam, target.outputs, primary, extra)
    target.runtime.weigh(target.env, weights)
    return weights


def switch_api(target: EnvTarget, version: str) -> Activation:
    """The alias wholly on `version`, and the runtime serving it, healthy. The version is up and healthy before
    any request reaches it, and what served before keeps its requests until then: no request is dropped."""
    served, ready = prepare_api(target, version)
    weigh(target, version)
    confirmed = target.runtime.confirm(served, api_url=target.outputs[out.API_URL], health_path=target.health_path)
    return Activation(ready.reused, ready.seconds + confirmed.seconds, ready.cold_start_s or confirmed.cold_start_s,
                      f"{ready.detail}; {confirmed.detail}")  # fmt: skip


def switch_site(target: EnvTarget, release: str) -> list[str]:
    """The live site on `release`'s snapshot: one flip of the bucket's pointer, then the edge follows it. The paths
    whose bytes differ from the previous release (for a CDN that caches by path)."""
    bucket = target.outputs[out.FRONTEND_BUCKET]
    manifest = store.read_manifest(target.s3, bucket, release)
    if manifest is None:
        raise SwitchFailed(f"the site snapshot of {release} is gone from {bucket}: deploy {release} again")
    target.fence()
    flipped = store.flip(target.s3, bucket, manifest, target.acl)
    target.site.follow(target.env, target.outputs, release)
    return flipped.changed_paths


def switch(target: EnvTarget, to: Serving, before: Serving | None = None) -> Switched:
    """Move users to `to`: the API, then the site. On any failure, what had switched goes back, then it raises.
    `before`: what the env served, if the caller read it just now (nothing moved it since: the lease is held)."""
    started = time.monotonic()
    before = before or serving(target)
    with _put_back_on_failure(target, before, f"the API did not switch to version {to.version}", site=False):
        api = switch_api(target, to.version)
    changed: list[str] = []
    if to.site_release and to.site_release != before.site_release:
        with _put_back_on_failure(target, before, f"the site did not switch to {to.site_release}", site=True):
            changed = switch_site(target, to.site_release)
    elif to.site_release:
        # The pointer names it already, but a process killed right after its flip may never have told the edge: the
        # edge follows, and a CDN keyed by path forgets what differs from what the edge served (all of it: unknown).
        with _put_back_on_failure(target, before, f"the site's edge did not follow {to.site_release}", site=False):
            if (edge := target.site.serves(target.env, target.outputs)) != to.site_release:
                target.fence()
                target.site.follow(target.env, target.outputs, to.site_release)
                changed = store.changed_since(target.s3, target.outputs[out.FRONTEND_BUCKET], edge, to.site_release)
    # The version before stays warm (weight 0): going back to it is a weight change, not a cold start.
    target.fence()
    target.runtime.retire(target.env, keep={to.version, before.version})
    return Switched(before, to, api, changed, time.monotonic() - started)


@contextmanager
def _put_back_on_failure(target: EnvTarget, before: Serving, what: str, *, site: bool) -> Iterator[None]:
    """An error, or the run being stopped (Ctrl-C, `kill`, the UI's Terminate), puts back what had switched: never
    half a switch left behind. An error becomes SwitchFailed saying where the env is; a stop goes on as a stop.
    A writer that lost the lease puts nothing back: the env is the next deploy's now, mid-way through its own switch."""
    try:
        yield
    except LeaseLost:
        raise
    except BaseException as exc:
        back = _put_back(target, before, site=site)
        if not isinstance(exc, Exception):
            raise
        raise SwitchFailed(f"{what} ({exc}); {back}") from exc


def _put_back(target: EnvTarget, before: Serving, *, site: bool) -> str:
    """Put back what had switched; the sentence that says where the environment is now."""
    try:
        if not is_release(before.release):
            # The function's bootstrap version (nothing was ever deployed): only the alias goes back.
            target.fence()
            lv.route(target.lam, target.outputs, before.version)
            target.runtime.weigh(target.env, {})
            return f"{target.env} is back on no release (version {before.version})"
        switch_api(target, before.version)
        if site and before.site_release:
            switch_site(target, before.site_release)
    except LeaseLost as exc:
        return f"{target.env} was not put back ({exc})"
    except Exception as exc:
        return (f"putting {target.env} back on {before.release} FAILED too ({exc}): restore it with "
                f"`coderemote-pipeline rollback {target.env} --to {before.release}`")  # fmt: skip
    return f"{target.env} is back on {before.release} (version {before.version}, site {before.site_release})"


def is_release(key: str) -> bool:
    try:
        parse_release_key(key)
    except ReleaseKeyError:
        return False
    return True
