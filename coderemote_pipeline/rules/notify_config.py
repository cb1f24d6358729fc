"""Who hears about releases: the `notify:` receivers of an environment in infra/environments.yaml, validated on load.

    notify:
      - webhook: {url_env: SLACK_WEBHOOK_URL}          # a Slack-compatible incoming webhook
      - github: {repository: acme/code-remote, token_env: GITHUB_TOKEN}   # GitHub Deployments and their statuses

Secrets are never in the file: a receiver names the environment variable that holds its URL or token, read when a
notice is sent. A plain `url:` is for a receiver whose address is no secret (a team's own relay, a test).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, model_validator

from coderemote_pipeline.rules.schema import StrictModel, plain

# The release events, in the order a deploy meets them.
HELD, STARTED, LIVE, ROLLED_BACK, AUTOMATIC_ROLLBACK, SHIFT_ABORTED, FAILED = (
    "held", "started", "live", "rolled_back", "automatic_rollback", "shift_aborted", "failed",
)  # fmt: skip
EVENTS = (HELD, STARTED, LIVE, ROLLED_BACK, AUTOMATIC_ROLLBACK, SHIFT_ABORTED, FAILED)
_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")


# The pipeline's own secrets: a receiver naming one would send it to the receiver's host.
_OWN_SECRETS = ("GEMINI_API_KEY", "DAGSTER_PG_PASSWORD")
# PULUMI_: the aws target's Pulumi token and passphrase (PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE).
_OWN_PREFIXES = ("AWS_", "CODEREMOTE_", "DAGSTER_", "PULUMI_")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _variable(example: str, holds: str) -> AfterValidator:
    def check(value: str) -> str:
        # The value itself is never repeated: whoever got this wrong most likely pasted the secret here.
        if not _VARIABLE.match(value):
            raise ValueError(f"must name an environment variable (e.g. {example}) that holds the {holds}, "
                             f"not the {holds} itself")  # fmt: skip
        if value in _OWN_SECRETS or value.startswith(_OWN_PREFIXES):
            raise ValueError(f"names {value}, the pipeline's own: it would be sent to the receiver. Give the "
                             f"receiver a variable of its own (e.g. {example})")  # fmt: skip
        return value

    return AfterValidator(check)


def _http_url(value: str) -> str:
    # Named by its key, never quoted: a webhook's URL carries its secret.
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value.strip()):
        raise ValueError("must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("carries credentials: keep such a URL in an environment variable named by url_env")
    return value.strip()


def _webhook_url(value: str) -> str:
    host = urllib.parse.urlsplit(value).hostname or ""
    if host == "slack.com" or host.endswith(".slack.com"):
        raise ValueError("is a Slack webhook, whose URL is its secret: keep it in an environment variable named "
                         "by url_env (e.g. SLACK_WEBHOOK_URL)")  # fmt: skip
    return value


def _api_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise ValueError("must be https:// (the token goes with every request), or http:// to this machine")
    return value


def _repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise ValueError("must be a GitHub repository as OWNER/NAME, e.g. acme/code-remote")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Webhook(StrictModel):
    url: Annotated[HttpUrl, AfterValidator(_webhook_url)] | None = None
    url_env: Annotated[str, _variable("SLACK_WEBHOOK_URL", "URL")] | None = None

    @model_validator(mode="after")
    def _one(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook needs url_env (the variable holding its URL: Slack's carries its secret) "
                             "or url, one of the two")  # fmt: skip
        return self


class GitHub(StrictModel):
    repository: Annotated[str, AfterValidator(_repository)]
    token_env: Annotated[str, _variable("GITHUB_TOKEN", "token")] = "GITHUB_TOKEN"
    api_url: Annotated[HttpUrl, AfterValidator(_api_url)] = "https://api.github.com"


class Receiver(StrictModel):
    webhook: Webhook | None = None
    github: GitHub | None = None
    events: list[str] = list(EVENTS)

    @model_validator(mode="after")
    def _kind(self) -> Receiver:
        if (self.webhook is None) == (self.github is None):
            raise ValueError("a receiver is either webhook: or github:")
        if not self.events:
            raise ValueError("events is empty: list the events this receiver gets, or remove the receiver")
        unknown = [e for e in self.events if e not in EVENTS]
        if unknown:
            named = ", ".join(str(e) for e in unknown if plain(e)) or "that are not names"
            raise ValueError(f"unknown event(s) {named}: use {', '.join(EVENTS)}")
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
