"""Tests of the Code Remote API: routing, the Lambda adapter and the HTTP server process. Stdlib only.

Run from the repository root with ``python3 -m pytest examples/code-remote-app/backend/tests -q``
or from ``backend/`` with ``python3 -m unittest discover -s tests``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

BACKEND = Path(__file__).resolve().parents[1]
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))

from app import api, handler  # noqa: E402

MISSING = Path("/nonexistent/COMMIT")
FULL_ENV = {
    "APP_RELEASE": "v1.2.3",
    "APP_COMMIT": "3f9c2ab",
    "APP_ENV": "prod",
    "GEMINI_MODEL": "gemini-2.5-flash",
    "GEMINI_API_KEY": "sk-do-not-leak",
    "AWS_SECRET_ACCESS_KEY": "aws-do-not-leak",
    "AWS_SESSION_TOKEN": "token-do-not-leak",
}


def body_json(response: api.Response) -> dict:
    return json.loads(response[2])


class RouteTests(unittest.TestCase):
    def test_health_reports_release_commit_env_and_model(self) -> None:
        status, headers, body = api.route("GET", "/health", FULL_ENV, MISSING)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(
            json.loads(body),
            {
                "status": "ok",
                "release": "v1.2.3",
                "commit": "3f9c2ab",
                "env": "prod",
                "gemini_model": "gemini-2.5-flash",
                "gemini_key": "missing",
            },
        )

    def test_unset_values_are_unknown(self) -> None:
        payload = body_json(api.route("GET", "/health", {}, MISSING))
        self.assertEqual(payload["status"], "ok")
        for key in ("release", "commit", "env", "gemini_model"):
            self.assertEqual(payload[key], "unknown", key)

    def test_commit_falls_back_to_file_then_build_arg(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            commit_file = Path(tmp) / "COMMIT"
            commit_file.write_text("abc1234\n")
            env = {"APP_BUILD_COMMIT": "baked00"}
            self.assertEqual(body_json(api.route("GET", "/health", env, commit_file))["commit"], "abc1234")
            self.assertEqual(
                body_json(api.route("GET", "/health", {**env, "APP_COMMIT": "fromenv"}, commit_file))["commit"],
                "fromenv",
            )
        self.assertEqual(body_json(api.route("GET", "/health", env, MISSING))["commit"], "baked00")

    def test_no_secret_reaches_any_response(self) -> None:
        for method, path in [("GET", "/health"), ("GET", "/api/hello"), ("GET", "/nope"), ("POST", "/health")]:
            _, headers, body = api.route(method, path, FULL_ENV, MISSING)
            text = body.decode() + json.dumps(headers)
            self.assertNotIn("do-not-leak", text, path)

    def test_secret_names_are_refused(self) -> None:
        for name in ("GEMINI_API_KEY", "MY_SECRET", "github_token"):
            with self.assertRaises(ValueError):
                api._public({name: "x"}, name)

    def test_hello_includes_release(self) -> None:
        status, _, body = api.route("GET", "/api/hello?name=x", FULL_ENV, MISSING)
        self.assertEqual(status, 200)
        payload = json.loads(body)
        self.assertEqual(payload["release"], "v1.2.3")
        self.assertIn("Hello", payload["message"])

    def test_other_paths_are_404_json(self) -> None:
        for path in ("/", "/healthz", "/api", "/api/hello/x"):
            status, headers, body = api.route("GET", path, FULL_ENV, MISSING)
            self.assertEqual(status, 404, path)
            self.assertEqual(headers["Content-Type"], "application/json")
            self.assertEqual(json.loads(body)["error"], "not found")

    def test_trailing_slash_and_head_and_options(self) -> None:
        self.assertEqual(api.route("GET", "/health/", FULL_ENV, MISSING)[0], 200)
        status, _, body = api.route("HEAD", "/health", FULL_ENV, MISSING)
        self.assertEqual((status, body), (200, b""))
        status, headers, body = api.route("OPTIONS", "/health", FULL_ENV, MISSING)
        self.assertEqual((status, body), (204, b""))
        self.assertIn("GET", headers["Access-Control-Allow-Methods"])

    def test_unsupported_method_is_405(self) -> None:
        status, headers, _ = api.route("POST", "/api/hello", FULL_ENV, MISSING)
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET, HEAD, OPTIONS")

    def test_responses_allow_cross_origin_reads(self) -> None:
        _, headers, _ = api.route("GET", "/health", FULL_ENV, MISSING)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "*")


class LambdaHandlerTests(unittest.TestCase):
    def test_function_url_payload_v2(self) -> None:
        event = {
            "version": "2.0",
            "rawPath": "/health",
            "rawQueryString": "",
            "requestContext": {"http": {"method": "GET", "path": "/health"}},
        }
        with mock.patch.dict(os.environ, {"APP_RELEASE": "v9.9.9", "APP_COMMIT": "c0ffee0"}):
            result = handler.handler(event, None)
        self.assertEqual(result["statusCode"], 200)
        self.assertFalse(result["isBase64Encoded"])
        self.assertEqual(result["headers"]["Content-Type"], "application/json")
        payload = json.loads(result["body"])
        self.assertEqual((payload["release"], payload["commit"]), ("v9.9.9", "c0ffee0"))

    def test_payload_v1_and_404(self) -> None:
        result = handler.handler({"httpMethod": "GET", "path": "/missing"}, None)
        self.assertEqual(result["statusCode"], 404)


class ServerProcessTests(unittest.TestCase):
    """Starts ``python3 -m app.server`` for real, queries it, and stops it with SIGTERM."""

    def test_serves_health_and_stops_on_sigterm(self) -> None:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": "0",
            "APP_RELEASE": "v1.0.0",
            "APP_ENV": "dev",
            "GEMINI_API_KEY": "sk-do-not-leak",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.server"],
            cwd=BACKEND,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = proc.stdout.readline().strip()
            self.assertTrue(line.startswith("listening on http://127.0.0.1:"), line)
            base = line.removeprefix("listening on ")
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                raw = response.read()
                self.assertEqual(response.status, 200)
            payload = json.loads(raw)
            self.assertEqual((payload["release"], payload["env"]), ("v1.0.0", "dev"))
            self.assertNotIn(b"do-not-leak", raw)
            with self.assertRaises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"{base}/nope", timeout=5)
            self.assertEqual(missing.exception.code, 404)

            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
            self.assertLess(time.monotonic() - started, 2.0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
