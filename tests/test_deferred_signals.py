"""Ctrl-C and `kill PID` held back while a lease's beat is entered (ledger/deferred_signals.py), in a process of
its own: a test runner's main thread must not take the signals."""

import subprocess
import sys

DEFERRED = """
import signal
from coderemote_pipeline.ledger import deferred_signals

class Stopped(Exception):
    pass

def stop(signum, frame):
    raise Stopped(signum)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
try:
    with deferred_signals.signals_deferred():
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        print("held back", flush=True)
except Stopped as raised:
    print("raised after", raised.args[0] == signal.SIGTERM, flush=True)
print("handlers back", signal.getsignal(signal.SIGINT) is stop and signal.getsignal(signal.SIGTERM) is stop)

# A signal landing as the handlers are put back, between the two, to the one already back (it raises at once):
# neither stays the deferring one.
put, landed = signal.signal, []
def put_then_interrupted(signum, handler):
    previous = put(signum, handler)
    if handler is stop and not landed:
        landed.append(signum)
        signal.raise_signal(signum)
    return previous
deferred_signals.signal.signal = put_then_interrupted
try:
    with deferred_signals.signals_deferred():
        pass
except Stopped:
    pass
deferred_signals.signal.signal = put
print("both back", signal.getsignal(signal.SIGINT) is stop and signal.getsignal(signal.SIGTERM) is stop)
"""


def test_a_stop_signal_is_held_back_for_the_block_then_raised_and_the_handlers_put_back():
    done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["held back", "raised after True", "handlers back True", "both back True"], (
        done.stdout + done.stderr[-2000:]
    )
