"""On AWS nothing has to be started: Lambda serves the `live` alias at its Function URL as soon as the alias moves.

`activate` only waits, bounded, until the URL answers the health path for the version just made live; the first
answer after a new version is a cold start, which is what `cold_start_s` records.
"""

from __future__ import annotations

import time

from coderemote_pipeline.actions.http_probe import expect_json, expect_status, probe
from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.rules import stack_outputs as out

# An image function's cold start takes seconds; a Function URL follows an alias update within moments, not at once:
# an old release answering is not yet a verdict, so it gets the whole budget to change.
PAUSE_S = 0.5
REQUEST_TIMEOUT_S = 15.0  # a request must outlive a cold start, or every retry starts another


def wait_serving(url: str, release: str | None, timeout_s: float) -> float:
    """Seconds until `url` answers 200 reporting `release` (the cold start). Raises ApiUnhealthy."""
    verdict = expect_json({"release": release}) if release else expect_status(200)
    result = probe("health", url, verdict, start_budget_s=timeout_s, settle_s=timeout_s, pause_s=PAUSE_S,
                   max_pause_s=PAUSE_S, request_timeout_s=REQUEST_TIMEOUT_S)  # fmt: skip
    if not result.ok:
        raise ApiUnhealthy(f"{url} did not answer as {release or 'healthy'} within {timeout_s:.0f} s: {result.detail}")
    return result.seconds


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
            # The probe rounds its figure: the whole wait is never shorter than the part of it.
            seconds=max(time.monotonic() - started, cold_start),
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
