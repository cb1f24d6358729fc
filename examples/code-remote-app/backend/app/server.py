"""Plain HTTP entry point for containers: ``python3 -m app.server``.

Binds ``HOST`` (default 0.0.0.0) and ``PORT`` (default 8080; 0 picks a free port). Prints one
``listening on http://HOST:PORT`` line once the socket is bound, and exits 0 promptly on SIGTERM or
SIGINT. Handlers are installed explicitly, so a parent that ignored those signals does not leak that
into the server.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from app.api import route
from app.secret_store import load_gemini_api_key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection may hold its thread

    def _answer(self) -> None:
        # HEAD is answered as GET without the body, so Content-Length matches what GET would send.
        status, headers, body = route("GET" if self.command == "HEAD" else self.command, self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def version_string(self) -> str:
        return "CodeRemote"

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Stopping:
    """The signal that asked the server to stop, once one has.

    The handler only records it: an exception raised from a signal handler lands wherever the main thread
    happens to be, inside ``threading`` or ``selectors`` internals too, and can leave a lock held on the way
    out. The serving loop looks at it between requests instead, at most ``POLL_SECONDS`` later.
    """

    signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum


POLL_SECONDS = 0.2


def main() -> int:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    stopping = _Stopping()
    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    load_gemini_api_key()  # once, at start: the environment names the secret, the store holds the key
    server = ThreadingHTTPServer((host, port), _Handler)
    server.timeout = POLL_SECONDS  # handle_request returns after this long without a connection
    try:
        bound_host, bound_port = server.server_address[:2]
        print(f"listening on http://{bound_host}:{bound_port}", flush=True)
        while stopping.signum is None:
            server.handle_request()
        print(f"stopping on signal {stopping.signum}", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
