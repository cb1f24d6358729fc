"""Notifications on a real local HTTP receiver: the Slack-compatible payload, GitHub Deployments and their statuses
through a deployment's life, retries, and a receiver that fails never failing anything nor leaking a token."""

import pytest

from coderemote_pipeline.actions import notify
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules.schema import ConfigError, validate
from testkit.receiver import Receiver

EVENT = nc.ReleaseEvent(nc.LIVE, "prod", "v1.2.3", "a" * 40, "run12345abcd", "canary 10% for 300 s")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_S", (0.01, 0.01))


def _receivers(**kinds) -> list[nc.Receiver]:
    return [nc.Receiver.model_validate({kind: config}) for kind, config in kinds.items()]


def test_a_webhook_gets_a_slack_payload_naming_the_release():
    with Receiver() as hook:
        lines: list[str] = []
        notify.Notifier(
            _receivers(webhook={"url_env": "HOOK"}), None, lines.append, {"HOOK": hook.url + "/T0/B0/s3cr3t"}
        ).send(EVENT)
    ((path, body, _),) = hook.posts
    assert path == "/T0/B0/s3cr3t" and body["event"] == "live" and lines == []
    assert body["text"] == "prod: v1.2.3 (aaaaaaaaaaaa) is live: canary 10% for 300 s"
    assert body["blocks"][0]["text"]["text"] == body["text"]


def test_github_deployments_follow_the_release_and_the_previous_one_goes_inactive(tmp_path):
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance, Receiver() as api:
        gh = _receivers(github={"repository": "acme/code-remote", "token_env": "GH", "api_url": api.url})
        sender = notify.Notifier(gh, instance, print, {"GH": "ghp_token"})
        for event in (nc.STARTED, nc.LIVE):
            sender.send(nc.ReleaseEvent(event, "prod", "v1.0.0", "1" * 40, "run-a"))
        for event in (nc.STARTED, nc.LIVE):
            sender.send(nc.ReleaseEvent(event, "prod", "v1.1.0", "2" * 40, "run-b"))
    base = "/repos/acme/code-remote/deployments"
    calls = [(path.removeprefix(base), body.get("state")) for path, body, _ in api.posts]
    assert calls == [
        ("", None), ("/101/statuses", "in_progress"), ("/101/statuses", "success"),
        ("", None), ("/102/statuses", "in_progress"), ("/102/statuses", "success"), ("/101/statuses", "inactive"),
    ]  # fmt: skip
    assert api.posts[0][1]["ref"] == "1" * 40 and api.posts[0][1]["environment"] == "prod"
    assert all(headers["Authorization"] == "Bearer ghp_token" for _, _, headers in api.posts)


def test_a_failing_receiver_is_retried_then_logged_without_its_secret():
    with Receiver(status=500) as hook:
        lines: list[str] = []
        notify.Notifier(_receivers(webhook={"url_env": "HOOK"}), None, lines.append,
                        {"HOOK": hook.url + "/services/s3cr3t"}).send(EVENT)  # fmt: skip
    assert len(hook.posts) == notify.TRIES
    assert lines == [
        "notification live to webhook not delivered (127.0.0.1 answered HTTP 500 3 times); the deploy goes on"
    ]
    assert "s3cr3t" not in lines[0]


def test_a_missing_variable_skips_the_receiver_naming_the_variable():
    lines: list[str] = []
    notify.Notifier(_receivers(webhook={"url_env": "SLACK_WEBHOOK_URL"}), None, lines.append, {}).send(EVENT)
    assert lines == ["notification live to webhook skipped: the variable 'SLACK_WEBHOOK_URL' is not set"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"webhook": {}}, "a webhook needs url_env"),
        ({"webhook": {"url": "http://x"}, "events": ["deployed"]}, "unknown event(s) deployed"),
        ({"github": {"repository": "not a repo"}}, "must be a GitHub repository as OWNER/NAME, e.g. acme/code-remote"),
        ({"webhook": {"url": "http://x"}, "events": []}, "events is empty: list the events this receiver gets"),
        ({"slack": {"url": "http://x"}}, "slack"),
    ],
)
def test_bad_receivers_are_refused(entry, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nc.Receiver.model_validate(entry)


SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"


def _own(field: str, name: str, example: str) -> str:
    return (f"{field}: names {name}, the pipeline's own: it would be sent to the receiver. Give the receiver a "
            f"variable of its own (e.g. {example})")


@pytest.mark.parametrize(
    ("entry", "message", "secret"),
    [
        ({"webhook": {"url_env": SLACK_URL}}, "webhook.url_env must name an environment variable (e.g. "
         "SLACK_WEBHOOK_URL) that holds the URL, not the URL itself", "XXXXSECRET"),
        ({"github": {"repository": "acme/app", "token_env": TOKEN}}, "github.token_env must name an environment "
         "variable (e.g. GITHUB_TOKEN) that holds the token, not the token itself", TOKEN),
        ({"webhook": {"url": "notaurl"}}, "webhook.url must be an http:// or https:// URL", "notaurl"),
        ({"webhook": {"url": "ftp://relay.example/T000/XXXXSECRET"}}, "webhook.url must be an http:// or https:// URL",
         "XXXXSECRET"),
        ({"webhook": {"url": "https:///XXXXSECRET"}}, "webhook.url must be an http:// or https:// URL", "XXXXSECRET"),
        ({"github": {"repository": "acme/app", "api_url": "not a url"}},
         "github.api_url must be an http:// or https:// URL", "not a url"),
        ({"webhook": {"url_env": "HOOK"}, "events": "live"}, "events must be a list of names, got the text 'live'",
         "Input should"),
        # A receiver never gets the pipeline's own secrets, nor a token over the network in clear text.
        *[({"github": {"repository": "acme/app", "token_env": name}}, _own("github.token_env", name, "GITHUB_TOKEN"),
           "XXXXSECRET") for name in ("GEMINI_API_KEY", "PULUMI_ACCESS_TOKEN")],
        *[({"webhook": {"url_env": name}}, _own("webhook.url_env", name, "SLACK_WEBHOOK_URL"), "XXXXSECRET")
          for name in ("AWS_SECRET_ACCESS_KEY", "PULUMI_CONFIG_PASSPHRASE")],
        ({"github": {"repository": "acme/app", "api_url": "http://ghe.example.com/api/v3"}}, "github.api_url must "
         "be https:// (the token goes with every request), or http:// to this machine", "XXXXSECRET"),
        ({"webhook": {"url": "https://bot:XXXXSECRET@hooks.example.com/x"}}, "webhook.url: carries credentials: "
         "keep such a URL in an environment variable named by url_env", "XXXXSECRET"),
        ({"webhook": {"url": SLACK_URL}}, "webhook.url: is a Slack webhook, whose URL is its secret: keep it in an "
         "environment variable named by url_env (e.g. SLACK_WEBHOOK_URL)", "XXXXSECRET"),
    ],
)  # fmt: skip
def test_a_receiver_says_what_to_write_and_never_echoes_a_url_or_token(entry, message, secret):
    with pytest.raises(ConfigError) as err:
        validate(nc.Receiver, entry, source="notify[0]")
    assert str(err.value) == f"notify[0]: {message}" and secret not in str(err.value)


def test_an_http_url_is_a_receiver():
    hook = validate(nc.Receiver, {"webhook": {"url": " http://127.0.0.1:8080/hook "}}, source="notify").webhook
    assert hook is not None and hook.url == "http://127.0.0.1:8080/hook"
