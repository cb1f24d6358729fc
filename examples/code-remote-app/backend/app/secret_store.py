"""The Gemini API key, read once at start from AWS Secrets Manager: the function's environment holds only the
secret's ARN (``GEMINI_API_KEY_SECRET_ARN``), never the key. Standard library only (the image has no SDK): one
SigV4-signed ``GetSecretValue`` call with the credentials Lambda gives the function (``AWS_ACCESS_KEY_ID``, …),
to ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (or ``AWS_ENDPOINT_URL``) when set, else the region's endpoint.
A plain ``GEMINI_API_KEY`` is still read for running the API by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import urllib.request
from collections.abc import Mapping

SECRET_ARN = "GEMINI_API_KEY_SECRET_ARN"
_cached: dict[str, str] = {}


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def get_secret_value(arn: str, environ: Mapping[str, str], timeout: float = 5.0) -> str:
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or arn.split(":")[3]
    endpoint = (environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or environ.get("AWS_ENDPOINT_URL")
                or f"https://secretsmanager.{region}.amazonaws.com").rstrip("/")  # fmt: skip
    host = endpoint.split("://", 1)[1]
    body = json.dumps({"SecretId": arn}).encode()
    now = dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": stamp,
               "x-amz-target": "secretsmanager.GetSecretValue"}  # fmt: skip
    if environ.get("AWS_SESSION_TOKEN"):
        headers["x-amz-security-token"] = environ["AWS_SESSION_TOKEN"]
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["POST", "/", "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed,
                           hashlib.sha256(body).hexdigest()])  # fmt: skip
    scope = f"{day}/{region}/secretsmanager/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(("AWS4" + environ["AWS_SECRET_ACCESS_KEY"]).encode(), day)
    for part in (region, "secretsmanager", "aws4_request"):
        key = _sign(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={environ['AWS_ACCESS_KEY_ID']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")  # fmt: skip
    request = urllib.request.Request(endpoint + "/", data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["SecretString"]


def load_gemini_api_key(environ: Mapping[str, str] | None = None) -> str:
    """The key, from the secret store when the environment names a secret; "" when none is configured or the
    store did not answer (health then says why, without the key)."""
    environ = os.environ if environ is None else environ
    arn = environ.get(SECRET_ARN, "")
    try:
        _cached["key"] = get_secret_value(arn, environ) if arn else environ.get("GEMINI_API_KEY", "")
        _cached["state"] = "configured" if _cached["key"] else "missing"
    except (OSError, KeyError, ValueError) as exc:
        _cached["key"], _cached["state"] = "", f"unreadable ({type(exc).__name__})"
    return _cached["key"]


def gemini_key_state() -> str:
    """What /health may say about the key: configured, missing, or unreadable (never the key)."""
    return _cached.get("state", "missing")
