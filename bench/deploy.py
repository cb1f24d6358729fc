"""Wall seconds of dev deploys of the example app and of the realistic app, each beside its floor (the critical path
of its stages' own work) and beside the hand-written peer (../shared/peers/hand_deploy.py), on one real local stack.

Per app: a warm-up deploy, then new commits through `serial` (redeploy_job, one branch after the other, nothing
started ahead), `parallel` (deploy_job, a process per step) and `auto` (which job it chose: redeploy_job, the
frontend's build and checks beside the image build), a no-op re-deploy, and side by side, alternating new commits,
the peer and the whole `coderemote-pipeline deploy dev main` (handed to the warm process `local up` keeps, and in a
process of its own).
Each figure is the best of its app's rounds (the order of the jobs reversed every other round): other work on the
machine only ever adds seconds.
`sequential_work_s` is the sum of every stage's own work: what a run doing one thing at a time would cost.
`overlap_gain` is what running the branches side by side saves against one after the other (1 - auto / serial),
`parallel_gain` the same for a process per step (1 - parallel / serial).
Prints a table, then one JSON object on the last line. Goals (measured, not asserted): example app overhead_ratio
<= 1.3 and cli_deploy_s - peer_s <= 1.5 s; realistic app overhead_ratio <= 1.15, branches side by side >= 25%
faster than one after the other, cli_deploy_s <= 0.8 x peer_s.
Usage: .venv/bin/python bench/deploy.py [--app example|realistic|both] [--rounds N] [--realistic-rounds N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from kit import beside_floor, critical_path_s

from coderemote_pipeline.cli import warm_process
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.rules.names import STAGES as STAGE_ORDER
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.rules.stage_seconds import own_seconds
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.launch import DeployOutcome
from testkit.realistic_app import PEER_ENV, make_realistic_repo

# The sub-steps of a stage printed beside it, to read against hand_deploy.py's steps (its build, its push).
SUB_STEPS = ("resolve_s", "promote_s", "build_s", "push_s", "upload_s", "build_waited_s", "build_ahead_s")
PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "hand_deploy.py"
BIN = Path(sys.executable).parent


def deploy(settings: Settings, instance, executor: str) -> DeployOutcome:
    outcome = run_deployment("dev", "main", settings=settings, instance=instance, executor=executor,
                             echo=lambda _: None)  # fmt: skip
    if not outcome.success:
        sys.exit(f"deploy failed: {outcome.failure}")
    return outcome


def change(clone: Path, why: str) -> None:
    """A new commit touching both sides, so both build."""
    (clone / "backend" / "app" / "bench.txt").write_text(f"{why} {time.time()}\n")
    (clone / "frontend" / "src" / "style.css").write_text(f"/* {why} {time.time()} */\nbody{{}}\n")
    commit_and_push(clone, why)


def peer_state(settings: Settings, root: Path) -> Path:
    """A state dir for the peer: the stack's own stack.json, but the env's API port free. The pipeline's port is
    haproxy's (the split between versions); the peer runs its one container beside it, as it would on its own."""
    info = json.loads((settings.state_dir / "local" / "stack.json").read_text())
    info["api_ports"] = {**info["api_ports"], "dev": free_port(exclude=list(info["api_ports"].values()))}
    (root / "peer" / "local").mkdir(parents=True, exist_ok=True)
    (root / "peer" / "local" / "stack.json").write_text(json.dumps(info))
    return root / "peer"


def side_by_side(settings: Settings, root: Path, clone: Path, rounds: int, peer_env: dict) -> dict:
    """The hand-written script (`peer`) and a whole `coderemote-pipeline deploy dev main`, handed to the warm
    process `local up` keeps (`cli`) and in a process of its own (`cli_cold`, CODEREMOTE_WARM=0), each on new
    commits, alternating; the best of `rounds` each, and the peer's own marks (seconds since it started) of its
    best round, to read where its time goes beside the pipeline's stages."""
    state = peer_state(settings, root)
    warm_process.ensure(settings.state_dir, wait=True)
    env = {**os.environ, **peer_env, "CODEREMOTE_STATE_DIR": str(settings.state_dir),
           "CODEREMOTE_APP_REMOTE": settings.app_remote}  # fmt: skip
    env.pop("DAGSTER_HOME", None)
    env.pop("CODEREMOTE_APP_CONFIG", None)
    if settings.app_config is not None:
        env["CODEREMOTE_APP_CONFIG"] = str(settings.app_config)
    # Each run as (seconds, the peer's marks); the CLI's runs have no marks of their own.
    found: dict[str, list[tuple[float, dict]]] = {"peer": [], "cli": [], "cli_cold": []}
    for n in range(rounds):
        for who in found:
            change(clone, f"side by side {who} {n}")
            argv = ([sys.executable, str(PEER), str(state), settings.app_remote, "main"] if who == "peer"
                    else [str(BIN / "coderemote-pipeline"), "deploy", "dev", "main"])  # fmt: skip
            started = time.monotonic()
            done = subprocess.run(argv, env={**env, "CODEREMOTE_WARM": "0" if who == "cli_cold" else "1"},
                                  capture_output=True, text=True, timeout=900)  # fmt: skip
            seconds = time.monotonic() - started
            if done.returncode != 0:
                sys.exit(f"{who} deploy failed: {(done.stdout + done.stderr)[-600:]}")
            said = json.loads(done.stdout.strip().splitlines()[-1]) if who == "peer" else {}
            found[who].append((said["peer_s"], said.get("marks", {})) if who == "peer" else (seconds, {}))
    best = {who: min(runs, key=lambda run: run[0]) for who, runs in found.items()}
    return {**{who: seconds for who, (seconds, _) in best.items()}, "peer_marks": best["peer"][1]}


def measure(name: str, settings: Settings, instance, root: Path, clone: Path, rounds: int, peer_env: dict) -> dict:
    deploy(settings, instance, "auto")  # warm-up: the first deploy of an app builds everything, caches nothing
    tried: dict[str, list[DeployOutcome]] = {"serial": [], "parallel": [], "auto": []}
    for n in range(rounds):
        for executor in list(tried)[:: 1 if n % 2 == 0 else -1]:
            change(clone, f"bench {name} {executor} {n}")
            tried[executor].append(deploy(settings, instance, executor))
    runs = {executor: min(outcomes, key=lambda o: o.seconds) for executor, outcomes in tried.items()}
    noop = deploy(settings, instance, "auto")
    sides = side_by_side(settings, root, clone, rounds, peer_env) if PEER.exists() else {}
    peer_s, cli_s, cold_s = sides.get("peer"), sides.get("cli"), sides.get("cli_cold")
    layout = settings.app_layout
    auto = runs["auto"]
    auto_jobs = sorted({o.job_name for o in tried["auto"]})
    floor = critical_path_s(auto, layout)
    print(f"\n{name} app, best of {rounds} ({'; '.join(f'{k}: {v.job_name}' for k, v in runs.items())})")
    for executor, outcome in runs.items():
        others = ", ".join(f"{o.seconds:.2f}" for o in tried[executor] if o is not outcome)
        print(f"  {executor:<9} {outcome.job_name:<13} {beside_floor(outcome, layout)}"
              + (f"  (other rounds: {others} s)" if others else ""))  # fmt: skip
    print(f"  {'no-op':<9} {noop.job_name:<13} {beside_floor(noop, layout)}")
    if peer_s is not None:
        print(f"  side by side, new commits: hand_deploy.py {peer_s:.2f} s, `coderemote-pipeline deploy dev main` "
              f"{cli_s:.2f} s (the whole command, warm process; {cold_s:.2f} s in its own process)")  # fmt: skip
        # The peer marks seconds since it started; each step's own time is the gap from the mark before it.
        steps, previous = [], 0.0
        for step, at in sides["peer_marks"].items():
            steps.append(f"{step} {at - previous:.2f}")
            previous = at
        print(f"  hand_deploy.py's steps, one after another: {', '.join(steps)}")
    print(f"  {'stage (auto)':<28} {'wall':>7} {'own work':>9}")
    for stage, meta in auto.stages.items():
        if stage in STAGE_ORDER or stage.startswith("check:"):
            wall = float(meta.get("total_s", meta.get("seconds", 0.0)) or 0.0)
            parts = ", ".join(f"{key.removesuffix('_s')} {float(value):.2f}" for key, value in meta.items()
                              if key in SUB_STEPS and isinstance(value, int | float))  # fmt: skip
            print(f"  {stage:<28} {wall:>7.2f} {own_seconds(meta):>9.2f}" + (f"  ({parts})" if parts else ""))
    # Which way the fastest run of all went: `auto` when auto chose the faster way (its runs are as much a sample of
    # its way as the others are of theirs).
    fastest_way = min(((way, o) for way, outcomes in tried.items() for o in outcomes), key=lambda w: w[1].seconds)[0]
    return {
        "full_deploy_s": round(auto.seconds, 2),
        "serial_s": round(runs["serial"].seconds, 2),
        "parallel_s": round(runs["parallel"].seconds, 2),
        "sequential_work_s": round(sum(own_seconds(m) for m in auto.stages.values()), 2),
        "critical_path_s": round(floor, 2),
        "overhead_ratio": round(auto.seconds / max(floor, 1e-9), 2),
        "auto_job": "|".join(auto_jobs),  # one name unless auto changed its mind between rounds
        "fastest_way": fastest_way,
        "overlap_gain": round(1 - auto.seconds / runs["serial"].seconds, 2),
        "parallel_gain": round(1 - runs["parallel"].seconds / runs["serial"].seconds, 2),
        "noop_s": round(noop.seconds, 2),
        "peer_s": peer_s,
        "cli_deploy_s": round(cli_s, 2) if cli_s is not None else None,
        "cli_cold_deploy_s": round(cold_s, 2) if cold_s is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", choices=("example", "realistic", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the example app (best of)")
    parser.add_argument("--realistic-rounds", type=int, default=1, help="rounds of the realistic app (best of)")
    args = parser.parse_args()
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"coderemote-bench-{os.getpid()}"
    root.mkdir(parents=True)
    example = Settings("local", root / "state", str(root / "example.git"), None)
    stack = LocalStack(example.state_dir)
    started = time.monotonic()
    stack.up()
    stack_up_s = time.monotonic() - started
    figures: dict = {"stack_up_s": round(stack_up_s, 2)}
    try:
        instance = open_instance(example.state_dir)
        if args.app in ("example", "both"):
            make_app_repo(EXAMPLE_APP, root / "example.git", root / "example")
            figures["example"] = measure("example", example, instance, root, root / "example", args.rounds, {})
        if args.app in ("realistic", "both"):
            started = time.monotonic()
            make_realistic_repo(root / "realistic.git", root / "realistic")
            figures["realistic_setup_s"] = round(time.monotonic() - started, 2)
            realistic = replace(example, app_remote=str(root / "realistic.git"),
                                app_config=root / "realistic" / "coderemote.yaml")  # fmt: skip
            figures["realistic"] = measure("realistic", realistic, instance, root, root / "realistic",
                                           args.realistic_rounds, PEER_ENV)  # fmt: skip
    finally:
        warm_process.stop(example.state_dir)
        stack.down()
        shutil.rmtree(root, ignore_errors=True)  # the bench's state dir, registry storage and clones
    # The example app's figures stay at the top level, as earlier benches printed them.
    print(json.dumps({**figures.pop("example", {}), **figures}))


if __name__ == "__main__":  # multiprocess step workers re-import this module
    main()
