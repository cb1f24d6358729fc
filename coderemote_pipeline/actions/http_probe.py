"""One HTTP probe with retries, for every place that asks a live endpoint something: a runtime waiting for its
cold start, the smoke checks, `status` and the drift check.

Two budgets, because "not answering yet" and "answering wrong" mean different things: a server that refuses
connections may still be starting (a cold start can take seconds), but a server that answers 500, or reports
another release, has spoken — it gets `settle_s` more to change its mind, then the probe fails. A release whose
health fails is so judged within seconds of its first wrong answer, not at the end of the cold-start budget.

Hand-written rather than `tenacity` or `backoff`: the stop rule depends on what the last answer was, and the
attempt log is the probe's result.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUEST_TIMEOUT_S = 5.0


@dataclass
class Answer:
    url: str
    status: int = 0  # 0: no HTTP answer at all
    body: bytes = b""
    latency_ms: float = 0.0
    error: str = ""

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def get(url: str, *, timeout: float = REQUEST_TIMEOUT_S) -> Answer:
    """One GET that never raises for an HTTP or connection error: the Answer says what happened."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(url, response.status, response.read(), (time.monotonic() - started) * 1000)
    except urllib.error.HTTPError as exc:
        return Answer(url, exc.code, exc.read(), (time.monotonic() - started) * 1000)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(url, 0, b"", (time.monotonic() - started) * 1000, f"no answer: {reason}")


@dataclass
class Probe:
    """The outcome of probing one URL until it was right or a budget ran out."""

    name: str
    url: str
    ok: bool = False
    status: int = 0
    latency_ms: float = 0.0
    attempts: int = 0
    detail: str = ""
    seconds: float = 0.0
    first_ok_s: float | None = None
    # When the server first answered, wrongly: the probe's verdict comes at most `settle_s` after it.
    first_wrong_s: float | None = None

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "detail" or v}


def expect_json(expected: dict[str, str]) -> Callable[[Answer], str]:
    """A verdict: HTTP 200 with a JSON body holding `expected`; "" when right, else what was wrong."""

    def verdict(answer: Answer) -> str:
        if answer.status != 200:
            return f"expected HTTP 200, got {answer.status}: {answer.body[:200]!r}"
        data = answer.json()
        wrong = {k: data.get(k) for k, v in expected.items() if data.get(k) != v}
        return f"expected {expected}, got {wrong}" if wrong else ""

    return verdict


def expect_status(code: int = 200) -> Callable[[Answer], str]:
    return lambda answer: "" if answer.status == code else f"expected HTTP {code}, got {answer.status}"


def probe(
    name: str,
    url: str,
    verdict: Callable[[Answer], str],
    *,
    start_budget_s: float,
    settle_s: float = 3.0,
    alive: Callable[[], bool] | None = None,
    pause_s: float = 0.05,
    max_pause_s: float = 0.5,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
) -> Probe:
    """GET `url` until `verdict` finds nothing wrong. Gives up `start_budget_s` after the first try while nothing
    answers, `settle_s` after the first wrong answer, and at once when `alive` says the server process is gone."""
    result = Probe(name, url)
    started = time.monotonic()
    first_wrong: float | None = None
    delay = pause_s
    while True:
        result.attempts += 1
        answer = get(url, timeout=request_timeout_s)
        result.status, result.latency_ms = answer.status, round(answer.latency_ms, 1)
        result.detail = answer.error or verdict(answer)
        now = time.monotonic()
        if not result.detail:
            result.ok, result.seconds = True, round(now - started, 3)
            result.first_ok_s = result.seconds
            return result
        if answer.status and first_wrong is None:
            first_wrong = now
            result.first_wrong_s = round(now - started, 3)
        if alive is not None and not alive():
            result.detail = f"the server exited before answering right (last: {result.detail})"
            break
        if (first_wrong is not None and now - first_wrong >= settle_s) or now - started >= start_budget_s:
            break
        time.sleep(delay)
        delay = min(delay * 2, max_pause_s)
    result.seconds = round(time.monotonic() - started, 3)
    if result.first_wrong_s is not None:
        result.detail += f" (judged {result.seconds - result.first_wrong_s:.1f} s after its first wrong answer)"
    return result
