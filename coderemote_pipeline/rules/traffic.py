"""What one version answered over a window of live traffic: the figures a canary is judged on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Traffic:
    requests: int = 0
    errors: int = 0  # 5xx answers (on AWS: the function's errors)
    latencies_ms: tuple[float, ...] = ()
    # Where the figures come from when no single latency is known (CloudWatch's own p99 on AWS).
    p99_ms_reported: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile_ms(self, p: float) -> float:
        if self.p99_ms_reported is not None and not self.latencies_ms:
            return self.p99_ms_reported
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return float(ordered[min(len(ordered) - 1, int(len(ordered) * p))])

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.requests + other.requests, self.errors + other.errors,
                       self.latencies_ms + other.latencies_ms)  # fmt: skip
