"""Which job runs a deployment: redeploy_job (every step in one process), unless a process per step (deploy_job)
is asked for by hand, or the branches one after another (`serial`, the same job with nothing started ahead).

One process overlaps both branches' slow work: api_image starts the commit's frontend build (with the
environment's values in the build-time mode, known once infra is) and the frontend's checks beside the image build
(resources/app_source.py, actions/checks_ahead.py), and the backend's checks run side by side in containers of
their own. What a process per step overlaps besides is the version and the upload, a few API calls, at a process
start per step (about 0.9 s each on this 2-core machine). Measured by bench/deploy.py (2026-12-03), new commits:
the example app 1.9 s in one process against 7.0 s with a process per step, the realistic app (builds of 20-30 s
each, testkit/realistic_app.py) 36.9 s against 39.8 s. Until then `auto` chose a process per step where this
app's recorded checks of both sides outweighed the starts; with the frontend's checks run ahead in one process no
such app is left, so the choice from evidence gave way to the one process that overlaps everything. Against one
branch after the other (`serial`), overlapping saved 27% on the realistic app (39.7 s against 54.5 s, 2026-12-04).
Side by side the image build takes ~9 s longer than alone (28.7 s against the peer's 19.2 s) on this 2-vCPU machine;
running the frontend's work ahead at niceness 10 did not shorten it (each build has a core of its own; what they
share is below the scheduler), so it was taken out again.
"""

from __future__ import annotations

from coderemote_pipeline.rules import names

EXECUTORS = ("auto", "parallel", "serial")


def choose_job(executor: str = "auto") -> str:
    return names.DEPLOY_JOB if executor == "parallel" else names.REDEPLOY_JOB


def executor_tags(executor: str = "auto") -> dict[str, str]:
    """`serial` is the same one process with nothing started ahead: each branch's work in its own step, one branch
    after the other, as hand_deploy.py runs them (bench/deploy.py measures the overlap against it)."""
    return {names.BRANCHES_TAG: names.BRANCHES_SERIAL} if executor == "serial" else {}
