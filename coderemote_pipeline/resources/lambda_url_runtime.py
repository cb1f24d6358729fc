"""On AWS nothing has to be started: Lambda serves the `live` alias at its Function URL as soon as the alias moves.

`activate` only waits, bounded, until the URL answers the health path for the version just made live; the first
answer after a new version is a cold start, which is what `cold_start_s` records.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.rules import stack_outputs as out

# An image function's cold start takes seconds; a request must outlive one, or every retry starts another.
REQUEST_TIMEOUT_S = 15.0
PAUSE_S = 0.5


def _answer(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _reported_release(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("release") if isinstance(data, dict) else None


def wait_serving(url: str, release: str | None, timeout_s: float) -> float:
    """Seconds until `url` first answers 200 (the cold start); then, within the same budget, until it reports
    `release` (Function URLs follow an alias update within moments, not at once). Raises ApiUnhealthy."""
    started = time.monotonic()
    first_ok: float | None = None
    last = "no answer"
    while time.monotonic() - started < timeout_s:
        try:
            status, body = _answer(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            status, body, last = 0, b"", str(getattr(exc, "reason", exc))
        if status == 200:
            first_ok = first_ok if first_ok is not None else time.monotonic() - started
            reported = _reported_release(body)
            if release is None or reported == release:
                return first_ok
            last = f"HTTP 200 reporting release {reported!r}"
        elif status:
            last = f"HTTP {status}: {body[:200]!r}"
        time.sleep(PAUSE_S)
    expected = f" reporting release {release!r}" if release else ""
    raise ApiUnhealthy(f"{url} did not answer 200{expected} within {timeout_s:.0f} s (last: {last})")


class LambdaUrlRuntime(ApiRuntime):
    """The function's `live` alias behind its Function URL: the stack's `api_url` output."""

    aws: AwsResource
    health_timeout_s: float = 90.0

    def activate(self, served: ServedVersion, *, api_url: str, command: str, health_path: str) -> Activation:
        # `command` is the container command of the local target; Lambda runs the image's own CMD.
        started = time.monotonic()
        cold_start = wait_serving(api_url + health_path, served.variables.get("APP_RELEASE"), self.health_timeout_s)
        return Activation(
            reused=False,
            seconds=time.monotonic() - started,
            cold_start_s=cold_start,
            detail=f"Lambda serves {served.function}:{out.LIVE_ALIAS} → version {served.version} at {api_url}",
        )

    def current(self, env: str) -> dict[str, str] | None:
        lam = self.aws.client("lambda")
        function = out.lambda_function_name(env)
        try:
            version = lam.get_alias(FunctionName=function, Name=out.LIVE_ALIAS)["FunctionVersion"]
            config = lam.get_function_configuration(FunctionName=function, Qualifier=version)
        except lam.exceptions.ResourceNotFoundException:
            return None
        return {
            "env": env,
            "version": version,
            "digest": f"sha256:{config.get('CodeSha256', '').removeprefix('sha256:')}",
            # Only this one variable: the function's environment also holds GEMINI_API_KEY.
            "release": config.get("Environment", {}).get("Variables", {}).get("APP_RELEASE", ""),
        }
