"""A local HTTP receiver of notifications: records every POST (path, JSON body, headers) and answers as told —
the Slack webhook and GitHub's Deployments API, as far as the pipeline's notices go."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, status: int = 200):
        self.status = status
        self.posts: list[tuple[str, dict, dict]] = []
        self._next_id = 100
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                receiver.posts.append((self.path, body, dict(self.headers)))
                answer = {}
                if self.path.endswith("/deployments"):
                    receiver._next_id += 1
                    answer = {"id": receiver._next_id}
                raw = json.dumps(answer).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self, release: str) -> list[str]:
        """The webhook events received about `release`, in order."""
        return [body["event"] for _, body, _ in self.posts if "event" in body and f" {release} (" in body["text"]]
