"""On AWS nothing has to be started: Lambda serves the `live` alias at its Function URL as soon as the alias moves.

`activate` only waits, bounded, until the URL answers the health path for the version just made live; the first
answer after a new version is a cold start, which is what `cold_start_s` records.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from coderemote_pipeline.actions.http_probe import expect_json, expect_status, probe
from coderemote_pipeline.actions.serving import Activation, ApiUnhealthy, ServedVersion
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.runtime import ApiRuntime
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.traffic import Traffic

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
    """The function's `live` alias behind its Function URL (the stack's `api_url` output). Lambda runs every
    published version itself and splits requests by the alias's routing config (set by actions/lambda_versions.py),
    so preparing, weighing and retiring are Lambda's; the figures of each version come from CloudWatch."""

    aws: AwsResource
    health_timeout_s: float = 90.0

    def prepare(self, served: ServedVersion, *, command: str, health_path: str) -> Activation:
        # `command` is the local target's container command; Lambda runs the image's own CMD on the first request.
        return Activation(True, 0.0, None, f"Lambda serves {served.function} version {served.version} on demand")

    def weigh(self, env: str, weights: dict[str, int]) -> None:
        return None

    def confirm(self, served: ServedVersion, *, api_url: str, health_path: str) -> Activation:
        started = time.monotonic()
        cold_start = wait_serving(api_url + health_path, served.variables.get("APP_RELEASE"), self.health_timeout_s)
        detail = f"Lambda serves {served.function}:{out.LIVE_ALIAS} → version {served.version} at {api_url}"
        # The probe rounds its figure: the whole wait is never shorter than the part of it.
        return Activation(False, max(time.monotonic() - started, cold_start), cold_start, detail)

    def traffic(self, env: str, since: float) -> dict[str, Traffic]:
        """Invocations, errors and p99 duration per executed version of the alias, from CloudWatch."""
        lam, cw = self.aws.client("lambda"), self.aws.client("cloudwatch")
        function = out.lambda_function_name(env)
        routing = lam.get_alias(FunctionName=function, Name=out.LIVE_ALIAS)
        versions = {routing["FunctionVersion"], *routing.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})}
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.now(UTC)
        return {v: _cloudwatch(cw, function, v, start, end) for v in versions}

    def retire(self, env: str, keep: set[str]) -> None:
        return None

    def current(self, env: str) -> dict[str, str] | None:
        lam = self.aws.client("lambda")
        function = out.lambda_function_name(env)
        try:
            alias = lam.get_alias(FunctionName=function, Name=out.LIVE_ALIAS)
            config = lam.get_function_configuration(FunctionName=function, Qualifier=alias["FunctionVersion"])
        except lam.exceptions.ResourceNotFoundException:
            return None
        extra = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        primary = round(100 * (1 - sum(extra.values())))
        return {
            "env": env,
            "version": alias["FunctionVersion"],
            "digest": f"sha256:{config.get('CodeSha256', '').removeprefix('sha256:')}",
            # Only this one variable: the function's environment holds the Gemini key's reference too.
            "release": config.get("Environment", {}).get("Variables", {}).get("APP_RELEASE", ""),
            "weights": ",".join(
                [f"{alias['FunctionVersion']}:{primary}", *(f"{v}:{round(100 * w)}" for v, w in extra.items())]
            ),
        }


def _cloudwatch(cw: Any, function: str, version: str, start: datetime, end: datetime) -> Traffic:
    dims = [{"Name": "FunctionName", "Value": function}, {"Name": "Resource", "Value": f"{function}:{out.LIVE_ALIAS}"},
            {"Name": "ExecutedVersion", "Value": version}]  # fmt: skip

    def total(metric: str) -> float:
        points = cw.get_metric_statistics(Namespace="AWS/Lambda", MetricName=metric, Dimensions=dims,
                                          StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])  # fmt: skip
        return sum(p["Sum"] for p in points.get("Datapoints", []))

    p99 = cw.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Duration", Dimensions=dims, StartTime=start, EndTime=end, Period=60,
        ExtendedStatistics=["p99"],
    ).get("Datapoints", [])
    worst = max((p.get("ExtendedStatistics", {}).get("p99", 0.0) for p in p99), default=0.0)
    return Traffic(int(total("Invocations")), int(total("Errors")), (), p99_ms_reported=worst)
