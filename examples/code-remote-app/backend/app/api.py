"""Pure routing: ``route(method, path) -> (status, headers, body)``.

No sockets, no frameworks: the Lambda handler and the HTTP server both translate their
own request shape into a call to :func:`route` and send back what it returns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from app.secret_store import gemini_key_state

UNKNOWN = "unknown"
HEALTH_PATH = "/health"
HELLO_PATH = "/api/hello"
COMMIT_FILE = Path("/var/task/COMMIT")

# Names that must never reach a response, whatever a future edit adds to the payload.
_SECRET_MARKERS = ("KEY", "SECRET", "TOKEN")

_BASE_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    # The frontend is served from another origin (S3/CloudFront or the emulator) and calls this API.
    "Access-Control-Allow-Origin": "*",
}

Response = tuple[int, dict[str, str], bytes]


def _public(environ: Mapping[str, str], name: str) -> str:
    if any(marker in name.upper() for marker in _SECRET_MARKERS):
        raise ValueError(f"refusing to expose environment variable {name}")
    return environ.get(name, "").strip() or UNKNOWN


def _commit(environ: Mapping[str, str], commit_file: Path) -> str:
    """APP_COMMIT, else the COMMIT file beside the code, else the commit baked in at build time."""
    commit = _public(environ, "APP_COMMIT")
    if commit != UNKNOWN:
        return commit
    try:
        commit = commit_file.read_text(encoding="utf-8").strip()
    except OSError:
        commit = ""
    return commit or _public(environ, "APP_BUILD_COMMIT")


def health(environ: Mapping[str, str], commit_file: Path = COMMIT_FILE) -> dict[str, str]:
    return {
        "status": "ok",
        "release": _public(environ, "APP_RELEASE"),
        "commit": _commit(environ, commit_file),
        "env": _public(environ, "APP_ENV"),
        "gemini_model": _public(environ, "GEMINI_MODEL"),
        "gemini_key": gemini_key_state(),
    }


def _json(status: int, payload: object, extra: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, sort_keys=True).encode("utf-8") + b"\n"
    return status, {**_BASE_HEADERS, **(extra or {})}, body


def route(
    method: str,
    path: str,
    environ: Mapping[str, str] | None = None,
    commit_file: Path = COMMIT_FILE,
) -> Response:
    """Answer one request. ``path`` may carry a query string; it is ignored."""
    environ = os.environ if environ is None else environ
    method = method.upper()
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    if len(path) > 1:
        path = path.rstrip("/")

    if path == HEALTH_PATH:
        payload = health(environ, commit_file)
    elif path == HELLO_PATH:
        payload = {"message": "Hello from Code Remote", "release": _public(environ, "APP_RELEASE")}
    else:
        return _json(404, {"error": "not found", "path": path})

    if method == "OPTIONS":
        status, headers, _ = _json(204, None, {"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS"})
        return status, headers, b""
    if method not in ("GET", "HEAD"):
        return _json(405, {"error": "method not allowed"}, {"Allow": "GET, HEAD, OPTIONS"})
    status, headers, body = _json(200, payload)
    return status, headers, b"" if method == "HEAD" else body
