"""An environment's first deploys, started at the same moment from separate processes, create its one-slot pool
(the deploy lease) once: none of them fails for it, and the pool has exactly one slot."""

import subprocess
import sys
import time

from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import pool

RACER = """
import sys, time
from pathlib import Path
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
instance = open_instance(Path(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
for env in sys.argv[3:]:
    Lease(instance, env)._ensure_pool()
"""


def test_first_deploys_started_together_create_the_pool_once(tmp_path):
    state = tmp_path / "state"
    open_instance(state).dispose()  # the instance exists; its pools do not
    envs = [f"env{i}" for i in range(20)]
    start = time.time() + 5  # every racer has loaded its modules by then
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(state), str(start), *envs],
                               stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    for racer in racers:
        assert racer.wait(timeout=120) == 0, racer.stderr.read()[-3000:]
    with open_instance(state) as instance:
        for env in envs:
            assert instance.event_log_storage.get_concurrency_info(pool(env)).slot_count == 1
