"""The stages' retries: a transient failure (rules/transient.py: a part of the infrastructure that did not answer)
is retried by the RetryPolicy; anything else fails at once with its own message, because repeating it cannot change
the outcome.

Every stage is safe to repeat: infra is idempotent, images are found by build key, a published version is reused,
uploads skip unchanged files, an invalidation is reused by its caller reference.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.failures import INTERRUPTED
from coderemote_pipeline.rules.transient import is_transient

# Two more tries, 1 s then 2 s later (±50%): long enough for a restarting part, short enough that a part that
# stays down fails the run within seconds, with the message that names it and the fix.
STAGE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

F = TypeVar("F", bound=Callable[..., Any])


def permanent_failures_fail_fast(stage: F) -> F:
    """Lets the RetryPolicy retry only transient failures: any other error becomes a `dg.Failure` that forbids
    retries and carries the original message (and the original exception as its cause)."""

    @functools.wraps(stage)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return stage(*args, **kwargs)
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as stop:
            # Dagster's RetryPolicy retries an interrupted step (a worker taken away); a person's Ctrl-C, or a
            # `kill`, asks the deploy to stop: the step fails here, and the run's end settles the environment.
            _stopped(args[0] if args else None)
            raise dg.Failure(description=INTERRUPTED, allow_retries=False) from stop
        except dg.Failure:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    return run  # type: ignore[return-value]


def _stopped(context: Any) -> None:
    """Tag the run as stopped, so that its other branch does not go on: Dagster runs whatever a failure does not
    block, and a branch's builds and checks would go on for minutes after the Ctrl-C (assets/stage.lease_held)."""
    run = getattr(context, "run", None)
    if run is not None:
        with contextlib.suppress(Exception):  # the stop goes on all the same; a later stage then starts as before
            context.instance.add_run_tags(run.run_id, {names.STOPPED_TAG: "1"})
