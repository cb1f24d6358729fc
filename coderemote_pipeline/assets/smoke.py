"""smoke_result: the live API and the live frontend, checked over HTTP for this very release."""

import contextlib
import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import dagster as dg

from coderemote_pipeline.actions.restore import restore
from coderemote_pipeline.assets.backend import lambda_version
from coderemote_pipeline.assets.common import STAGE_KWARGS, deployment, stack_outputs, upstream_metadata
from coderemote_pipeline.assets.frontend import cloudfront_invalidation
from coderemote_pipeline.assets.retries import permanent_failures_fail_fast
from coderemote_pipeline.ledger.live import record_live, release_of_version
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime, ApiUnhealthy
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.release_keys import ReleaseKeyError, parse_release_key

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
@permanent_failures_fail_fast
def smoke_result(
    context: dg.AssetExecutionContext, app_source: AppSource, aws: AwsResource, api_runtime: ApiRuntime
) -> dg.MaterializeResult:
    """HTTP checks that the live API reports this release and the live frontend serves this release's files.

    A failure rolls the environment back to the release that was live before this run when its policy says so
    (`auto_rollback`, on for prod), and the failure says what was rolled back and why.
    """
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
    if not failed:
        record_live(
            context.instance,
            env,
            reason=f"deployed {release.key}",
            run_id=context.run_id,
            release=release.key,
            commit=commit,
            version=int(backend["version"]),
            digest=str(backend["image_digest"]),
            frontend_release=release.key,
        )
        return dg.MaterializeResult(metadata=metadata)
    reason = f"smoke failed for {env}|{release.key}: " + "; ".join(
        f"{c.name} {c.url}: {c.detail} (after {c.attempts} tries)" for c in failed
    )
    metadata.update(_roll_back(context, env, outputs, backend, bundle, reason, app_source, aws, api_runtime))
    raise dg.Failure(description=f"{reason}. {metadata['after_failure']}", metadata=metadata, allow_retries=False)


def _roll_back(context, env, outputs, backend, bundle, reason, app_source, aws, api_runtime) -> dict[str, object]:
    """Return the environment to the previous live release if policy asks; say in every case what is live now."""
    previous_version = str(backend.get("previous_version", ""))
    previous_site = str(bundle.get("previous_release", "")) or None
    lam = aws.client("lambda")
    previous_release = ""
    if previous_version:
        description = lam.get_function_configuration(
            FunctionName=outputs[out.LAMBDA_FUNCTION_NAME], Qualifier=previous_version
        ).get("Description", "")
        with contextlib.suppress(ReleaseKeyError):  # the bootstrap version is no release to return to
            previous_release = parse_release_key(release_of_version(description)[0]).key
    if not policy_for(env).auto_rollback:
        return {"after_failure": f"{env} now serves this failed release: auto_rollback is off for {env}"}
    if not previous_release or previous_version == str(backend["version"]):
        return {"after_failure": f"no previous release of {env} to roll back to; {env} serves this failed release"}
    try:
        restored = restore(
            lam=lam,
            s3=aws.client("s3"),
            cf=aws.client("cloudfront"),
            api_runtime=api_runtime,
            app_source=app_source,
            env=env,
            outputs=outputs,
            version=previous_version,
            frontend_release=previous_site,
            acl=aws.object_acl,
            caller_reference=f"rollback-{context.run_id}",
        )
    except ApiUnhealthy as exc:
        return {
            "rolled_back": False,
            "after_failure": f"automatic rollback to {previous_release} (version {previous_version}) FAILED, {env} "
            f"has no healthy API: {exc}. Roll back by hand: coderemote-pipeline rollback {env}",
        }
    record_live(
        context.instance,
        env,
        reason=f"automatic rollback: {reason}",
        run_id=context.run_id,
        release=restored.release,
        commit=restored.commit,
        version=int(restored.version),
        digest=restored.digest,
        frontend_release=restored.frontend_release or "",
    )
    context.log.warning(
        f"rolled {env} back to {restored.release} (version {restored.version}) in {restored.seconds:.1f}s"
    )
    return {
        "rolled_back": True,
        "rolled_back_to": restored.release,
        "rolled_back_to_version": int(restored.version),
        "frontend_restored_to": restored.frontend_release or "",
        "rollback_s": round(restored.seconds, 3),
        "rollback_reason": reason,
        "after_failure": f"rolled back automatically: {env} serves {restored.release} again "
        f"(version {restored.version}, site {restored.frontend_release})",
    }
