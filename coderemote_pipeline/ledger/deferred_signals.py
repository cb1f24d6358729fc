"""Ctrl-C and `kill PID` held back for a few lines that must not be cut in two.

Python runs a signal's handler between any two bytecodes of the main thread, and a deploy's handler raises (the
stage at work fails, the run ends, the env is settled: cli/outlive.py). Between a context manager's `__enter__`
returning and its `with` block being entered, a raise leaves `__exit__` never called: a lease's beat thread
started there beat "working" for as long as the process lived, and the run's own settle, in that process, waited
for its step forever.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOPS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Run the block whole; a stop signal that came meanwhile is raised again once it is done, to whatever handler
    was in place (only the main thread runs handlers: elsewhere there is nothing to hold back)."""
    before = {signum: signal.getsignal(signum) for signum in STOPS}
    if threading.current_thread() is not threading.main_thread() or None in before.values():
        yield  # None: a handler not set from Python, which could not be put back
        return
    came: list[int] = []
    try:
        for signum in STOPS:  # inside the try: a signal landing between the two still gets both put back
            signal.signal(signum, lambda received, _frame: came.append(received))
        yield
    finally:
        try:  # nested: a handler put back that raises at once never leaves the other one ours
            signal.signal(signal.SIGTERM, before[signal.SIGTERM])
        finally:
            signal.signal(signal.SIGINT, before[signal.SIGINT])
    if came:
        signal.raise_signal(came[0])
