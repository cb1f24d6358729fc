"""Wall seconds of a rollback next to a full deploy of the same app, in one run, on the real local stack.

Deploys v1.0.0 then v1.1.0 to prod (approved), rolls back to v1.0.0 and forward to v1.1.0. Runs in its own
temporary state dir and stops its stack at the end. Last line: one JSON object with `rollback_s`, `full_deploy_s`.
Goals (measured, not asserted): rollback <= 5 s and <= 20% of a full deploy on this machine, and its
wall <= 1.5 x its floor (`rollback_overhead_ratio`: the stages' own work along the graph's longest path).
Usage: .venv/bin/python bench/rollback.py
"""

import json
import shutil
import time
from pathlib import Path

from kit import bench_settings, beside_floor, checked, critical_path_s, quiet, tag_and_approve

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from coderemote_pipeline.usecases.launch import DeployOutcome
from coderemote_pipeline.usecases.rollback import rollback


def tag_and_deploy(settings: Settings, instance, clone: Path, tag: str) -> DeployOutcome:
    """Verify the commit in dev (prod's promotion gate asks for it), tag, approve, deploy to prod.
    Returns the dev deploy: the full pipeline, builds included, which is what a rollback is compared with."""
    full = checked(run_deployment("dev", "main", settings=settings, instance=instance, echo=quiet))
    tag_and_approve(settings, instance, clone, tag)
    checked(run_deployment("prod", tag, settings=settings, instance=instance, echo=quiet))
    return full


def roll(settings: Settings, instance, to: str | None) -> DeployOutcome:
    return checked(rollback("prod", to, settings=settings, instance=instance, echo=quiet))


def main() -> None:
    root, settings = bench_settings("coderemote-bench-rollback-")
    stack = LocalStack(settings.state_dir)
    stack.up()
    try:
        clone = root / "clone"
        make_app_repo(EXAMPLE_APP, root / "app.git", clone)
        instance = open_instance(settings.state_dir)
        tag_and_deploy(settings, instance, clone, "v0.9.0")  # provisions prod: not part of either figure
        (clone / "backend" / "app" / "VERSION").write_text("1.0\n")
        commit_and_push(clone, "1.0")
        full = tag_and_deploy(settings, instance, clone, "v1.0.0")
        (clone / "backend" / "app" / "VERSION").write_text("1.1\n")
        (clone / "frontend" / "src" / "style.css").write_text("/* 1.1 */ body { margin: 0; }\n")
        commit_and_push(clone, "1.1")
        tag_and_deploy(settings, instance, clone, "v1.1.0")
        started = time.monotonic()
        back = roll(settings, instance, "v1.0.0")
        rollback_s = time.monotonic() - started
        started = time.monotonic()
        roll(settings, instance, "v1.1.0")
        forward_s = time.monotonic() - started
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)  # the bench's state dir, registry storage and clone
    layout = settings.app_layout
    floor = critical_path_s(back, layout)
    print(f"{'what':<34} {'seconds':>8}  beside its floor (the stages' own work)")
    full_label = f"full deploy of v1.0.0 to dev ({full.job_name})"
    print(f"{full_label:<34} {full.seconds:>8.2f}  {beside_floor(full, layout)}")
    ratio = rollback_s / max(floor, 1e-9)
    print(f"{'rollback v1.1.0 → v1.0.0':<34} {rollback_s:>8.2f}  floor {floor:.2f} s, x{ratio:.2f}")
    print(f"{'roll forward v1.0.0 → v1.1.0':<34} {forward_s:>8.2f}")
    print(f"rollback / full deploy: {rollback_s / full.seconds:.0%}")
    for stage, meta in back.stages.items():
        print(f"  {stage:<30} {float(meta.get('total_s', meta.get('seconds', 0.0))):>8.2f}")
    print(json.dumps({"rollback_s": round(rollback_s, 2), "full_deploy_s": round(full.seconds, 2),
                      "roll_forward_s": round(forward_s, 2), "rollback_critical_path_s": round(floor, 2),
                      "rollback_overhead_ratio": round(rollback_s / max(floor, 1e-9), 2)}))  # fmt: skip


if __name__ == "__main__":  # multiprocess step workers re-import this module
    main()
