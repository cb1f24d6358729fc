"""20 deploy requests across dev, staging and prod submitted at once to the team deployment, on this machine.

The team profile (deploy/dagster.yaml) on a throwaway Postgres, a code server, the webserver (the requests go to its
GraphQL API, as the UI's and any client's do) and the daemon (the queue with one run per environment), against a
local stack of its own. Setup, not measured: a dev deploy of the app's main through the queue (prod requires the
commit verified in dev), then the commit tagged v1.0.0 and approved for prod. Measured: from the first of the 20
submissions to the end of the last run. Everything started here is stopped at the end, by PID.

Prints per-env runs and seconds, then one JSON object on the last line: {"drain_s", "max_in_progress_per_env",
...}; max_in_progress_per_env must be 1. Usage: .venv/bin/python bench/load.py
"""

import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.local_stack.processes import free_port
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, git, make_app_repo
from testkit import queue
from testkit import services as sv
from testkit.postgres import PostgresCluster

REQUESTS = {"dev": 7, "staging": 7, "prod": 6}
TIMEOUT_S = 1200


def wait(instance: dg.DagsterInstance, run_ids: list[str], daemon: sv.Service) -> list[queue.RunWindow]:
    sv.wait_for("the queue to drain", lambda: queue.all_finished(instance, run_ids), TIMEOUT_S, daemon)
    windows = queue.run_windows(instance, run_ids)
    failed = [w for w in windows if w.status is not dg.DagsterRunStatus.SUCCESS]
    if failed:
        sys.exit(f"{len(failed)} run(s) did not succeed, e.g. {failed[0].env} run {failed[0].run_id}")
    return windows


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="coderemote-bench-load-"))
    settings = Settings("local", root / "state", str(root / "app.git"), None)
    stack, pg = LocalStack(settings.state_dir), PostgresCluster()
    services: list[sv.Service] = []
    try:
        stack.up()
        pg.start()
        commit = make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
        home = sv.write_home(root / "home")
        env = {**os.environ, **pg.env(), "DAGSTER_HOME": str(home), "CODEREMOTE_STATE_DIR": str(settings.state_dir),
               "CODEREMOTE_APP_REMOTE": settings.app_remote}  # fmt: skip
        env.pop("CODEREMOTE_APP_CONFIG", None)
        os.environ.update(pg.env())  # this process's instance reads the same credentials
        code_port, web_port = free_port(), free_port()
        workspace = sv.write_workspace(root / "workspace.yaml", code_port)
        code = sv.code_server(code_port, env, root / "code-server.log").start()
        services.append(code)
        sv.wait_for("the code server", lambda: sv.port_answers(code_port), 120, code)
        web = sv.webserver(web_port, workspace, env, root / "webserver.log").start()
        services.append(web)
        sv.wait_for("the webserver", lambda: sv.location_loaded(web_port), 120, web)
        queue.stop_sensors(web_port)  # the 20 requests are the only runs
        daemon = sv.daemon(workspace, env, root / "daemon.log").start()
        services.append(daemon)
        instance = dg.DagsterInstance.from_config(str(home))
        gql = queue.client(web_port)

        main_release = f"main-{commit[:7]}"
        instance.add_dynamic_partitions("release", [main_release, "v1.0.0"])
        wait(instance, [queue.submit_deploy(gql, "dev", main_release, commit)], daemon)  # verified in dev
        git("tag", "v1.0.0", cwd=root / "clone")
        git("push", "--quiet", "origin", "v1.0.0", cwd=root / "clone")
        record_decision(settings, instance, "prod", parse_release_key("v1.0.0"), by="bench", decision="approve",
                        reason="bench/load.py")  # fmt: skip

        # Interleaved, as requests from many people arrive; the image and bundle exist, so each is a redeploy.
        plan = [env for group in itertools.zip_longest(*[[e] * n for e, n in REQUESTS.items()]) for env in group if env]
        release = {"dev": main_release, "staging": main_release, "prod": "v1.0.0"}
        started = time.time()
        run_ids = [queue.submit_deploy(gql, e, release[e], commit, job_name="redeploy_job", trigger="bench-load")
                   for e in plan]  # fmt: skip
        submit_s = time.time() - started
        windows = wait(instance, run_ids, daemon)
        drain_s = max(w.end or started for w in windows) - started
        peaks = queue.max_in_progress_per_env(windows)
    finally:
        for service in reversed(services):
            service.stop()
        pg.stop()
        stack.down()
        shutil.rmtree(root, ignore_errors=True)

    print(f"{len(run_ids)} requests submitted in {submit_s:.2f} s; queue drained in {drain_s:.1f} s\n")
    print(f"{'env':<8} {'runs':>4} {'mean run s':>10} {'max in progress':>15}")
    for env_name in REQUESTS:
        mine = [w for w in windows if w.env == env_name]
        mean = sum((w.end or 0) - (w.start or 0) for w in mine) / len(mine)
        print(f"{env_name:<8} {len(mine):>4} {mean:>10.1f} {peaks.get(env_name, 0):>15}")
    print(json.dumps({
        "drain_s": round(drain_s, 1),
        "max_in_progress_per_env": max(peaks.values()),
        "per_env": peaks,
        "requests": len(run_ids),
        "submit_s": round(submit_s, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
