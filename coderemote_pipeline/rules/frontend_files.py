"""Rules for the frontend's files in the bucket: content types, cache headers, what changed, what to invalidate."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

IMMUTABLE = "public, max-age=31536000, immutable"
# Browsers revalidate every time; the CDN keeps it until an invalidation (or a pointer flip) says otherwise.
NO_CACHE = "public, max-age=0, s-maxage=86400"
SHORT = "public, max-age=300"
RELEASES_PREFIX = "_releases/"
RUNTIME_CONFIG = "config.json"

# A content hash in the file name (app.3f9c2ab1d4.js, chunk-3F9C2AB1.css): the name changes whenever the bytes do.
_HASHED_NAME = re.compile(r"[.-][0-9a-fA-F]{8,}\.[A-Za-z0-9]+$")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}


@dataclass(frozen=True)
class BundleFile:
    path: str
    data: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def is_hashed(path: str) -> bool:
    return bool(_HASHED_NAME.search(path))


def cache_control(path: str) -> str:
    """Hashed assets are immutable; HTML and runtime config are revalidated by browsers, cached by the CDN."""
    if is_hashed(path):
        return IMMUTABLE
    if path.endswith((".html", ".json")) or path == RUNTIME_CONFIG:
        return NO_CACHE
    return SHORT


def content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


class BundleLinkRefused(ValueError):
    pass


def collect(directory: Path) -> list[BundleFile]:
    """Every file of a build output. A symlink is refused, never followed: it could upload a host file."""
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise BundleLinkRefused(f"the frontend build output has a symlink {relative!r}: refused, never uploaded")
        if path.is_file():
            files.append(BundleFile(relative, path.read_bytes()))
    return files


def runtime_config(*, release: str, api_url: str, env: str, commit: str) -> BundleFile:
    body = {"release": release, "apiUrl": api_url, "env": env, "commit": commit}
    return BundleFile(RUNTIME_CONFIG, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def content_hash(files: list[BundleFile]) -> str:
    """One hash for a bundle: equal across environments exactly when the built files are byte-identical."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def invalidation_paths(changed_paths: list[str]) -> list[str]:
    """Only paths a cache may hold stale bytes for; new hashed names were never cached."""
    paths = sorted({"/" + p for p in changed_paths if not is_hashed(p)})
    if "/index.html" in paths:
        paths.insert(0, "/")
    return paths
