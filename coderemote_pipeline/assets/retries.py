"""Which stage failures are worth retrying: a part of the infrastructure that did not answer (the emulator or
registry restarting, the Docker engine briefly away, a dropped connection, AWS throttling or a 5xx) is retried by
the stages' RetryPolicy; anything else (a Dockerfile that fails, a refused release, an access error, a bad ref)
fails at once with its own message, because repeating it cannot change the outcome.

Every stage is safe to repeat: infra is idempotent, images are found by build key, a published version is reused,
uploads skip unchanged files, an invalidation is reused by its caller reference.
"""

from __future__ import annotations

import functools
import socket
import urllib.error
from collections.abc import Callable
from typing import Any, TypeVar

import botocore.exceptions
import dagster as dg
import docker.errors
import requests.exceptions

from coderemote_pipeline.actions.git_remote import RemoteUnreachable
from coderemote_pipeline.local_stack.errors import DockerEngineDown, EmulatorDown, RegistryDown
from coderemote_pipeline.rules.failures import INTERRUPTED
from coderemote_pipeline.rules.pulumi_update import StackBusy

# Two more tries, 1 s then 2 s later (±50%): long enough for a restarting part, short enough that a part that
# stays down fails the run within seconds, with the message that names it and the fix.
STAGE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    EmulatorDown,
    RegistryDown,
    DockerEngineDown,
    RemoteUnreachable,
    StackBusy,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)
TRANSIENT_AWS_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
                       "ServiceUnavailable", "ServiceUnavailableException", "InternalError", "InternalFailure",
                       "SlowDown", "ResourceConflictException"}  # fmt: skip
MAX_CHAIN = 6

F = TypeVar("F", bound=Callable[..., Any])


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    if isinstance(exc, (*TRANSIENT_TYPES, urllib.error.URLError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status >= 500
    if isinstance(exc, docker.errors.APIError):
        return exc.is_server_error()
    return False


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or what it was raised from or while handling (errors here often say `from None` to keep
    messages short, which still records the original as the context), is an infrastructure hiccup."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < MAX_CHAIN:
        if _transient_itself(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


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
            raise dg.Failure(description=INTERRUPTED, allow_retries=False) from stop
        except dg.Failure:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    return run  # type: ignore[return-value]
