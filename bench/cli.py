"""Wall seconds of the quick commands, the whole process each time: `--help`, `status` and `approvals`, on a state
dir whose ledger holds 200 deploys (seeded, no stack needed: status then reads the records and reports each env's
target as unreachable, which is what it costs to find out).

Also the seconds until `deploy dev main` prints its first line (the remote here does not exist: the line comes before
that is found out). Prints the median of N runs per command, then one JSON object on the last line. Goals (measured,
not asserted): `--help` <= 0.3 s on this machine; a deploy's first line within a second.
Usage: .venv/bin/python bench/cli.py [--runs N]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kit import quiet  # noqa: F401  (kit puts testkit/ on the path)

from coderemote_pipeline.ledger.instance import open_instance
from testkit.ledger_seed import seed_scenario

BIN = Path(sys.executable).parent / "coderemote-pipeline"
COMMANDS = {"help": ["--help"], "status": ["status"], "approvals": ["approvals"]}


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([str(BIN), *argv], env=env, capture_output=True, timeout=120, check=False)
    return time.monotonic() - started


def first_line(argv: list[str], env: dict[str, str]) -> float:
    """Seconds until the command prints its first line (a deploy says it started before it loads Dagster)."""
    started = time.monotonic()
    with subprocess.Popen([str(BIN), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        proc.stdout.readline()
        seconds = time.monotonic() - started
        proc.communicate(timeout=120)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="coderemote-bench-cli-"))
    try:
        env = {**os.environ, "CODEREMOTE_STATE_DIR": str(root / "state"), "CODEREMOTE_APP_REMOTE": str(root / "none")}
        env.pop("DAGSTER_HOME", None)
        seed_scenario(open_instance(root / "state"), deploys=200)
        figures = {}
        for name, argv in COMMANDS.items():
            timed(argv, env)  # the first run pays the page cache
            figures[f"{name}_s"] = round(statistics.median(timed(argv, env) for _ in range(args.runs)), 3)
            print(f"coderemote-pipeline {' '.join(argv):<12} median {figures[f'{name}_s']:.3f} s of {args.runs} runs")
        runs = [first_line(["deploy", "dev", "main"], env) for _ in range(args.runs)]
        figures["deploy_first_line_s"] = round(statistics.median(runs), 3)
        print(f"coderemote-pipeline deploy dev main: first line after {figures['deploy_first_line_s']:.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
