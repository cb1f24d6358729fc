"""The app's git remote as a user gives it: what git may be handed, and what a message may show of it."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from coderemote_pipeline.rules.errors import UserError

# `user:token@host` inside a URL that urlsplit cannot read: hidden all the same in the refusal.
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class RemoteUrlError(UserError, ValueError):
    pass


def shown(url: str) -> str:
    """`url` as a message may print it: over http(s) the whole `user:token@` becomes `***@` (a token may stand
    alone as the user name); elsewhere (ssh://git@host) only a password is hidden."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _USERINFO.sub("***@", url)
    if "@" not in parts.netloc:
        return url
    host = (parts.hostname or "") + (f":{port}" if port else "")
    if parts.scheme in ("http", "https"):
        return urlunsplit(parts._replace(netloc=f"***@{host}"))
    if parts.password is not None:
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return url


def _splits(url: str) -> bool:
    try:
        urlsplit(url)  # raises for brackets that do not enclose an IPv6 address
    except ValueError:
        return False
    return True


def _port_ok(url: str) -> bool:
    try:
        port = urlsplit(url).port  # raises for a port that is not a number in range
    except ValueError:
        return False
    return port is None or port >= 0


def check_remote(url: str, *, name: str) -> str:
    """`url`, once it is something git can only read as a repository (a path or a URL), never as an option."""
    if not url.strip():
        raise RemoteUrlError(f"{name} is empty: give the app's git remote (a URL or a path to a repository)")
    if url.startswith("-"):
        # git would take it as one of its own options (`--upload-pack=...` runs a command).
        raise RemoteUrlError(f"{name} {shown(url)!r} is not a git URL or path: it starts with '-'")
    if any(ch in url for ch in "\n\r\0"):
        raise RemoteUrlError(f"{name} is not a git URL or path: it holds a line break or a NUL")
    if "://" in url and not _splits(url):
        raise RemoteUrlError(f"{name} {shown(url)!r} is not a valid URL (an unclosed '[' around an IPv6 address?): "
                             "fix it, or give a path to a repository")  # fmt: skip
    if "://" in url and not _port_ok(url):
        raise RemoteUrlError(f"{name} {shown(url)!r} has a port that is not a number from 0 to 65535: fix the "
                             "port, or leave it out for the scheme's own")  # fmt: skip
    if shown(url) != url:
        # The remote is recorded with every release (run tags, the live record, the UI's resources page).
        raise RemoteUrlError(
            f"{name} {shown(url)!r} holds a credential in the URL, which every release would record: give the URL "
            "without it and let git supply it (an SSH key, or a credential helper: `git config --global "
            "credential.helper store`)"
        )
    return url


def absolute(url: str) -> str:
    """A relative path made absolute against the user's directory: git reads a remote from inside the mirror, where
    `app.git` or `../app` would name nothing. URLs and scp-like `host:path` remotes are left as they are."""
    if "://" in url or re.match(r"^[^/]*:", url) or os.path.isabs(url):
        return url
    return os.path.abspath(url)
