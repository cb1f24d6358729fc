"""Checks started ahead, in this process, for a later step of the same run to collect.

In one process (redeploy_job) the frontend's checks need nothing the image build makes: api_image starts them
beside the image build, as it starts the frontend build (resources/app_source.py), and frontend_checks collects
their results, waiting for any still running. The backend's checks run in the built image: api_image starts them
once it is built, beside its push, and backend_checks collects them. They ran in the step's stead, with the same
runner and the same time limit (the backend's keyed by their image's digest once the push knows it), so a check
that fails ahead fails its step exactly as if it had run there. A check that could not be started ahead (its tree
would not export) is left for the step to run itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from coderemote_pipeline.actions.app_checks import CheckRun
from coderemote_pipeline.actions.scratch import scratch_dir
from coderemote_pipeline.rules.app_layout import CheckSpec

Runner = Callable[[Path, CheckSpec, str], CheckRun]

# By (run id, check key): a result belongs to the run that started it, never to a later run of the same tree.
_STARTED: dict[tuple[str, str], Future[CheckRun]] = {}
_LOCK = threading.Lock()


def start(run_id: str, checks: Sequence[tuple[CheckSpec, str]], export: Callable[[Path], Path], runner: Runner,
          scratch: Path, *, together: bool = False) -> None:
    """Run each (spec, key) over one exported tree, one after another (or, `together`, each in a thread of its own:
    a runner that gives each check its own container), in daemon threads: a run that fails before it collects them
    does not wait for them to end."""
    with _LOCK:
        for started in [k for k, f in _STARTED.items() if k[0] != run_id and f.done()]:
            del _STARTED[started]  # left by a run that ended before collecting them
        todo = [(spec, key) for spec, key in checks if (run_id, key) not in _STARTED]
        futures = {key: Future() for _, key in todo}
        _STARTED.update({(run_id, key): future for key, future in futures.items()})
    if todo:
        threading.Thread(target=_run, args=(todo, futures, export, runner, scratch, together),
                         name=f"checks-{run_id[:8]}", daemon=True).start()  # fmt: skip


def _run(todo: list[tuple[CheckSpec, str]], futures: dict[str, Future], export, runner: Runner, scratch: Path,
         together: bool) -> None:  # fmt: skip
    def one(tree: Path, spec: CheckSpec, key: str) -> None:
        try:
            futures[key].set_result(replace(runner(tree, spec, key), side_by_side=together))
        except Exception as exc:  # handed to the step, which runs the check itself
            futures[key].set_exception(exc)

    try:
        with scratch_dir(scratch, "checks-ahead") as tmp:
            tree = export(tmp / "tree")
            if not together:
                for spec, key in todo:
                    one(tree, spec, key)
                return
            threads = [threading.Thread(target=one, args=(tree, spec, key), daemon=True) for spec, key in todo]
            for thread in threads:
                thread.start()
            for thread in threads:  # the tree stays until every check is done with it
                thread.join()
    except Exception as exc:
        for future in futures.values():
            if not future.done():
                future.set_exception(exc)


def collect(run_id: str, key: str, *, beside: str = "the image build", known_as: str = "") -> CheckRun | None:
    """The result of the check this run started ahead with `key`, once it has one; None when none was started or
    it could not run. `known_as`: the check's key now that what it ran on is known by more (the image's digest)."""
    with _LOCK:
        future = _STARTED.pop((run_id, key), None)
    if future is None:
        return None
    waiting = time.monotonic()
    try:
        run = future.result()
    except Exception:
        return None
    waited = time.monotonic() - waiting
    detail = f"{run.detail} (beside {beside}; waited {waited:.2f} s for it)"
    return replace(run, key=known_as or run.key, ahead=True, waited_s=round(waited, 3), detail=detail)
