"""What the strategy watches after a release ("Monitor CloudWatch for errors"): an alarm on the live API's errors.

It has no action: the strategy names no one to page, so the alarm is what the CloudWatch console shows red after a
bad release. Add `alarm_actions` (an SNS topic) when there is someone to notify. It watches the `live` alias, not
the whole function, so errors of a version no longer live (or not yet live) do not count.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from coderemote_pipeline.rules.stack_outputs import LIVE_ALIAS

ERRORS_PERIOD_SECONDS = 300
ERRORS_THRESHOLD = 1


def api_errors_alarm(function_name: pulumi.Input[str], tags: Mapping[str, str]) -> aws.cloudwatch.MetricAlarm:
    name = pulumi.Output.from_input(function_name)
    return aws.cloudwatch.MetricAlarm(
        "api-errors-alarm",
        name=name.apply(lambda n: f"{n}-{LIVE_ALIAS}-errors"),
        alarm_description=name.apply(lambda n: f"{n}:{LIVE_ALIAS} returned errors: check its log group"),
        namespace="AWS/Lambda",
        metric_name="Errors",
        dimensions={"FunctionName": name, "Resource": name.apply(lambda n: f"{n}:{LIVE_ALIAS}")},
        statistic="Sum",
        period=ERRORS_PERIOD_SECONDS,
        evaluation_periods=1,
        threshold=ERRORS_THRESHOLD,
        comparison_operator="GreaterThanOrEqualToThreshold",
        # No invocations is not an error: quiet environments stay OK.
        treat_missing_data="notBreaching",
        tags=dict(tags),
    )
