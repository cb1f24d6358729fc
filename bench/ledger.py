"""Ledger questions against a short and a long history: seconds per question with 100 and with 10,000 deploys.

Each deploy of the history is a run record and the seven events its stages write (testkit/ledger_seed.py), over
three environments and as many releases; the questions are the pipeline's own (rollback target, promotion gate,
stack outputs, job choice, approvals, history and figures, live record), asked through the real ledger on a real
SQLite instance. Each figure is the median of REPEATS timings. The goal — measured, not asserted — is that no
question costs more than 1.5 times as much at 10,000 deploys as at 100 (`max_ratio` ≤ 1.5).
Last line: {"questions": {"NAME": [s_at_100, s_at_10000], ...}, "max_ratio": R}
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import kit  # noqa: F401 (puts testkit/ on the path)

from coderemote_pipeline.ledger.instance import prepare_home
from testkit.ledger_seed import questions, seed_scenario

SIZES = (100, 10_000)
REPEATS = 9


def timed(ask, instance) -> float:
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        ask(instance)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def measure(root: Path, deploys: int) -> dict[str, float]:
    home = root / f"history-{deploys}"
    home.mkdir()
    prepare_home(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        started = time.monotonic()
        events = seed_scenario(instance, deploys=deploys)
        print(f"seeded {deploys} deploys ({events} events) in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return {name: timed(ask, instance) for name, ask in questions().items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        small, large = (measure(Path(tmp), n) for n in SIZES)
    print(f"{'question':<22} {'100 deploys':>12} {'10,000':>10} {'ratio':>7}")
    ratios = {}
    for name in small:
        ratios[name] = large[name] / small[name] if small[name] else 1.0
        print(f"{name:<22} {small[name] * 1000:>10.2f}ms {large[name] * 1000:>8.2f}ms {ratios[name]:>7.2f}")
    result = {"questions": {n: [round(small[n], 5), round(large[n], 5)] for n in small},
              "max_ratio": round(max(ratios.values()), 2)}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
