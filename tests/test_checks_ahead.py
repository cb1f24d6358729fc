"""Checks started ahead beside the image build are collected by their own run's step, with the same verdict; what
could not run ahead is left for the step. (The real stack's deploys collect them too: test_app_checks_local.py.)"""

import subprocess
import sys
import threading
from pathlib import Path

from coderemote_pipeline.actions import checks_ahead
from coderemote_pipeline.actions.app_checks import CheckRun
from coderemote_pipeline.local_stack.processes import wait_gone
from coderemote_pipeline.rules.app_layout import CheckSpec

LINT = CheckSpec(name="lint", side="frontend", command="node tools/lint.mjs")
TYPES = CheckSpec(name="types", side="frontend", command="node tools/types.mjs")


def _export(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "app.js").write_text("export const ok = true;\n")
    return dest


def _verdict(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
    passed = spec.name != "types"
    detail = f"check {spec.name} {'passed' if passed else 'exited 2'}"
    return CheckRun(spec.name, key, passed, 0 if passed else 2, 0.01, (tree / "app.js").read_text(), detail)


def test_a_run_collects_its_own_checks_with_their_verdicts(tmp_path: Path):
    gate = threading.Event()

    def slow(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
        gate.wait(5)
        return _verdict(tree, spec, key)

    checks_ahead.start("run-a", [(LINT, "k-lint"), (TYPES, "k-types")], _export, slow, tmp_path)
    assert checks_ahead.collect("run-b", "k-lint") is None  # another run's results are not this run's
    threading.Timer(0.2, gate.set).start()
    lint = checks_ahead.collect("run-a", "k-lint")  # waits for the check still running
    types = checks_ahead.collect("run-a", "k-types")
    assert lint.passed and lint.ahead and lint.waited_s > 0 and "beside the image build" in lint.detail
    assert lint.output_tail == "export const ok = true;\n"  # it ran over the exported tree
    assert not types.passed and types.exit_code == 2 and types.metadata()["ran_ahead"] is True
    assert checks_ahead.collect("run-a", "k-lint") is None  # collected once


def test_checks_started_together_run_at_once_and_take_the_key_known_later(tmp_path: Path):
    """The backend's: each in a container of its own, started once the image is built; the step knows their key
    with the image's digest in it, after the push."""
    both = threading.Barrier(2, timeout=5)  # neither finishes before the other has started

    def at_once(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
        both.wait()
        return _verdict(tree, spec, key)

    checks_ahead.start("run-t", [(LINT, "tree-lint"), (TYPES, "tree-types")], _export, at_once, tmp_path,
                       together=True)  # fmt: skip
    lint = checks_ahead.collect("run-t", "tree-lint", beside="the image push", known_as="tree+digest-lint")
    types = checks_ahead.collect("run-t", "tree-types", beside="the image push", known_as="tree+digest-types")
    assert lint.passed and lint.side_by_side and lint.key == "tree+digest-lint"
    assert "(beside the image push; waited" in lint.detail
    assert not types.passed and types.key == "tree+digest-types" and types.side_by_side


def test_what_could_not_run_ahead_is_left_for_the_step(tmp_path: Path):
    def no_tree(dest: Path) -> Path:
        raise OSError("the mirror lost the commit")

    def broken(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
        raise RuntimeError("runner crashed")

    checks_ahead.start("run-c", [(LINT, "k1")], no_tree, _verdict, tmp_path)
    checks_ahead.start("run-d", [(LINT, "k2")], _export, broken, tmp_path)
    assert checks_ahead.collect("run-c", "k1") is None
    assert checks_ahead.collect("run-d", "k2") is None


def test_a_check_is_started_once_per_run(tmp_path: Path):
    calls: list[str] = []

    def counted(tree: Path, spec: CheckSpec, key: str) -> CheckRun:
        calls.append(key)
        return _verdict(tree, spec, key)

    checks_ahead.start("run-e", [(LINT, "k-once")], _export, counted, tmp_path)
    checks_ahead.start("run-e", [(LINT, "k-once")], _export, counted, tmp_path)  # a retried api_image step
    assert checks_ahead.collect("run-e", "k-once").passed
    assert calls == ["k-once"]


# A run that fails before collecting its checks: the process exits with a check still running ahead.
_EXITS_WITH_A_CHECK_RUNNING = """
import sys, time
from pathlib import Path
from coderemote_pipeline.actions import app_checks, checks_ahead
from coderemote_pipeline.rules.app_layout import CheckSpec

marks = Path(sys.argv[1])
spec = CheckSpec(name="slow", side="frontend", command="sh -c 'sleep 60 & echo $! > pid; echo $PWD > tree; wait'")

def export(dest):
    dest.mkdir(parents=True)
    (dest / "pid").write_text("")
    return dest

def runner(tree, spec, key):
    (marks / "tree").write_text(str(tree))
    return app_checks.run_on_host(tree, spec, key)

checks_ahead.start("run-failed", [(spec, "k-slow")], export, runner, marks / "scratch")
while not (marks / "tree").exists() or not (Path((marks / "tree").read_text()) / "tree").exists():
    time.sleep(0.05)
(marks / "pid").write_text((Path((marks / "tree").read_text()) / "pid").read_text())
"""


def test_a_process_that_exits_ends_its_checks_and_removes_their_tree(tmp_path: Path):
    subprocess.run([sys.executable, "-c", _EXITS_WITH_A_CHECK_RUNNING, str(tmp_path)], check=True, timeout=60)
    sleeper = int((tmp_path / "pid").read_text())
    assert wait_gone(sleeper, 5.0), "the check's grandchild outlived the process that started it"
    assert not Path((tmp_path / "tree").read_text()).exists(), "the exported tree was left behind"
