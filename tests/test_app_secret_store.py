"""The example app reads its Gemini key from Secrets Manager with the standard library only: its SigV4 signature of
GetSecretValue is byte for byte the one botocore makes, so AWS accepts it; and the key is never in /health."""

import datetime as dt
import sys
from unittest import mock

from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from coderemote_pipeline.usecases.demo import EXAMPLE_APP

sys.path.insert(0, str(EXAMPLE_APP / "backend"))
from app import api, secret_store

NOW = dt.datetime(2026, 12, 2, 12, 0, 0, tzinfo=dt.UTC)
ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
       "AWS_SESSION_TOKEN": "session", "AWS_REGION": "us-east-1"}  # fmt: skip
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:code-remote-prod/gemini-api-key-AbCdEf"


class _Answer:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def read(self) -> bytes:
        return b'{"SecretString": "the-key"}'


def _sent() -> object:
    sent = []

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    with (mock.patch.object(secret_store.urllib.request, "urlopen", lambda r, timeout: sent.append(r) or _Answer()),
          mock.patch.object(secret_store.dt, "datetime", Frozen)):  # fmt: skip
        assert secret_store.get_secret_value(ARN, ENV) == "the-key"
    return sent[0]


def test_the_signature_is_the_one_botocore_makes():
    request = _sent()
    expected = AWSRequest(method="POST", url="https://secretsmanager.us-east-1.amazonaws.com/", data=request.data,
                          headers={"Content-Type": "application/x-amz-json-1.1",
                                   "X-Amz-Target": "secretsmanager.GetSecretValue"})  # fmt: skip
    signer = botocore_auth.SigV4Auth(Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"], "session"),
                                     "secretsmanager", "us-east-1")  # fmt: skip
    with mock.patch.object(botocore_auth.datetime, "datetime") as clock:
        clock.utcnow.return_value = NOW.replace(tzinfo=None)
        clock.now.return_value = NOW
        signer.add_auth(expected)
    assert request.full_url == "https://secretsmanager.us-east-1.amazonaws.com/"
    assert request.get_header("Authorization") == expected.headers["Authorization"]


def test_health_says_whether_the_key_was_read_never_the_key():
    with mock.patch.object(secret_store, "get_secret_value", lambda arn, environ: "the-key"):
        secret_store.load_gemini_api_key({"GEMINI_API_KEY_SECRET_ARN": ARN})
    assert api.health({})["gemini_key"] == "configured" and "the-key" not in str(api.health({}))
    with mock.patch.object(secret_store, "get_secret_value", mock.Mock(side_effect=OSError("refused"))):
        secret_store.load_gemini_api_key({"GEMINI_API_KEY_SECRET_ARN": ARN})
    assert api.health({})["gemini_key"] == "unreadable (OSError)"
