"""CloudFront invalidations: wait until the distribution's last change is deployed, create, then wait until the
CDN reports them complete (one poll, one budget)."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INVALIDATION_TIMEOUT_S = 20 * 60
_DONE = {"Completed", "COMPLETED"}  # AWS says Completed; the emulator says COMPLETED


class InvalidationTimeout(RuntimeError):
    invalidation_id: str | None = None  # set when the invalidation exists and is still in progress


@dataclass(frozen=True)
class Invalidation:
    id: str
    status: str
    seconds: float


def invalidate(cf: Any, distribution: str, paths: list[str], caller_reference: str, *,
               started: float | None = None) -> Invalidation:  # fmt: skip
    """One invalidation of `paths`; the same caller reference (a retried step) returns the same invalidation.
    It waits first for the distribution's last change (the site's edge following a flip) to be deployed: made
    before, it would let an edge still on the old origin cache the release before again, for a day.
    `started` (time.monotonic()): when the budget began, for a try after a failed one: one budget for them all."""
    started = time.monotonic() if started is None else started

    def deployment() -> str:
        return cf.get_distribution(Id=distribution)["Distribution"]["Status"]

    _wait(deployment(), {"Deployed"}, deployment, started, f"distribution {distribution}",
          ", so nothing was invalidated")
    invalidation = cf.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": caller_reference},
    )["Invalidation"]

    def progress() -> str:
        return cf.get_invalidation(DistributionId=distribution, Id=invalidation["Id"])["Invalidation"]["Status"]

    what = f"invalidation {invalidation['Id']} of distribution {distribution}"
    try:
        status = _wait(invalidation["Status"], _DONE, progress, started, what, "")
    except InvalidationTimeout as exc:
        exc.invalidation_id = invalidation["Id"]
        raise
    return Invalidation(invalidation["Id"], status, time.monotonic() - started)


def _wait(status: str, done: set[str], again: Callable[[], str], started: float, what: str, outcome: str) -> str:
    """Poll `again` until the status is one of `done`, backing off, within the invalidation's budget."""
    delay = 0.2
    while status not in done:
        if time.monotonic() - started > INVALIDATION_TIMEOUT_S:
            raise InvalidationTimeout(f"{what} is still {status} after {INVALIDATION_TIMEOUT_S // 60} min{outcome}; "
                                      "the files are live in the bucket, edge caches may be stale")  # fmt: skip
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
        status = again()
    return status
