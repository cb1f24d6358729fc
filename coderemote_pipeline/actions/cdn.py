"""CloudFront invalidations: wait until the distribution's last change is deployed, create, then wait until the
CDN reports them complete."""

import time
from dataclasses import dataclass
from typing import Any

INVALIDATION_TIMEOUT_S = 20 * 60
_DONE = {"Completed", "COMPLETED"}  # AWS says Completed; the emulator says COMPLETED


class InvalidationTimeout(RuntimeError):
    pass


@dataclass(frozen=True)
class Invalidation:
    id: str
    status: str
    seconds: float


def invalidate(cf: Any, distribution: str, paths: list[str], caller_reference: str) -> Invalidation:
    """One invalidation of `paths`; the same caller reference (a retried step) returns the same invalidation."""
    started = time.monotonic()
    _wait_deployed(cf, distribution, started)
    invalidation = cf.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": caller_reference},
    )["Invalidation"]
    status, delay = invalidation["Status"], 0.2
    while status not in _DONE:
        if time.monotonic() - started > INVALIDATION_TIMEOUT_S:
            raise InvalidationTimeout(
                f"invalidation {invalidation['Id']} of distribution {distribution} is still {status} after "
                f"{INVALIDATION_TIMEOUT_S // 60} min; the files are live in the bucket, edge caches may be stale"
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
        status = cf.get_invalidation(DistributionId=distribution, Id=invalidation["Id"])["Invalidation"]["Status"]
    return Invalidation(invalidation["Id"], status, time.monotonic() - started)


def _wait_deployed(cf: Any, distribution: str, started: float) -> None:
    """A new origin path (the site's edge following a flip) reaches the edges over minutes: an invalidation done
    before that lets an edge still on the old origin cache the release before again, for a day."""
    status, delay = cf.get_distribution(Id=distribution)["Distribution"]["Status"], 0.2
    while status != "Deployed":
        if time.monotonic() - started > INVALIDATION_TIMEOUT_S:
            raise InvalidationTimeout(
                f"distribution {distribution} is still {status} after {INVALIDATION_TIMEOUT_S // 60} min, so nothing "
                "was invalidated; the files are live in the bucket, edge caches may be stale"
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
        status = cf.get_distribution(Id=distribution)["Distribution"]["Status"]
