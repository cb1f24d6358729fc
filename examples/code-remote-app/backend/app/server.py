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


class _Stop(BaseException):
    """Raised from the signal handler to leave serve_forever at once (not an Exception, so no
    ``except Exception`` on the way out can swallow it)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def main() -> int:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    load_gemini_api_key()  # once, at start: the environment names the secret, the store holds the key
    server: ThreadingHTTPServer | None = None
    try:
        server = ThreadingHTTPServer((host, port), _Handler)
        bound_host, bound_port = server.server_address[:2]
        print(f"listening on http://{bound_host}:{bound_port}", flush=True)
        server.serve_forever(poll_interval=0.2)
    except _Stop as stop:
        print(f"stopping on signal {stop.args[0]}", flush=True)
    finally:
        if server is not None:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
