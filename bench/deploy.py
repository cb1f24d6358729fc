"""Wall seconds of a full dev deploy and of a no-op re-deploy of the example app, on the real local stack.

Runs in its own temporary state dir (its own emulator, registry and Docker engine) and stops them at the end.
Prints a table, then one JSON object on the last line: {"full_deploy_s", "noop_s", "stages", ...}.
Goals (measured, not asserted): full dev deploy <= 30 s once the base image exists; no-op <= 5 s.
Usage: .venv/bin/python bench/deploy.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kit import beside_floor, critical_path_s

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.rules.names import STAGES as STAGE_ORDER
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.launch import DeployOutcome


def stage_seconds(outcome: DeployOutcome) -> dict[str, float]:
    return {
        stage: float(meta.get("total_s", meta.get("seconds", 0.0)))
        for stage, meta in outcome.stages.items()
        if stage in STAGE_ORDER
    }


def deploy(settings: Settings, instance, executor: str) -> DeployOutcome:
    outcome = run_deployment(
        "dev", "main", settings=settings, instance=instance, executor=executor, echo=lambda _: None
    )
    if not outcome.success:
        sys.exit(f"deploy failed: {outcome.failure}")
    return outcome


PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "hand_deploy.py"
BIN = Path(sys.executable).parent


def peer_state(settings: Settings, root: Path) -> Path:
    """A state dir for the peer: the stack's own stack.json, but the env's API port free. The pipeline's port is
    haproxy's (the split between versions); the peer runs its one container beside it, as it would on its own."""
    info = json.loads((settings.state_dir / "local" / "stack.json").read_text())
    info["api_ports"] = {**info["api_ports"], "dev": free_port(exclude=list(info["api_ports"].values()))}
    (root / "peer" / "local").mkdir(parents=True, exist_ok=True)
    (root / "peer" / "local" / "stack.json").write_text(json.dumps(info))
    return root / "peer"


def side_by_side(settings: Settings, root: Path, clone: Path, rounds: int = 2) -> tuple[float, float]:
    """(peer_s, cli_deploy_s): the hand-written script and a whole `coderemote-pipeline deploy dev main`, each on
    new commits, alternating; the best of `rounds` each."""
    state = peer_state(settings, root)
    env = {**os.environ, "CODEREMOTE_STATE_DIR": str(settings.state_dir), "CODEREMOTE_APP_REMOTE": settings.app_remote}
    env.pop("DAGSTER_HOME", None)
    peer, cli = [], []
    for n in range(rounds):
        for who in ("peer", "cli"):
            (clone / "backend" / "app" / "side.txt").write_text(f"{who} {n} {time.time()}\n")
            (clone / "frontend" / "src" / "style.css").write_text(f"/* {who} {n} {time.time()} */\nbody{{}}\n")
            commit_and_push(clone, f"side by side {who} {n}")
            argv = ([sys.executable, str(PEER), str(state), settings.app_remote, "main"] if who == "peer"
                    else [str(BIN / "coderemote-pipeline"), "deploy", "dev", "main"])  # fmt: skip
            started = time.monotonic()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
            seconds = time.monotonic() - started
            if done.returncode != 0:
                sys.exit(f"{who} deploy failed: {(done.stdout + done.stderr)[-600:]}")
            (peer if who == "peer" else cli).append(
                json.loads(done.stdout.strip().splitlines()[-1])["peer_s"] if who == "peer" else seconds
            )
    return min(peer), min(cli)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="coderemote-bench-"))
    settings = Settings("local", root / "state", str(root / "app.git"), None)
    stack = LocalStack(settings.state_dir)
    started = time.monotonic()
    stack.up()
    stack_up_s = time.monotonic() - started
    try:
        clone = root / "clone"
        make_app_repo(EXAMPLE_APP, root / "app.git", clone)
        instance = open_instance(settings.state_dir)
        # Warm-up: the first deploy of an environment also provisions its stack (bootstrap image, function, CDN).
        deploy(settings, instance, "auto")
        rows = []
        for executor in ("parallel", "serial"):
            (clone / "backend" / "app" / "bench.txt").write_text(f"{executor} {time.time()}\n")
            (clone / "frontend" / "src" / "style.css").write_text(f"/* {executor} {time.time()} */\nbody{{}}\n")
            commit_and_push(clone, f"bench {executor}")
            full = deploy(settings, instance, executor)
            noop = deploy(settings, instance, executor)
            rows.append((executor, full, noop))
        auto_noop = deploy(settings, instance, "auto")
        peer_s, cli_deploy_s = side_by_side(settings, root, clone) if PEER.exists() else (None, None)
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)  # the bench's state dir, registry storage and clone

    print(f"local stack up (fresh state dir, cached base image): {stack_up_s:.1f} s\n")
    layout = settings.app_layout
    print(f"{'executor':<10} {'job':<13} {'full deploy (its floor: the stages own work)':<46} {'no-op':<40}")
    for executor, full, noop in rows:
        print(f"{executor:<10} {full.job_name:<13} {beside_floor(full, layout):<46} {beside_floor(noop, layout):<40}")
    print(f"{'auto':<10} {auto_noop.job_name:<13} {'':<46} {beside_floor(auto_noop, layout):<40}\n")
    if peer_s is not None:
        print(f"side by side, new commits: hand_deploy.py {peer_s:.2f} s, `coderemote-pipeline deploy dev main` "
              f"{cli_deploy_s:.2f} s (the whole command)\n")  # fmt: skip
    parallel_full = rows[0][1]
    print(f"{'stage (parallel full deploy)':<30} {'seconds':>8}")
    for stage, seconds in stage_seconds(parallel_full).items():
        print(f"{stage:<30} {seconds:>8.2f}")
    best_full = min((full for _, full, _ in rows), key=lambda o: o.seconds)
    print(
        json.dumps(
            {
                "full_deploy_s": round(parallel_full.seconds, 2),
                "noop_s": round(auto_noop.seconds, 2),
                "stages": {k: round(v, 2) for k, v in stage_seconds(parallel_full).items()},
                "full_deploy_serial_s": round(rows[1][1].seconds, 2),
                "noop_parallel_s": round(rows[0][2].seconds, 2),
                "fastest_full_deploy_job": best_full.job_name,
                "critical_path_s": round(critical_path_s(best_full, layout), 2),
                "overhead_ratio": round(best_full.seconds / max(critical_path_s(best_full, layout), 1e-9), 2),
                "stack_up_s": round(stack_up_s, 2),
                "peer_s": peer_s,
                "cli_deploy_s": round(cli_deploy_s, 2) if cli_deploy_s is not None else None,
            }
        )
    )


if __name__ == "__main__":  # multiprocess step workers re-import this module
    main()
