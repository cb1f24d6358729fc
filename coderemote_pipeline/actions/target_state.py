"""What an environment really serves: the alias, the runtime and the site as the target reports them, and what
answers over HTTP (the live API's health, the live site's HTML). A difference from the live record is drift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import ClientError

from coderemote_pipeline.actions import http_probe, switch
from coderemote_pipeline.actions import site_store as store
from coderemote_pipeline.actions.serving import EnvTarget, TargetMissing
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.aws_errors import error_code

STATUS_BUDGET_S = 2.0


@dataclass(frozen=True)
class TargetState:
    env: str
    serving: switch.Serving
    runtime: dict[str, str] | None
    api: http_probe.Probe | None = None
    site: http_probe.Probe | None = None
    site_edge: str | None = None  # the release the site's edge serves, as it says (the pointer names another: split)

    @property
    def edge_behind(self) -> bool:
        """The site's edge serves another release than its live pointer names (it never heard of a flip)."""
        return None not in (self.site_edge, self.frontend_release) and self.site_edge != self.frontend_release

    @property
    def version(self) -> str:
        return self.serving.version

    @property
    def release(self) -> str:
        return self.serving.release

    @property
    def frontend_release(self) -> str | None:
        return self.serving.site_release

    @property
    def api_down(self) -> bool:
        """Nothing answers, or only the edge does (haproxy's 503 with no container of the version running)."""
        if self.api is None or self.api.ok:
            return False
        return self.api.status == 0 or (self.api.status == 503 and self.runtime is None)


@contextmanager
def present(target: EnvTarget) -> Iterator[None]:
    """The target's "no such function or alias", as the one-line TargetMissing that names the env and the fix."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        function = target.outputs[out.LAMBDA_FUNCTION_NAME]
        missing = (f"{target.env}'s function {function} (or its {target.outputs[out.LAMBDA_ALIAS_NAME]} alias) does "
                   "not exist in the target: on the local target the emulator was killed and restarted empty "
                   "(`local down` keeps it)")  # fmt: skip
        raise TargetMissing(
            f"{missing}. Deploy again to provision it: coderemote-pipeline deploy {target.env} <release>", missing
        ) from None


def read_target(target: EnvTarget, *, probe: bool = True) -> TargetState:
    """The env's alias, runtime and site as the target reports them; with `probe`, asked over HTTP too."""
    with present(target):
        now = switch.serving(target)
    runtime = target.runtime.current(target.env)
    edge = target.site.serves(target.env, target.outputs) if now.site_release else None
    if not probe:
        return TargetState(target.env, now, runtime, site_edge=edge)
    health = http_probe.probe(
        "api_health",
        target.outputs[out.API_URL] + target.health_path,
        lambda a: _reports(a, now),
        start_budget_s=STATUS_BUDGET_S,
        settle_s=0.0,
    )
    return TargetState(target.env, now, runtime, health, _site_probe(target, now.site_release), edge)


def _reports(answer: http_probe.Answer, now: switch.Serving) -> str:
    if answer.status != 200:
        return f"HTTP {answer.status}" if answer.status else answer.error
    data = answer.json()
    if data.get("release") != now.release or not str(data.get("commit", "")).startswith(now.commit):
        return f"reports {data.get('release')!r} at {str(data.get('commit', ''))[:12]}"
    return ""


def _site_probe(target: EnvTarget, release: str | None) -> http_probe.Probe | None:
    if not release:
        return None
    manifest = store.read_manifest(target.s3, target.outputs[out.FRONTEND_BUCKET], release) or {}
    index = next((f["sha256"] for f in manifest.get("files", []) if f["path"] == "index.html"), None)

    def verdict(answer: http_probe.Answer) -> str:
        if answer.status != 200:
            return f"HTTP {answer.status}" if answer.status else answer.error
        got = hashlib.sha256(answer.body).hexdigest()
        return "" if index is None or got == index else f"serves an index.html that is not {release}'s"

    url = f"{target.outputs[out.FRONTEND_URL]}/index.html"
    return http_probe.probe("site_index", url, verdict, start_budget_s=STATUS_BUDGET_S, settle_s=0.0)


def split_parts(state: TargetState) -> list[str]:
    """How the live parts disagree on the release (empty: one whole release)."""
    parts = []
    if state.frontend_release is not None and state.frontend_release != state.release:
        parts.append(f"the API serves {state.release or 'no release'} but the site serves {state.frontend_release}")
    if state.edge_behind:
        parts.append(f"the site's edge serves {state.site_edge} but its live pointer names {state.frontend_release}")
    served = (state.runtime or {}).get("version")
    if state.runtime is None:
        parts.append(f"nothing serves the API (no runtime runs alias version {state.version})")
    elif served not in (None, state.version):
        parts.append(f"the API runtime serves version {served}, the alias points to {state.version}")
    weights = runtime_weights(state.runtime)
    if len(weights) > 1:
        split = ", ".join(f"version {v} {w}%" for v, w in weights.items())
        parts.append(f"the API splits its requests between two versions ({split}): a traffic shift is in flight")
    return parts


def runtime_weights(runtime: dict[str, str] | None) -> dict[str, int]:
    """version → percent of requests, from what the runtime reports (`weights`: "3:90,4:10"), weighted ones only."""
    found: dict[str, int] = {}
    for part in (runtime or {}).get("weights", "").split(","):
        version, _, weight = part.partition(":")
        if version and weight.isdigit() and int(weight) > 0:
            found[version] = int(weight)
    return found


def drift(recorded: LiveRecord | None, state: TargetState) -> list[str]:
    """Every way the target differs from what the pipeline last made live, and every live part that is down."""
    if recorded is None:
        return []
    problems = []
    if str(recorded.version) != state.version:
        problems.append(
            f"alias points to version {state.version} ({state.release or 'no release'}), "
            f"recorded {recorded.version} ({recorded.release})"
        )
    if recorded.frontend_release and recorded.frontend_release != state.frontend_release:
        problems.append(f"site serves {state.frontend_release}, recorded {recorded.frontend_release}")
    if state.runtime is not None and state.runtime.get("version") not in (None, state.version):
        problems.append(f"the API runtime serves version {state.runtime.get('version')}, alias {state.version}")
    if state.edge_behind:
        problems.append(f"the site's edge serves {state.site_edge}, its live pointer {state.frontend_release}")
    if state.api is not None and not state.api.ok:
        down = state.api_down
        problems.append(
            f"the API at {state.api.url} {'does not answer' if down else 'is unhealthy'} ({state.api.detail}): "
            f"{'DOWN. ' if down else ''}Bring it back with `coderemote-pipeline local up` on the local target "
            f"(it restarts the API of what is live), or `coderemote-pipeline rollback {state.env}`"
        )
    if state.site is not None and not state.site.ok:
        problems.append(f"the site at {state.site.url}: {state.site.detail}")
    return problems
