"""What the tests and the bench of progressive delivery share: a policy of their own (short steps), a steady load
through an environment's API URL that tallies what answered, and a deploy run in a thread beside it."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from coderemote_pipeline.ledger import shifts

HELLO = "/api/hello"  # the example app's endpoint that is not its health check


def policy_copy(source: Path, dest: Path, env: str, delivery: dict) -> Path:
    """A copy of `source` (an infra dir) where `env` takes releases as `delivery` says."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    set_delivery(dest, env, delivery)
    return dest


def set_delivery(infra: Path, env: str, delivery: dict) -> None:
    set_policy(infra, env, delivery=delivery)


def set_policy(infra: Path, env: str, **entry: object) -> None:
    """Set keys of `env`'s entry in `infra`'s environments.yaml."""
    table = yaml.safe_load((infra / "environments.yaml").read_text())
    table["environments"][env].update(entry)
    (infra / "environments.yaml").write_text(yaml.safe_dump(table, sort_keys=False))


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def release_of(body: bytes) -> str:
    import json

    try:
        return str(json.loads(body).get("release"))
    except ValueError:
        return "?"


@dataclass
class Load:
    """`rate` requests a second to `url` in a thread; every answer tallied by status and by the release it named."""

    url: str
    rate: float = 20.0
    statuses: Counter = field(default_factory=Counter)
    releases: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    first_error_at: float | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def _run(self) -> None:
        pause = 1.0 / self.rate
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                status, body = get(self.url)
            except OSError as exc:  # refused, reset, timed out: a request a user saw fail
                self.statuses["error"] += 1
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                self.statuses[status] += 1
                self.releases[release_of(body)] += 1
                if status >= 500:
                    self.first_error_at = self.first_error_at or time.time()
                    self.failures.append(f"HTTP {status}")
            self._stop.wait(max(0.0, pause - (time.monotonic() - began)))


class InThread:
    """`fn()` in a thread; `result()` waits for what it returned (or raises what it raised)."""

    def __init__(self, fn) -> None:
        self._out: list = []
        self._thread = threading.Thread(target=lambda: self._out.append(_call(fn)), daemon=True)
        self._thread.start()

    def result(self, timeout: float = 300.0):
        self._thread.join(timeout)
        assert self._out, f"still running after {timeout:.0f} s"
        ok, value = self._out[0]
        if not ok:
            raise value
        return value


def _call(fn):
    try:
        return True, fn()
    except BaseException as exc:
        return False, exc


def wait_for_step(instance, env: str, weight: int, since: float, timeout: float = 180.0) -> shifts.ShiftState:
    """The env's shift record once it holds the new version at `weight` (a shift started after `since`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = shifts.read_state(instance, env)
        if state and state.started >= since and state.phase == "step" and state.new_weight == weight:
            return state
        time.sleep(0.2)
    raise AssertionError(
        f"no shift of {env} reached {weight}% within {timeout:.0f} s: {shifts.read_state(instance, env)}"
    )
