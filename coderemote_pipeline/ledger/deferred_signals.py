"""Ctrl-C and `kill PID` held back for a few lines that must not be cut in two.

Python runs a signal's handler between any two bytecodes of the main thread, and a deploy's handler raises (the
stage at work fails, the run ends, the env is settled: cli/outlive.py). Between a context manager's `__enter__`
returning and its `with` block being entered, a raise leaves `__exit__` never called: a lease's beat thread
started there beat "working" for as long as the process lived, and the run's own settle, in that process, waited
for its step forever.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

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


def entered_whole(func: Callable[P, Iterator[T]]) -> Callable[P, contextlib.AbstractContextManager[T]]:
    """contextlib.contextmanager, whose generator is closed when its entry is cut by a stop signal after it
    yielded: contextlib's `__enter__` still runs a few bytecodes there, and a signal's raise leaves the caller's
    `with` never entered. The generator then stayed suspended inside its block (a lease's beat thread kept beating)
    for as long as the raise's traceback was kept: the step's error, while the run's settle waited for that beat.
    Only for a plain `with`: ExitStack.enter_context still runs a few lines before it registers the exit."""

    @functools.wraps(func)
    def whole(*args: P.args, **kwargs: P.kwargs) -> contextlib.AbstractContextManager[T]:
        return _Whole(func(*args, **kwargs))

    return whole


class _Whole(contextlib.AbstractContextManager):
    def __init__(self, generator: Iterator[T]) -> None:
        self._generator = generator
        self._entry = contextlib.contextmanager(lambda: generator)()

    def __enter__(self) -> T:
        starting = inspect.getgeneratorstate(self._generator) == inspect.GEN_CREATED  # not a re-entry's error
        try:
            return self._entry.__enter__()
        except BaseException:
            if starting and inspect.getgeneratorstate(self._generator) == inspect.GEN_SUSPENDED:
                self._generator.close()  # it yielded: its block is left as if the caller's `with` had raised
            raise

    def __exit__(self, *exc_info):
        return self._entry.__exit__(*exc_info)
