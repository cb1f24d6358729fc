"""AWS Lambda entry point (``app.handler.handler``) for Function URL / API Gateway HTTP API events.

Reads the payload format 2.0 (``requestContext.http.method`` and ``rawPath``) and falls back to the
1.0 shape (``httpMethod`` and ``path``) so a REST API in front of the function works too.
"""

from __future__ import annotations

from typing import Any

from app.api import route
from app.secret_store import load_gemini_api_key

# Once per cold start: the function's environment names the secret, Secrets Manager holds the key.
load_gemini_api_key()


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method") or event.get("httpMethod") or "GET"
    path = event.get("rawPath") or http.get("path") or event.get("path") or "/"
    status, headers, body = route(method, path)
    return {
        "statusCode": status,
        "headers": headers,
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }
