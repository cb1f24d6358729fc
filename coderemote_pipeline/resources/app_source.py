"""The application being released, as configuration: its git remote and where things live inside it.

Defaults fit `examples/code-remote-app`; any repository with the same contract (a Dockerfile taking BASE_IMAGE,
an HTTP entry point, a health path reporting the release, a frontend with a build command) deploys by changing
these fields only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import dagster as dg

from coderemote_pipeline.git import GitRemote
from coderemote_pipeline.release_rules import Release

FRONTEND_BUILD_TIMEOUT_S = 600
BUILD_LOG_TAIL_CHARS = 3000


class FrontendBuildFailed(RuntimeError):
    pass


class FrontendEnvMode(StrEnum):
    # Built once per commit; env values arrive at deploy time in config.json, so every env gets the same bytes.
    RUNTIME_CONFIG = "runtime_config"
    # The app bakes API URL and release in at build time: rebuilt per env and release.
    BUILD_TIME = "build_time"


@dataclass(frozen=True)
class FrontendBuild:
    directory: Path
    built: bool
    seconds: float
    build_key: str


class AppSource(dg.ConfigurableResource):
    remote_url: str
    work_dir: str
    backend_context: str = "backend"
    dockerfile: str = "Dockerfile"
    container_command: str = "python3 -m app.server"
    health_path: str = "/health"
    frontend_dir: str = "frontend"
    frontend_build_command: str = "npm run build"
    frontend_output_dir: str = "dist"
    frontend_env_mode: FrontendEnvMode = FrontendEnvMode.RUNTIME_CONFIG

    def remote(self) -> GitRemote:
        return GitRemote(self.remote_url, Path(self.work_dir) / "git")

    def commit_of(self, release: Release) -> str:
        return self.remote().commit_of(release)

    def backend_build_key(self, commit: str, base_image_id: str) -> str:
        """Identity of an API image: the context's tree, the Dockerfile, the base image and the commit label."""
        remote = self.remote()
        inputs = {
            "context_tree": remote.tree_id(commit, self.backend_context),
            "dockerfile": self.dockerfile,
            "base_image": base_image_id,
            "commit": commit,
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def export_backend(self, commit: str, dest: Path) -> Path:
        if dest.exists():
            shutil.rmtree(dest)
        return self.remote().export(commit, self.backend_context, dest)

    def build_frontend(self, commit: str, build_env: dict[str, str]) -> FrontendBuild:
        """Build the frontend of `commit` once per (tree, build-time values); later calls reuse the output."""
        remote = self.remote()
        inputs = {
            "tree": remote.tree_id(commit, self.frontend_dir),
            "command": self.frontend_build_command,
            "output": self.frontend_output_dir,
            "env": build_env,
        }
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        root = Path(self.work_dir) / "builds" / "frontend" / key
        output = root / "src" / self.frontend_output_dir
        if (root / "complete").exists():
            return FrontendBuild(output, built=False, seconds=0.0, build_key=key)
        started = time.monotonic()
        if root.exists():
            shutil.rmtree(root)
        source = remote.export(commit, self.frontend_dir, root / "src")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "CI": "true", **build_env}
        proc = subprocess.run(
            shlex.split(self.frontend_build_command),
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=FRONTEND_BUILD_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0 or not output.is_dir():
            tail = (proc.stdout + proc.stderr)[-BUILD_LOG_TAIL_CHARS:]
            reason = f"exited {proc.returncode}" if proc.returncode else f"produced no {self.frontend_output_dir}/"
            raise FrontendBuildFailed(
                f"frontend build `{self.frontend_build_command}` in {self.frontend_dir}/ of {commit[:12]} {reason}\n"
                f"--- build output (tail) ---\n{tail}"
            )
        (root / "complete").write_text(commit)
        return FrontendBuild(output, built=True, seconds=time.monotonic() - started, build_key=key)
