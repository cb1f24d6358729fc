"""The demo's app repository: the example app committed to a real git repository with a bare remote."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from coderemote_pipeline.rules.settings import PROJECT_ROOT

EXAMPLE_APP = PROJECT_ROOT / "examples" / "code-remote-app"
_IDENTITY = ["-c", "user.name=Code Remote Demo", "-c", "user.email=demo@code-remote.invalid"]
_IGNORED = shutil.ignore_patterns("node_modules", "dist", "out", "__pycache__", ".pytest_cache")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_app_repo(source: Path, remote: Path, clone: Path, *, message: str = "Initial import") -> str:
    """Create `remote` (bare) and `clone` (a working copy whose origin is it) holding `source` on main."""
    remote.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--bare", "--quiet", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(remote), str(clone)], check=True, capture_output=True)
    git("checkout", "--quiet", "-B", "main", cwd=clone)
    shutil.copytree(source, clone, dirs_exist_ok=True, ignore=_IGNORED)
    return commit_and_push(clone, message)


def commit_and_push(clone: Path, message: str) -> str:
    git("add", "-A", cwd=clone)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=clone)
    git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone)


def ensure_demo_repo(remote: Path) -> Path:
    """The demo remote, created from the example app on first use; later runs keep its history."""
    clone = remote.parent / "code-remote-app"
    if not (remote / "HEAD").exists():
        if clone.exists():
            shutil.rmtree(clone)
        make_app_repo(EXAMPLE_APP, remote, clone)
    return clone
