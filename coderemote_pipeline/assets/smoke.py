"""smoke_result: the live API and the live frontend, checked over HTTP for this very release."""

import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import dagster as dg

from coderemote_pipeline import frontend_files as ff
from coderemote_pipeline import stack_outputs as out
from coderemote_pipeline.assets.backend import lambda_version
from coderemote_pipeline.assets.common import STAGE_KWARGS, deployment, stack_outputs, upstream_metadata
from coderemote_pipeline.assets.frontend import cloudfront_invalidation
from coderemote_pipeline.resources.app_source import AppSource

ATTEMPTS = 8
FIRST_DELAY_S = 0.25


@dataclass
class Check:
    name: str
    url: str
    ok: bool = False
    status: int = 0
    latency_ms: float = 0.0
    attempts: int = 0
    detail: str = ""


def _get(url: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), (time.monotonic() - started) * 1000
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), (time.monotonic() - started) * 1000


def _run(check: Check, verify) -> Check:
    """Bounded retries with backoff: a deploy settles in well under ATTEMPTS tries, a broken one fails fast."""
    delay = FIRST_DELAY_S
    for attempt in range(1, ATTEMPTS + 1):
        check.attempts = attempt
        try:
            check.status, body, check.latency_ms = _get(check.url)
            check.detail = verify(check.status, body)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
            check.status, check.detail = 0, f"no answer: {getattr(exc, 'reason', exc)}"
        if not check.detail:
            check.ok = True
            return check
        if attempt < ATTEMPTS:
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return check


def _expect_json(status: int, body: bytes, expected: dict[str, str]) -> str:
    if status != 200:
        return f"expected HTTP 200, got {status}: {body[:200]!r}"
    data = json.loads(body)
    wrong = {k: data.get(k) for k, v in expected.items() if data.get(k) != v}
    return f"expected {expected}, got {wrong}" if wrong else ""


@dg.asset(deps=[lambda_version, cloudfront_invalidation], kinds={"python"}, group_name="verification", **STAGE_KWARGS)
def smoke_result(context: dg.AssetExecutionContext, app_source: AppSource) -> dg.MaterializeResult:
    """HTTP checks that the live API reports this release and the live frontend serves this release's files."""
    started = time.monotonic()
    env, release = deployment(context)
    outputs = stack_outputs(context)
    backend = upstream_metadata(context, "lambda_version")
    bundle = upstream_metadata(context, "frontend_bundle")
    commit = str(backend["commit"])
    frontend_url = outputs[out.FRONTEND_URL]
    expected_index = str(bundle["index_sha256"])
    checks = [
        _run(
            Check("api_health", outputs[out.API_URL] + app_source.health_path),
            lambda s, b: _expect_json(s, b, {"release": release.key, "commit": commit}),
        ),
        _run(
            Check("frontend_index", f"{frontend_url}/index.html"),
            lambda s, b: (
                ""
                if s == 200 and hashlib.sha256(b).hexdigest() == expected_index
                else f"expected HTTP 200 with index.html sha256 {expected_index[:12]}, got {s} / "
                f"{hashlib.sha256(b).hexdigest()[:12]}"
            ),
        ),
    ]
    if bundle["build_mode"] == "runtime_config":
        checks.append(
            _run(
                Check("frontend_config", f"{frontend_url}/{ff.RUNTIME_CONFIG}"),
                lambda s, b: _expect_json(s, b, {"release": release.key, "apiUrl": outputs[out.API_URL], "env": env}),
            )
        )
    metadata: dict[str, object] = {
        "release": release.key,
        "commit": commit,
        "passed": all(c.ok for c in checks),
        "cold_start_s": float(backend.get("cold_start_s", 0.0)),
        "checks": dg.MetadataValue.json([{k: v for k, v in vars(c).items() if k != "detail" or v} for c in checks]),
    }
    for c in checks:
        metadata[f"{c.name}_latency_ms"] = round(c.latency_ms, 1)
        metadata[f"{c.name}_status"] = c.status
    metadata["seconds"] = round(time.monotonic() - started, 3)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise dg.Failure(
            description="smoke failed for "
            + f"{env}|{release.key}: "
            + "; ".join(f"{c.name} {c.url}: {c.detail} (after {c.attempts} tries)" for c in failed),
            metadata=metadata,
            allow_retries=False,
        )
    return dg.MaterializeResult(metadata=metadata)
