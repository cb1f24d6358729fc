"""The verdict on a new version's live traffic over one window: pass, breach (which metric, its value, the
threshold), or not yet known (too few requests). No data is never a pass."""

from __future__ import annotations

from dataclasses import dataclass

from coderemote_pipeline.rules.rollout import Analysis
from coderemote_pipeline.rules.traffic import Traffic

PASS, BREACH, TOO_FEW = "pass", "breach", "too_few"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    metric: str = ""
    value: float = 0.0
    threshold: float = 0.0
    requests: int = 0

    def describe(self) -> str:
        if self.outcome == BREACH and self.metric == "error_rate":
            return f"error rate {self.value:.1%} > threshold {self.threshold:.1%} over {self.requests} requests"
        if self.outcome == BREACH:
            return f"latency p99 {self.value:.0f} ms > threshold {self.threshold:.0f} ms over {self.requests} requests"
        if self.outcome == TOO_FEW:
            return f"{self.requests} requests < min_requests {self.threshold:.0f}: no data is not a pass"
        return f"passed over {self.requests} requests"


def judge(traffic: Traffic, analysis: Analysis) -> Verdict:
    """A breach counts as soon as it shows; a pass only once `min_requests` were seen.

    Errors are judged from the first request: waiting for min_requests while a version fails every request would
    let a broken release take its share for a whole interval.
    """
    n = traffic.requests
    if n and traffic.error_rate > analysis.max_error_rate and traffic.errors >= _errors_to_judge(analysis):
        return Verdict(BREACH, "error_rate", traffic.error_rate, analysis.max_error_rate, n)
    if n >= analysis.min_requests and traffic.p99_ms > analysis.max_p99_ms:
        return Verdict(BREACH, "latency_p99_ms", traffic.p99_ms, analysis.max_p99_ms, n)
    if n < analysis.min_requests:
        return Verdict(TOO_FEW, "requests", n, analysis.min_requests, n)
    if traffic.error_rate > analysis.max_error_rate:
        return Verdict(BREACH, "error_rate", traffic.error_rate, analysis.max_error_rate, n)
    return Verdict(PASS, requests=n)


def _errors_to_judge(analysis: Analysis) -> int:
    # One 5xx of the first three requests is noise at a 1 % threshold; this many errors is not, whatever came after.
    return max(3, round(analysis.min_requests * analysis.max_error_rate) + 1)
