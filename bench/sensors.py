"""Git sensor timings: seconds from a push to the launched run, and the cost of a tick against short and long histories.

1. Tick cost: bare remotes with 10 and with 10,000 commits on main (made with `git fast-import`), a warm mirror (as
   after any deploy); `main_push_sensor` ticks evaluated in-process as the daemon does, each after one new push
   (ls-remote, incremental fetch of main, log of the new commits), plus idle ticks (ls-remote only). Goal: the same
   within noise whatever the history.
2. Push → launch: the real `dagster-daemon` at a 5 s interval on a temporary DAGSTER_HOME; the time from
   `git push` returning to the dev run's record being created, over a few pushes (each after the previous run
   ended, at a random moment of the tick cycle). No local stack is started, so the launched runs fail at their
   first stage: what is measured is the launch.
Prints a table, then one JSON object on the last line: {"push_to_launch_s", "tick_s_10_commits",
"tick_s_10000_commits", ...}.
Usage: .venv/bin/python bench/sensors.py
"""

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from coderemote_pipeline.definitions import build_defs
from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.environments import Environments
from coderemote_pipeline.rules.settings import PROJECT_ROOT, Settings
from coderemote_pipeline.sensors.main_push import IN_PROGRESS
from coderemote_pipeline.usecases.demo import git

PUSHES = 10
LAUNCH_SAMPLES = 5
DAEMON_INTERVAL_S = 5


def make_remote(root: Path, commits: int) -> tuple[Path, Path]:
    """A bare remote whose main has `commits` commits (each changing one file), and a clone to push from."""
    remote, clone = root / f"app-{commits}.git", root / f"clone-{commits}"
    subprocess.run(["git", "init", "--bare", "--quiet", "-b", "main", str(remote)], check=True)
    stream = []
    for i in range(commits):
        data = f"change {i}\n"
        message = f"commit {i}\n"
        stream.append(
            f"commit refs/heads/main\nmark :{i + 1}\ncommitter Bench <bench@invalid> {1_700_000_000 + i} +0000\n"
            f"data {len(message)}\n{message}" + (f"from :{i}\n" if i else "") + f"M 644 inline history.txt\n"
            f"data {len(data)}\n{data}\n"
        )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=remote, input="".join(stream).encode(), check=True)
    subprocess.run(["git", "clone", "--quiet", str(remote), str(clone)], check=True, capture_output=True)
    return remote, clone


def tick_seconds(settings: Settings, instance: dg.DagsterInstance, sensor: str, cursor: str | None):
    defs = build_defs(settings)
    resources = {"app_source": AppSource(**settings.app_source_fields()),
                 "environments": Environments(infra_dir=str(settings.infra_dir))}  # fmt: skip
    sensor_def = defs.resolve_sensor_def(sensor)  # done once when the code location loads, not per tick
    started = time.perf_counter()
    with dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
        sensor_name=sensor, resources=resources,
    ) as context:  # fmt: skip
        data = sensor_def.evaluate_tick(context)
    return time.perf_counter() - started, data


class History:
    """One remote of a given history length, its settings (warm mirror) and the main sensor's cursor."""

    def __init__(self, root: Path, commits: int, instance: dg.DagsterInstance):
        self.remote, self.clone = make_remote(root, commits)
        self.settings = Settings("local", root / f"state-{commits}", str(self.remote), None)
        AppSource(**self.settings.app_source_fields()).remote().sync()  # a warm mirror, as after any deploy
        self.instance = instance
        self.cursor = tick_seconds(self.settings, instance, "main_push_sensor", None)[1].cursor
        self.push_ticks: list[float] = []
        self.idle_ticks: list[float] = []

    def sample(self, i: int) -> None:
        git("commit", "--quiet", "--allow-empty", "-m", f"bench push {i}", cwd=self.clone)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
        seconds, data = tick_seconds(self.settings, self.instance, "main_push_sensor", self.cursor)
        assert len(data.run_requests) == 1, data.skip_message
        self.push_ticks.append(seconds)
        self.cursor = data.cursor
        self.idle_ticks.append(tick_seconds(self.settings, self.instance, "main_push_sensor", self.cursor)[0])


def tick_costs(root: Path) -> dict[int, dict[str, float]]:
    with dg.instance_for_test() as instance:
        histories = {n: History(root, n, instance) for n in (10, 10_000)}
        for i in range(PUSHES):  # interleaved, so drift on the machine weighs on both alike
            for history in histories.values():
                history.sample(i)
    return {
        n: {"push": statistics.median(h.push_ticks), "idle": statistics.median(h.idle_ticks)}
        for n, h in histories.items()
    }


def push_to_launch(root: Path) -> list[float]:
    remote, clone = make_remote(root / "daemon", 3)
    home = root / "daemon" / "dagster_home"
    home.mkdir()
    prepare_home(home)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CODEREMOTE_STATE_DIR": str(root / "daemon" / "state"),
        "CODEREMOTE_APP_REMOTE": str(remote),
        "CODEREMOTE_SENSOR_INTERVAL_S": str(DAEMON_INTERVAL_S),
    }
    daemon_bin = Path(sys.executable).parent / "dagster-daemon"
    with open(root / "daemon" / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [str(daemon_bin), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    samples = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for_run(instance, git("rev-parse", "HEAD", cwd=clone), timeout=60)  # the first tick's deploy
            for i in range(LAUNCH_SAMPLES):
                # main_push_sensor waits while a dev deploy runs (one deploy per env at a time): let it end first,
                # so what is measured is the sensor's latency, not the previous run's duration.
                wait_until_finished(instance, timeout=120)
                # Push at a random moment of the tick cycle, as a developer would: not right after a tick.
                time.sleep(random.uniform(0, DAEMON_INTERVAL_S))
                git("commit", "--quiet", "--allow-empty", "-m", f"launch sample {i}", cwd=clone)
                git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
                pushed = time.time()
                created = wait_for_run(instance, git("rev-parse", "HEAD", cwd=clone), timeout=60)
                samples.append(created - pushed)
    finally:
        os.killpg(os.getpgid(daemon.pid), signal.SIGTERM)
        daemon.wait(timeout=30)
    return samples


def wait_for_run(instance: dg.DagsterInstance, commit: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(tags={"coderemote/commit": commit}), limit=1)
        if records:
            return records[0].create_timestamp.timestamp()
        time.sleep(0.05)
    sys.exit(f"no run launched for commit {commit[:12]} within {timeout:.0f}s")


def wait_until_finished(instance: dg.DagsterInstance, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=1):
        if time.monotonic() > deadline:
            sys.exit(f"a run was still in progress after {timeout:.0f}s")
        time.sleep(0.2)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="coderemote-bench-sensors-"))
    try:
        costs = tick_costs(root)
        launches = push_to_launch(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'history':>10} {'tick after a push s':>20} {'idle tick s':>12}")
    for commits, cost in costs.items():
        print(f"{commits:>10} {cost['push']:>20.3f} {cost['idle']:>12.3f}")
    print(f"\npush → run launched at a {DAEMON_INTERVAL_S} s interval: " + ", ".join(f"{s:.2f}" for s in launches))
    print(
        json.dumps(
            {
                "push_to_launch_s": round(statistics.mean(launches), 2),
                "push_to_launch_samples_s": [round(s, 2) for s in launches],
                "tick_s_10_commits": round(costs[10]["push"], 3),
                "tick_s_10000_commits": round(costs[10_000]["push"], 3),
                "idle_tick_s_10_commits": round(costs[10]["idle"], 3),
                "idle_tick_s_10000_commits": round(costs[10_000]["idle"], 3),
                "interval_s": DAEMON_INTERVAL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
