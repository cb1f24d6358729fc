"""The one HTTP probe: a server still starting gets its cold-start budget; one that answers wrongly is judged
within seconds of its first wrong answer (a health check that fails is not waited on for the whole budget)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coderemote_pipeline.actions.http_probe import expect_json, expect_status, probe


class Scripted(BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []

    def do_GET(self):
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_failing_health_is_judged_within_5_s_of_its_first_wrong_answer(server):
    Scripted.answers = [(500, b"boom")]
    started = time.monotonic()
    result = probe("health", server + "/health", expect_status(200), start_budget_s=60, settle_s=3)
    assert not result.ok and result.status == 500 and result.first_wrong_s is not None
    assert result.seconds - result.first_wrong_s <= 5 and time.monotonic() - started < 10
    assert "judged" in result.detail and "expected HTTP 200, got 500" in result.detail


def test_a_server_that_becomes_right_passes(server):
    Scripted.answers = [(503, b""), (503, b""), (200, b'{"release": "v1"}')]
    result = probe("health", server, expect_json({"release": "v1"}), start_budget_s=10, settle_s=3)
    assert result.ok and result.attempts == 3


def test_nothing_answering_uses_the_start_budget():
    result = probe("health", "http://127.0.0.1:9/health", expect_status(200), start_budget_s=0.5, settle_s=0.1)
    assert not result.ok and result.status == 0 and result.first_wrong_s is None and result.seconds >= 0.5
    assert result.detail.startswith("no answer")
