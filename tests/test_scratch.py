"""A deploy's scratch dirs live under the state dir and never outlive the process that made them for long: one killed
outright leaves its own, and the next scratch dir made there removes it; a live process's and another host's stay."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from coderemote_pipeline.actions.scratch import make_scratch, scratch_dir

# Makes a scratch dir, writes into it, and is killed before it can remove it.
_KILLED_MID_BUILD = """
import os, signal, sys
from pathlib import Path
from coderemote_pipeline.actions.scratch import make_scratch
made = make_scratch(Path(sys.argv[1]), "build")
(made / "context.tar").write_bytes(b"x" * 4096)
print(made, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_deploys_scratch_goes_with_the_next_one_and_nothing_else_does(tmp_path: Path):
    root = tmp_path / "scratch"
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_BUILD, str(root)], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    left = Path(killed.stdout.strip())
    assert left.parent == root and (left / "context.tar").exists()
    mine = make_scratch(root, "checks")  # this process is alive: its dir stays while it works
    elsewhere = root / f"another-host@{os.getpid() + 1}-build-abc"  # pids of another host mean nothing here
    elsewhere.mkdir()
    with scratch_dir(root, "build") as current:
        assert current.is_dir() and current.name.startswith(f"{mine.name.split('@')[0]}@{os.getpid()}-build-")
        assert not left.exists()
        assert mine.exists() and elsewhere.exists()
    assert not current.exists()
