"""Wall seconds of the quick commands, each the whole process as a user runs it: `--help`, `status`, `approvals`
and `history dev`, on an empty state dir and on one whose ledger holds a few recorded deploys (seeded by
testkit/ledger_seed.py, no stack needed).

On the seeded dir `status` finds deployed environments, so it loads the target's clients and stops where the local
stack is not running (exit 2, as it does for a user without `local up`); `approvals` describes the held v2.0.0 (its
remote does not exist here, and the infra preview is unavailable). Both are what those commands cost to find out.

Prints the median wall and CPU seconds of N runs per command (the runs interleaved, so a burst of load on this
shared box spreads over all of them), then one JSON object on the last line: the wall medians by name
(`help_s`, `status_s`, `approvals_s`, `history_s`, `seeded_status_s`, ...), the CPU medians under `cpu`.

The same commands again through the warm process that `local up` keeps (`warm_*`: each a fork of a process with
everything loaded, cli/warm.py); the figures above run each command in its own process (CODEREMOTE_WARM=0).

Also the seconds until `deploy dev main` prints its first line (`deploy_first_line_s`; the remote here does not
exist: the line comes before that is found out). Goals (measured, not asserted): `--help` <= 0.3 s on this machine;
a deploy's first line within a second.
Usage: .venv/bin/python bench/cli.py [--runs N] [--deploys D]
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

# testkit/ sits beside the package, not in it: benches import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coderemote_pipeline.cli import warm_process
from coderemote_pipeline.ledger.instance import open_instance
from testkit.ledger_seed import seed_scenario

BIN = Path(sys.executable).parent / "coderemote-pipeline"
COMMANDS = {"help": ["--help"], "status": ["status"], "approvals": ["approvals"], "history": ["history", "dev"]}
HELP_GOAL_S = 0.3


def command_env(state_dir: Path, warm: bool = False) -> dict[str, str]:
    env = {**os.environ, "CODEREMOTE_STATE_DIR": str(state_dir), "CODEREMOTE_TARGET": "local",
           "CODEREMOTE_APP_REMOTE": str(state_dir.parent / "no-remote.git"), "CODEREMOTE_WARM": "1" if warm else "0"}
    for inherited in ("DAGSTER_HOME", "CODEREMOTE_APP_CONFIG"):
        env.pop(inherited, None)
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system: what the load of other work on the box inflates least) and the
    exit code of one run."""
    started = time.monotonic()
    child = subprocess.Popen([str(BIN), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def first_line(argv: list[str], env: dict[str, str]) -> float:
    """Seconds until the command prints its first line (a deploy says it started before it loads Dagster)."""
    started = time.monotonic()
    with subprocess.Popen([str(BIN), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        proc.stdout.readline()
        seconds = time.monotonic() - started
        proc.communicate(timeout=120)
    return seconds


def measure(cases: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, tuple[float, float, int]]:
    """name → (median wall seconds, median CPU seconds, exit code)."""
    codes = {name: timed(argv, env)[2] for name, (argv, env) in cases.items()}  # the first run pays the page cache
    found: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, env) in cases.items():
            found[name].append(timed(argv, env))
    return {name: (statistics.median(r[0] for r in found[name]), statistics.median(r[1] for r in found[name]),
                   codes[name]) for name in cases}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--deploys", type=int, default=20, help="deploys recorded in the seeded ledger")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="coderemote-bench-cli-"))
    try:
        empty, seeded = root / "empty" / "state", root / "seeded" / "state"
        empty.mkdir(parents=True)
        with open_instance(seeded) as instance:
            seed_scenario(instance, deploys=args.deploys)
        cases = {f"{name}_s": (argv, command_env(empty)) for name, argv in COMMANDS.items()}
        cases |= {f"seeded_{name}_s": (argv, command_env(seeded)) for name, argv in COMMANDS.items() if name != "help"}
        warm_process.ensure(seeded, wait=True)
        cases |= {f"warm_{name}_s": (argv, command_env(seeded, warm=True)) for name, argv in COMMANDS.items()
                  if name != "help"}  # fmt: skip
        found = measure(cases, args.runs)
        deploy_first_line_s = statistics.median(first_line(["deploy", "dev", "main"], command_env(empty))
                                                for _ in range(args.runs))  # fmt: skip
    finally:
        warm_process.stop(root / "seeded" / "state")
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, object] = {}
    cpu: dict[str, float] = {}
    for name, (seconds, cpu_s, code) in found.items():
        argv, _ = cases[name]
        where = "warm" if name.startswith("warm_") else "seeded" if name.startswith("seeded_") else "empty"
        print(f"coderemote-pipeline {' '.join(argv):<12} {where:<6} median {seconds:.3f} s wall, {cpu_s:.3f} s CPU "
              f"of {args.runs} runs, exit {code}")  # fmt: skip
        figures[name], cpu[name] = round(seconds, 3), round(cpu_s, 3)
    print(f"coderemote-pipeline deploy dev main: first line after {deploy_first_line_s:.3f} s (median)")
    figures["deploy_first_line_s"] = round(deploy_first_line_s, 3)
    figures |= {"cpu": cpu, "runs": args.runs, "deploys": args.deploys}
    figures["help_goal_met"] = figures["help_s"] <= HELP_GOAL_S
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
