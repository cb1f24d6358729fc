"""A deploy outlives its terminal: once asked for, it ends as its run decides, not when its reader goes away.

`deploy dev main | head -3`, a closed terminal or a dropped SSH session used to kill the command mid-run: the
run stayed STARTED with the environment's lease, possibly half switched, and the main sensor waited for it as a
deploy in progress. The commands that run a deploy, a rollback, a promotion or a retry now ignore the hang-up and
the broken pipe; what they would print after their reader left goes to /dev/null, and the run ends, settles and
releases the lease as it would have.

Ctrl-C and `kill PID` do stop them, both the same way: the step at work fails without a retry, the run fails, and
what follows a failed run happens (the environment left whole, the lease freed, the figures), exit status 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any, TextIO


class _ReaderMayLeave:
    """A standard stream that, when its reader is gone (EPIPE; EIO from a hung-up terminal), writes to /dev/null
    from then on instead of raising into the run's progress thread or its summary."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        # What failed is still in the buffer: flushed to /dev/null now, not again at the interpreter's exit.
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def unwrapped(stream: Any) -> Any:
    """The stream outlive_the_terminal wrapped, or `stream` itself."""
    return stream._stream if isinstance(stream, _ReaderMayLeave) else stream


def _as_ctrl_c(signum: int, frame: Any) -> None:
    handler = signal.getsignal(signal.SIGINT)  # Dagster's while a run executes, Python's own otherwise
    if callable(handler):
        handler(signal.SIGINT, frame)


def outlive_the_terminal() -> None:
    """Called first by the commands that run a deploy (in this process, or a warm child: cli/warm_server.py)."""
    signal.signal(signal.SIGTERM, _as_ctrl_c)  # not a process gone with its run STARTED and the lease held
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed pipe is an error on write, handled above
    if not isinstance(sys.stdout, _ReaderMayLeave):
        sys.stdout = _ReaderMayLeave(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, _ReaderMayLeave):
        sys.stderr = _ReaderMayLeave(sys.stderr)  # type: ignore[assignment]
