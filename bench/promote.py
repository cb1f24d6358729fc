"""Wall seconds of a full dev deploy of a new commit and of the prod deploy of that same commit once approved.

Runs in its own temporary state dir and stops its stack at the end. Last line: one JSON object with
`full_deploy_s`, `promote_s`, `builds_in_promote`. Goal (measured, not asserted): promote_s <= 50% of
full_deploy_s, with 0 builds. Usage: .venv/bin/python bench/promote.py
"""

import json
import shutil
import time

import docker
from kit import bench_settings, checked, quiet, tag_and_approve

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment


def main() -> None:
    root, settings = bench_settings("coderemote-bench-promote-")
    stack = LocalStack(settings.state_dir)
    info = stack.up()
    try:
        engine = docker.DockerClient(base_url=info.docker_host)

        def builds() -> int:
            return len(engine.images.list(filters={"label": "coderemote.build-key"}))

        clone = root / "clone"
        make_app_repo(EXAMPLE_APP, root / "app.git", clone)
        instance = open_instance(settings.state_dir)
        # Provision both environments first (infra is not what either figure measures).
        checked(run_deployment("dev", "main", settings=settings, instance=instance, echo=quiet))
        tag_and_approve(settings, instance, clone, "v0.1.0")
        checked(run_deployment("prod", "v0.1.0", settings=settings, instance=instance, echo=quiet))

        (clone / "backend" / "app" / "BENCH").write_text(f"{time.time()}\n")
        (clone / "frontend" / "src" / "style.css").write_text(f"/* {time.time()} */ body {{ margin: 0; }}\n")
        commit_and_push(clone, "new commit for the promote bench")
        full = checked(run_deployment("dev", "main", settings=settings, instance=instance, echo=quiet))
        tag_and_approve(settings, instance, clone, "v0.2.0")
        before = builds()
        promote = checked(run_deployment("prod", "v0.2.0", settings=settings, instance=instance, echo=quiet))
        builds_in_promote = builds() - before
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)  # the bench's state dir, registry storage and clone
    print(f"{'what':<40} {'job':<13} {'seconds':>8}")
    print(f"{'full dev deploy of a new commit':<40} {full.job_name:<13} {full.seconds:>8.2f}")
    print(f"{'prod deploy of that commit (approved)':<40} {promote.job_name:<13} {promote.seconds:>8.2f}")
    print(f"promote / full: {promote.seconds / full.seconds:.0%}, builds during the prod deploy: {builds_in_promote}")
    image, bundle = promote.stages["api_image"], promote.stages["frontend_bundle"]
    print(f"api_image: {image['outcome']}; frontend_bundle: {bundle['outcome']}")
    print(json.dumps({"full_deploy_s": round(full.seconds, 2), "promote_s": round(promote.seconds, 2),
                      "builds_in_promote": builds_in_promote}))  # fmt: skip


if __name__ == "__main__":  # multiprocess step workers re-import this module
    main()
