"""Telling people: each release event goes to the environment's receivers — a Slack-compatible webhook, and GitHub
Deployments with their statuses. A receiver that fails never fails a deploy: each send is tried a few times with
backoff, then the failure is logged. Nothing secret is logged: a receiver is named by its kind and host only (a
Slack webhook's path is its secret), and tokens are read from the environment when a notice is sent.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import dagster as dg

from coderemote_pipeline.rules import notify_config as nc

TRIES, BACKOFF_S, TIMEOUT_S = 3, (0.2, 0.6), 5.0
GITHUB_STATE = {nc.HELD: "queued", nc.STARTED: "in_progress", nc.LIVE: "success", nc.ROLLED_BACK: "success",
                nc.FAILED: "failure", nc.AUTOMATIC_ROLLBACK: "failure", nc.SHIFT_ABORTED: "failure"}  # fmt: skip


class NotDelivered(Exception):
    pass


def _post(url: str, body: dict, headers: Mapping[str, str] | None = None) -> dict:
    """POST `body` as JSON, a few tries; the answer's JSON (or {}). Raises NotDelivered naming only the host."""
    data = json.dumps(body).encode()
    last = ""
    for attempt in range(TRIES):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                raw = response.read()
            return json.loads(raw) if raw.strip().startswith(b"{") else {}
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        if attempt < TRIES - 1:
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    raise NotDelivered(f"{urlsplit(url).hostname} answered {last} {TRIES} times")


def slack_payload(event: nc.ReleaseEvent) -> dict:
    fields = [f"*{k}*: {v}" for k, v in (("env", event.env), ("release", event.release),
                                          ("commit", event.commit[:12]), ("run", event.run_id[:8])) if v]  # fmt: skip
    return {"text": event.sentence(), "event": event.event,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": event.sentence()}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(fields)}]}]}  # fmt: skip


class Notifier:
    """The receivers of one environment, and where GitHub deployment ids are kept (the instance's key-value store)."""

    def __init__(self, receivers: list[nc.Receiver], instance: dg.DagsterInstance | None,
                 log: Callable[[str], None], environ: Mapping[str, str] | None = None):  # fmt: skip
        self.receivers, self.instance, self.log = receivers, instance, log
        self.environ = os.environ if environ is None else environ

    def send(self, event: nc.ReleaseEvent) -> None:
        for receiver in self.receivers:
            if event.event not in receiver.events:
                continue
            kind = "webhook" if receiver.webhook else "github"
            try:
                if receiver.webhook:
                    self._webhook(receiver.webhook, event)
                elif receiver.github:
                    self._github(receiver.github, event)
            except NotDelivered as exc:
                self.log(f"notification {event.event} to {kind} not delivered ({exc}); the deploy goes on")
            except KeyError as exc:
                self.log(f"notification {event.event} to {kind} skipped: the variable {exc} is not set")

    def _webhook(self, hook: nc.Webhook, event: nc.ReleaseEvent) -> None:
        url = hook.url or self.environ[str(hook.url_env)]
        _post(url, slack_payload(event))

    def _github(self, gh: nc.GitHub, event: nc.ReleaseEvent) -> None:
        headers = {"Authorization": f"Bearer {self.environ[gh.token_env]}", "Accept": "application/vnd.github+json"}
        base = f"{gh.api_url.rstrip('/')}/repos/{gh.repository}/deployments"
        key = f"coderemote/github-deployment/{event.env}/{event.release}/{event.commit}"
        deployment = self._kv(key)
        if deployment is None:
            created = _post(base, {"ref": event.commit, "environment": event.env, "auto_merge": False,
                                   "required_contexts": [], "description": event.release,
                                   "payload": {"release": event.release}}, headers)  # fmt: skip
            deployment = str(created.get("id", ""))
            self._kv(key, deployment)
        state = GITHUB_STATE[event.event]
        _post(f"{base}/{deployment}/statuses", {"state": state, "environment": event.env,
                                                "description": event.sentence()[:140]}, headers)  # fmt: skip
        if state == "success":
            live_key = f"coderemote/github-live/{event.env}"
            before = self._kv(live_key)
            if before and before != deployment:
                _post(f"{base}/{before}/statuses", {"state": "inactive", "environment": event.env}, headers)
            self._kv(live_key, deployment)

    def _kv(self, key: str, value: str | None = None) -> str | None:
        if self.instance is None:
            return None
        if value is not None:
            self.instance.run_storage.set_cursor_values({key: value})
            return value
        return self.instance.run_storage.get_cursor_values({key}).get(key)


def announce(instance: dg.DagsterInstance | None, deploy, event: str, *, run_id: str = "", detail: str = "",
             log: Callable[[str], None] = print) -> None:  # fmt: skip
    """Send `event` about `deploy` (a rules.deployment.Deployment) to its environment's receivers, if any."""
    receivers = list(deploy.policy.receivers)
    if receivers:
        notice = nc.ReleaseEvent(event, deploy.env, deploy.release.key, deploy.commit or "", run_id, detail)
        Notifier(receivers, instance, log).send(notice)
