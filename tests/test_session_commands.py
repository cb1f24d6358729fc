"""The app's commands run in a session of their own, ended whole at their limit. (Ended with the process that
started them: test_checks_ahead.py.)"""

import os
import time
from pathlib import Path

import pytest

from coderemote_pipeline.actions.session_commands import run_in_session
from coderemote_pipeline.local_stack.processes import wait_gone

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def test_a_command_at_its_limit_ends_with_everything_it_forked(tmp_path: Path):
    started = time.monotonic()
    done = run_in_session(["sh", "-c", "sleep 60 & echo $! > pid; wait"], cwd=tmp_path, env=ENV, timeout=1)
    assert done.timed_out and done.returncode != 0
    assert time.monotonic() - started < 30
    assert wait_gone(int((tmp_path / "pid").read_text()), 5.0)


def test_output_can_be_merged_and_a_missing_command_raises(tmp_path: Path):
    merged = run_in_session(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, env=ENV, timeout=30,
                            merge_stderr=True)  # fmt: skip
    assert (merged.returncode, merged.stdout, merged.stderr) == (3, "out\nerr\n", "")
    with pytest.raises(FileNotFoundError):
        run_in_session(["no-such-build-tool"], cwd=tmp_path, env=ENV, timeout=30)


