"""Who hears about releases: the `notify:` receivers of an environment in infra/environments.yaml, validated on load.

    notify:
      - webhook: {url_env: SLACK_WEBHOOK_URL}          # a Slack-compatible incoming webhook
      - github: {repository: acme/code-remote, token_env: GITHUB_TOKEN}   # GitHub Deployments and their statuses

Secrets are never in the file: a receiver names the environment variable that holds its URL or token, read when a
notice is sent. A plain `url:` is for a receiver whose address is no secret (a team's own relay, a test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, model_validator

from coderemote_pipeline.rules.schema import StrictModel

# The release events, in the order a deploy meets them.
HELD, STARTED, LIVE, ROLLED_BACK, AUTOMATIC_ROLLBACK, SHIFT_ABORTED, FAILED = (
    "held", "started", "live", "rolled_back", "automatic_rollback", "shift_aborted", "failed",
)  # fmt: skip
EVENTS = (HELD, STARTED, LIVE, ROLLED_BACK, AUTOMATIC_ROLLBACK, SHIFT_ABORTED, FAILED)
_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class Webhook(StrictModel):
    url: str | None = None
    url_env: str | None = Field(None, pattern=_VARIABLE.pattern)

    @model_validator(mode="after")
    def _one(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook needs url_env (the variable holding its URL: Slack's carries its secret) "
                             "or url, one of the two")  # fmt: skip
        return self


class GitHub(StrictModel):
    repository: str = Field(pattern=_REPOSITORY.pattern)
    token_env: str = Field("GITHUB_TOKEN", pattern=_VARIABLE.pattern)
    api_url: str = "https://api.github.com"


class Receiver(StrictModel):
    webhook: Webhook | None = None
    github: GitHub | None = None
    events: list[str] = list(EVENTS)

    @model_validator(mode="after")
    def _kind(self) -> Receiver:
        if (self.webhook is None) == (self.github is None):
            raise ValueError("a receiver is either webhook: or github:")
        unknown = [e for e in self.events if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}: use {', '.join(EVENTS)}")
        return self


@dataclass(frozen=True)
class ReleaseEvent:
    """One thing that happened to a release in an environment."""

    event: str
    env: str
    release: str
    commit: str
    run_id: str = ""
    detail: str = ""

    def sentence(self) -> str:
        what = {HELD: "is held for approval", STARTED: "started deploying", LIVE: "is live",
                ROLLED_BACK: "is live again (rollback)", AUTOMATIC_ROLLBACK: "was rolled back automatically",
                SHIFT_ABORTED: "had its traffic shift aborted", FAILED: "failed to deploy"}[self.event]  # fmt: skip
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.env}: {self.release} ({self.commit[:12]}) {what}{tail}"
