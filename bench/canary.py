"""A canary on the real local stack: the share of requests the new version gets at 10 %, and how fast a release
that fails requests is taken back to weight 0.

Staging takes releases as `canary 10 %`, analysis every 5 s. A first release goes live; a clean one takes its canary
step while 1,000 requests go through the API URL (haproxy), counted by the release that answered; then a release
whose API fails every other request (its health check passes) takes the step under a steady load, and the figure is
the seconds from the first failed request a user saw to the moment the shift had set the new version's weight back
to 0. Runs in its own temporary state dir and stops its stack at the end.
Last line: one JSON object `{"observed_share": S, "abort_s": A, "interval_s": 5}`.
Goals (measured, not asserted): |S - 0.10| <= 0.03, A <= interval + 2 s.
Usage: .venv/bin/python bench/canary.py
"""

import json
import shutil
import time

from kit import bench_settings, checked, quiet

from coderemote_pipeline.ledger import shifts
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.live import env_outputs
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment
from testkit.traffic import HELLO, InThread, Load, get, policy_copy, release_of, wait_for_step

ENV = "staging"
INTERVAL_S = 5
ANALYSIS = {"max_error_rate": 0.05, "max_p99_ms": 2000, "min_requests": 5, "every": f"{INTERVAL_S}s"}


def failing_half(api_py: str) -> str:
    hello = 'HELLO_PATH = "/api/hello"\n'
    return api_py.replace(hello, hello + "_FAILS = iter(range(10**9))\n").replace(
        "    elif path == HELLO_PATH:\n",
        '    elif path == HELLO_PATH and not os.environ.get("CI") and next(_FAILS) % 2:\n'
        '        return _json(500, {"error": "injected"})\n'
        "    elif path == HELLO_PATH:\n",
    )


def main() -> None:
    root, base = bench_settings("coderemote-bench-canary-")
    infra = policy_copy(DEFAULT_INFRA_DIR, root / "infra", ENV,
                        {"strategy": "canary", "percent": 10, "interval": "20s", "analysis": ANALYSIS})  # fmt: skip
    settings = Settings("local", base.state_dir, base.app_remote, None, infra_dir=infra)
    stack = LocalStack(settings.state_dir)
    stack.up()
    try:
        clone = root / "clone"
        make_app_repo(EXAMPLE_APP, root / "app.git", clone)
        instance = open_instance(settings.state_dir)
        checked(run_deployment(ENV, "main", settings=settings, instance=instance, echo=quiet))
        api = env_outputs(instance, ENV)["api_url"] + HELLO

        (clone / "backend" / "app" / "VERSION").write_text("clean\n")
        commit_and_push(clone, "a clean release")
        started = time.time()
        run = InThread(lambda: run_deployment(ENV, "main", settings=settings, instance=instance, echo=quiet))
        wait_for_step(instance, ENV, 10, since=started)
        answers = [release_of(get(api)[1]) for _ in range(1000)]
        new = checked(run.result()).release
        share = answers.count(new) / len(answers)

        api_py = clone / "backend" / "app" / "api.py"
        api_py.write_text(failing_half(api_py.read_text()))
        commit_and_push(clone, "a release that fails every other request")
        with Load(api, rate=40) as load:
            failed = run_deployment(ENV, "main", settings=settings, instance=instance, echo=quiet)
        state = shifts.read_state(instance, ENV)
        if failed.success or load.first_error_at is None or state is None or state.phase != "rolled_back":
            raise SystemExit(f"the failing release was not rolled back: {failed.failure or state}")
        abort_s = state.updated - load.first_error_at
        print(f"canary at 10%: {answers.count(new)} of {len(answers)} requests answered by {new} ({share:.1%})")
        print(f"failing release: back to weight 0 {abort_s:.2f} s after the first 5xx a user saw "
              f"({load.statuses[500]} failed of {load.requests} requests)")  # fmt: skip
        print(f"  the run said: {failed.failure[:200]}")
        print(json.dumps({"observed_share": round(share, 4), "abort_s": round(abort_s, 2), "interval_s": INTERVAL_S}))
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
