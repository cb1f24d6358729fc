"""Which failures are worth trying again in seconds: a part of the infrastructure that did not answer (the emulator
or registry restarting, the Docker engine briefly away, a dropped connection, AWS throttling or a 5xx). Anything else
(a Dockerfile that fails, a refused release, an access error, a bad ref) fails at once with its own message, because
repeating it cannot change the outcome. The stages' RetryPolicy asks this (assets/retries.py), and so does every
restore that must clear the CDN after its switch, in a step or in a settle (actions/restore.py)."""

from __future__ import annotations

import socket
import sys
import urllib.error

import botocore.exceptions

from coderemote_pipeline.rules.errors import Transient

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    Transient,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
TRANSIENT_AWS_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
                       "ServiceUnavailable", "ServiceUnavailableException", "InternalError", "InternalFailure",
                       "SlowDown", "ResourceConflictException"}  # fmt: skip
MAX_CHAIN = 6


def _loaded_errors(module: str, name: str) -> type[BaseException] | None:
    """An error class of a library, if the library is loaded: an error of it exists only where it was imported, and
    rules must not import the Docker SDK or requests (the quick CLI commands load rules without them)."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name, None) if loaded is not None else None


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    if isinstance(exc, (*TRANSIENT_TYPES, urllib.error.URLError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status >= 500
    docker_api = _loaded_errors("docker.errors", "APIError")
    if docker_api is not None and isinstance(exc, docker_api):
        return exc.is_server_error()
    for name in ("ConnectionError", "Timeout"):
        requests_error = _loaded_errors("requests.exceptions", name)
        if requests_error is not None and isinstance(exc, requests_error):
            return True
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
