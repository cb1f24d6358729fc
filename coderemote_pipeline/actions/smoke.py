"""The smoke checks of a release, over HTTP: the live API reports this release and commit, the live site serves
this release's index.html (by SHA-256) and its config.json. Each check is judged within SETTLE_S of its first
wrong answer: the switch already waited for the API to be healthy, so a wrong answer here is a verdict.
"""

from __future__ import annotations

import hashlib

from coderemote_pipeline.actions.http_probe import Answer, Probe, expect_json, probe
from coderemote_pipeline.rules import frontend_files as ff

START_BUDGET_S = 5.0
SETTLE_S = 3.0


def _index_is(expected: str):
    def verdict(answer: Answer) -> str:
        got = hashlib.sha256(answer.body).hexdigest()
        if answer.status == 200 and got == expected:
            return ""
        return f"expected HTTP 200 with index.html sha256 {expected[:12]}, got {answer.status} / {got[:12]}"

    return verdict


def smoke_checks(
    *, api_url: str, health_path: str, frontend_url: str, env: str, release: str, commit: str, index_sha256: str,
    runtime_config: bool,
) -> list[Probe]:  # fmt: skip
    budget = {"start_budget_s": START_BUDGET_S, "settle_s": SETTLE_S}
    checks = [
        probe("api_health", api_url + health_path, expect_json({"release": release, "commit": commit}), **budget),
        probe("frontend_index", f"{frontend_url}/index.html", _index_is(index_sha256), **budget),
    ]
    if runtime_config:
        wanted = {"release": release, "apiUrl": api_url, "env": env}
        checks.append(probe("frontend_config", f"{frontend_url}/{ff.RUNTIME_CONFIG}", expect_json(wanted), **budget))
    return checks
