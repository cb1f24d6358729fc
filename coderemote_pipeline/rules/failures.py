"""A failed step's message as the user needs it: their own exception text, without Dagster's wrappers."""

from __future__ import annotations

import re
from typing import Any

QUALIFIED_CLASS = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)+[A-Z]\w*: ")


# What a step stopped by Ctrl-C or `kill` reports, whether the signal came in the stage's code or between steps.
INTERRUPTED = "interrupted (Ctrl-C or a stop signal): the deploy stopped here"
_INTERRUPTS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}
# What a step of that run says when it was due to start after the stop: Dagster runs every branch a failure does not
# block, and the stop was meant for the whole deploy.
NOT_STARTED_AFTER_STOP = "not started: the deploy was stopped (Ctrl-C or a stop signal) while another stage worked"


def failure_text(error: Any) -> str:
    """The user's exception message, without Dagster's wrappers ("Error occurred while executing op ...", and
    "Exceeded max_retries of N" when the stage's RetryPolicy gave up on a transient error: then it says so)."""
    if error is not None and error.cls_name in _INTERRUPTS:
        return INTERRUPTED
    tries = ""
    while error is not None and error.cause is not None:
        if error.message.startswith("Exceeded max_retries of "):
            tries = f" (still failing after {int(error.message.split()[-1]) + 1} tries)"
        elif "Error occurred while executing" not in error.message:
            break
        error = error.cause
    if error is None:
        return "unknown error"
    # "dagster._core.definitions.events.Failure: ", "botocore.exceptions.EndpointConnectionError: ": the class is
    # the reader's least concern.
    return QUALIFIED_CLASS.sub("", error.message.strip(), count=1) + tries


def each_reason_once(failed: list[tuple[str, str]]) -> str:
    """(step, reason) pairs as one line, each reason once after every step it stopped: a part that went down (the
    emulator, the registry) fails both branches with one message, which the reader needs once."""
    steps: dict[str, list[str]] = {}
    for step, reason in failed:
        steps.setdefault(reason, []).append(step)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in steps.items())
