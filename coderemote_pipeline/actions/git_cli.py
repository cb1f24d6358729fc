"""The git command line as the project runs it, and what its failures mean to a user."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coderemote_pipeline.rules.errors import Transient, UserError

GIT_TIMEOUT_S = 120
SYMLINK_MODE = "120000"


class GitError(UserError, RuntimeError):
    pass


class RemoteUnreachable(GitError, Transient):
    pass


class RefNotFound(GitError):
    pass


class LayoutPathError(GitError):
    """An app-config path that the release's commit does not hold as a plain file or directory."""



def git(*args: str, cwd: Path | None = None, input_bytes: bytes | None = None) -> bytes:
    # GIT_TERMINAL_PROMPT=0: an https remote asking for credentials must fail, not hang a sensor or a run.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input_bytes,
        capture_output=True,
        env=env,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode(errors="replace").strip() or f"git {args[0]} exited {proc.returncode}")
    return proc.stdout


def first_line(exc: Exception) -> str:
    line = next((line for line in str(exc).splitlines() if line.strip()), str(exc)).removeprefix("fatal: ")
    # git names the directory a `.git` file points to: that file's content, which no message repeats.
    return "not a git repository" if line.startswith("not a git repository") else line
