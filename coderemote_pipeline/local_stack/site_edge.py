"""The local site edge: Debian's varnish in front of the emulated S3, what CloudFront is on AWS. It caches what the
buckets serve, honours invalidations (a BAN of a list of paths), and follows each environment's live-release
pointer: the object `_edge/LIVE` in the env's bucket, whose metadata names the live release (and the one before).

Every request first looks the pointer up (a cache hit) and is then served from `_releases/<release>/` of that
moment: a flip of the pointer switches the whole site at once, never mixing two releases in one request and copying
no object. A hashed asset the live release lacks (a page loaded just before a flip) is served from the previous
release. One varnishd serves every environment, one listening socket each, named after it.
"""

from __future__ import annotations

import http.client
import re
import shlex
import urllib.parse
from pathlib import Path

from coderemote_pipeline.local_stack.processes import spawn, wait_until

VARNISHD = "/usr/sbin/varnishd"
CMDLINE_FRAGMENT = "varnishd"
POINTER_KEY = "_edge/LIVE"
START_TIMEOUT_S = 30.0
# The same rule as rules.frontend_files.is_hashed: a content hash in the name.
HASHED = r"[.-][0-9a-fA-F]{8,}\.[A-Za-z0-9]+$"

VCL = """vcl 4.1;
import std;

backend s3 { .host = "127.0.0.1"; .port = "@MOTO_PORT@"; .connect_timeout = 2s; .first_byte_timeout = 30s; }

acl invalidators { "127.0.0.1"; }

sub vcl_recv {
@BUCKETS@
    if (!req.http.x-bucket) { return (synth(404, "no environment on this port")); }
    set req.http.host = "site";
    if (req.restarts == 0) {
        unset req.http.x-release;
        set req.http.x-path = regsub(req.url, "\\?.*$", "");
        if (req.http.x-path ~ "/$") { set req.http.x-path = req.http.x-path + "index.html"; }
        unset req.http.cookie;
        unset req.http.authorization;
        if (req.method == "PURGE" || req.method == "BAN") {
            if (!client.ip ~ invalidators) { return (synth(405, "not allowed")); }
            if (req.method == "BAN") {
                if (!req.http.x-path-regex) { return (synth(400, "X-Path-Regex required")); }
                ban("obj.http.x-bucket == " + req.http.x-bucket + " && obj.http.x-path ~ " + req.http.x-path-regex);
                return (synth(200, "banned"));
            }
            set req.url = "/" + req.http.x-bucket + "/@POINTER@";
            return (purge);
        }
        if (req.method != "GET" && req.method != "HEAD") { return (synth(405, "method not allowed")); }
        set req.http.x-method = req.method;
        set req.method = "GET";
        set req.url = "/" + req.http.x-bucket + "/@POINTER@";
        return (hash);
    }
    set req.method = req.http.x-method;
    set req.url = "/" + req.http.x-bucket + "/_releases/" + req.http.x-release + req.http.x-path;
    return (hash);
}

sub vcl_backend_response {
    set beresp.grace = 0s;
    set beresp.keep = 1h;
    if (bereq.url ~ "/@POINTER@$") { set beresp.ttl = 1h; set beresp.uncacheable = false; return (deliver); }
    set beresp.http.x-bucket = bereq.http.x-bucket;
    set beresp.http.x-path = bereq.http.x-path;
    set beresp.http.x-release = bereq.http.x-release;
    if (beresp.status >= 400) { set beresp.ttl = 5s; set beresp.uncacheable = false; return (deliver); }
    if (!beresp.http.Cache-Control && !beresp.http.Expires) { set beresp.ttl = 24h; return (deliver); }
}

sub vcl_deliver {
    if (req.restarts == 0 && req.url ~ "/@POINTER@$") {
        if (resp.status != 200 || !resp.http.x-amz-meta-release) { return (synth(503, "no live release")); }
        set req.http.x-release = resp.http.x-amz-meta-release;
        set req.http.x-previous = resp.http.x-amz-meta-previous;
        return (restart);
    }
    if (resp.status == 404 && req.http.x-previous && req.http.x-release != req.http.x-previous
        && req.http.x-path ~ "@HASHED@") {
        set req.http.x-release = req.http.x-previous;
        return (restart);
    }
    if (obj.hits > 0) { set resp.http.x-cache = "HIT"; } else { set resp.http.x-cache = "MISS"; }
    set resp.http.x-release = req.http.x-release;
    unset resp.http.x-path;
    unset resp.http.x-bucket;
    unset resp.http.x-amz-request-id;
    unset resp.http.x-amzn-requestid;
}
"""


def render_vcl(moto_port: int, buckets: dict[str, str]) -> str:
    routes = "\n".join(f'    if (local.socket == "{env}") {{ set req.http.x-bucket = "{bucket}"; }}'
                       for env, bucket in sorted(buckets.items()))  # fmt: skip
    return (VCL.replace("@MOTO_PORT@", str(moto_port)).replace("@BUCKETS@", routes)
            .replace("@POINTER@", POINTER_KEY).replace("@HASHED@", HASHED))  # fmt: skip


def start_varnish(workdir: Path, vcl: Path, site_ports: dict[str, int], *, log_path: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    listen = [arg for env, port in sorted(site_ports.items()) for arg in ("-a", f"{env}=127.0.0.1:{port},HTTP")]
    # `-j none`: no jail (as root varnishd would switch to its own user, who cannot read a private state dir).
    argv = [VARNISHD, "-F", "-j", "none", "-n", str(workdir), *listen, "-T", "127.0.0.1:0", "-f", str(vcl),
            "-s", "malloc,64m",
            "-p", "default_ttl=86400", "-p", "max_restarts=4"]  # fmt: skip
    return spawn(argv, log_path=log_path)


def site_answers(port: int, timeout: float = 2.0) -> bool:
    """The edge answers on `port` (any HTTP answer: 503 before anything is live is an answer)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("HEAD", "/")
        conn.getresponse().read()
        conn.close()
    except OSError:
        return False
    return True


def wait_for_varnish(pid: int, port: int, *, log_path: Path) -> None:
    wait_until(lambda: site_answers(port, timeout=1.0), timeout=START_TIMEOUT_S,
               what="site edge (varnish) did not start", log_path=log_path, pid=pid)  # fmt: skip


def _send(port: int, method: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, "/", headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def edge_release(port: int) -> str | None:
    """The release the edge serves now, from the pointer as it last read it (None: no live release, or the edge
    does not answer, which the site's probe reports)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("HEAD", "/")
        response = conn.getresponse()
        response.read()
    except OSError:
        return None
    finally:
        conn.close()
    return response.getheader("x-release") or None if response.status != 503 else None


def forget_pointer(port: int) -> int:
    """The edge re-reads the live-release pointer on the next request (after a flip)."""
    return _send(port, "PURGE", {})


def ban_paths(port: int, paths: list[str]) -> int:
    """Invalidate CloudFront-style paths (`/index.html`, `/assets/*`, `/*`) in every release cached on `port`."""
    return _send(port, "BAN", {"X-Path-Regex": _path_regex(paths)})


def ban_command(port: int, paths: list[str]) -> str:
    """The same BAN as a command a person runs."""
    return shlex.join(["curl", "-fsS", "-X", "BAN", "-H", f"X-Path-Regex: {_path_regex(paths)}",
                       f"http://127.0.0.1:{port}/"])  # fmt: skip


def _path_regex(paths: list[str]) -> str:
    # The edge matches request URLs, which are percent-encoded: a key with a space is /my%20file.json there.
    parts = [re.escape(urllib.parse.quote(p, safe="/*")).replace(r"\*", ".*") for p in paths]
    return f"^({'|'.join(parts)})$"
