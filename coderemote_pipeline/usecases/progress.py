"""What a deploy shows in the terminal while it runs: one line per step start, retry and end, and the run's warnings
(a wait for another deploy of the environment, an image rebuilt because it was gone), read from the event log of
the run being executed; and the failure, as the user's own message without Dagster's wrappers."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.failures import failure_text

# Dagster's console logger stays quiet: the terminal gets the lines below, the event log keeps everything.
__all__ = ["QUIET", "failure_text", "follow"]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
MARKS = {dg.DagsterEventType.STEP_START: "…", dg.DagsterEventType.STEP_SUCCESS: "✓",
         dg.DagsterEventType.STEP_FAILURE: "✗"}  # fmt: skip
POLL_S = 0.2
PAGE = 500


def _line(record: dg.EventLogEntry, started: dict[str, float]) -> str | None:
    event = record.dagster_event
    if event is None:
        if record.level >= logging.WARNING and record.user_message:
            return f"  ! {record.user_message.splitlines()[0]}"
        return None
    if event.event_type is dg.DagsterEventType.STEP_UP_FOR_RETRY and event.step_key:
        # A part that did not answer (the emulator, the registry): said as it happens, not minutes later.
        retry = event.event_specific_data
        error = retry.error if retry else None
        while error is not None and error.cls_name == "RetryRequestedFromPolicy" and error.cause is not None:
            error = error.cause  # Dagster's request to retry, raised from what the stage met
        said = failure_text(error).splitlines()[0] if error is not None else "failed"
        wait = f"; trying again in {retry.seconds_to_wait:.1f} s" if retry and retry.seconds_to_wait else ""
        return f"  ↻ {event.step_key}: {said}{wait}"
    if event.event_type not in MARKS or not event.step_key:
        return None
    if event.event_type is dg.DagsterEventType.STEP_START:
        started[event.step_key] = record.timestamp
        return f"  … {event.step_key}"
    took = record.timestamp - started.get(event.step_key, record.timestamp)
    return f"  {MARKS[event.event_type]} {event.step_key} ({took:.1f}s)"


def follow(instance: dg.DagsterInstance, request_id: str, done: threading.Event, echo: Callable[[str], None],
           found: list[str] | None = None) -> None:  # fmt: skip
    """Print the progress of the run tagged with `request_id` as it lands in the event log, until `done`; `found`
    gets the run's id once it exists. A storage that stops answering ends the following, not the command: the run's
    own thread meets it too, and says it.

    Each poll reads only the events after the last one seen (the event log's cursor): re-reading the whole run
    every 0.2 s cost this process's run a share of the interpreter that grew with every event."""
    with contextlib.suppress(Exception):
        _follow(instance, request_id, done, echo, [] if found is None else found)


def _follow(instance, request_id: str, done: threading.Event, echo: Callable[[str], None], found: list[str]) -> None:
    run_id, cursor, started = None, None, {}
    while True:
        finished = done.wait(POLL_S)
        if run_id is None:
            runs = instance.get_runs(dg.RunsFilter(tags={names.REQUEST_TAG: request_id}), limit=1)
            run_id = runs[0].run_id if runs else None
            found.extend([run_id] if run_id else [])
        while run_id is not None:
            page = instance.get_records_for_run(run_id, cursor=cursor, limit=PAGE)
            for record in page.records:
                line = _line(record.event_log_entry, started)
                if line:
                    echo(line)
            cursor = page.cursor
            if not page.has_more:
                break
        if finished:
            return


@contextlib.contextmanager
def worker_output_to(path: Path) -> Iterator[None]:
    """What the step workers print themselves (Dagster's DEBUG `STEP_WORKER_STARTED` line per step, a library's
    warning) goes to `path`, not into the user's terminal: the progress lines and the failure say what happened.
    A redirection of file descriptor 2, so the forked workers inherit it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
