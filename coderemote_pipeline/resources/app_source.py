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
from pathlib import Path

import dagster as dg

from coderemote_pipeline.actions.git_remote import GitRemote, LayoutPathError
from coderemote_pipeline.rules.app_layout import AppLayout, FrontendEnvMode
from coderemote_pipeline.rules.release_keys import Release

__all__ = ["AppSource", "FrontendBuild", "FrontendBuildFailed", "FrontendEnvMode"]

FRONTEND_BUILD_TIMEOUT_S = 600
BUILD_LOG_TAIL_CHARS = 3000


class FrontendBuildFailed(RuntimeError):
    pass


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
    # The app's checks (rules.app_layout.CheckSpec) as JSON: a resource field holds plain values only.
    checks_json: str = "[]"

    @property
    def layout(self) -> AppLayout:
        """The layout fields, validated as a whole (paths relative and inside the repository)."""
        fields = {name: getattr(self, name) for name in AppLayout.model_fields if name != "checks"}
        return AppLayout.model_validate({**fields, "checks": json.loads(self.checks_json)})

    def remote(self) -> GitRemote:
        return GitRemote(self.remote_url, Path(self.work_dir) / "git")

    def commit_of(self, release: Release) -> str:
        return self.remote().commit_of(release)

    def backend_build_key(self, commit: str, base_image_id: str) -> str:
        """Identity of an API image: the context's tree, the Dockerfile, the base image and the commit label."""
        remote = self.remote()
        self.check_backend_paths(commit)
        inputs = {
            "context_tree": remote.tree_id(commit, self.backend_context),
            "dockerfile": self.dockerfile,
            "base_image": base_image_id,
            "commit": commit,
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def check_backend_paths(self, commit: str) -> None:
        """The build context is a directory and the Dockerfile a plain file of `commit`, no symlink on the way."""
        layout, remote = self.layout, self.remote()
        remote.require_path(commit, layout.backend_context, kind="tree", what="backend_context")
        remote.require_path(commit, layout.dockerfile_in_repo, kind="blob", what="dockerfile")
        _refuse_links_out(remote, commit, layout.backend_context, "backend_context")

    def check_paths(self, commit: str) -> None:
        """Every layout path against `commit`'s tree: what `deploy` asks before it launches anything."""
        self.check_backend_paths(commit)
        remote = self.remote()
        remote.require_path(commit, self.layout.frontend_dir, kind="tree", what="frontend_dir")
        _refuse_links_out(remote, commit, self.layout.frontend_dir, "frontend_dir")

    def export_backend(self, commit: str, dest: Path) -> Path:
        """The build context of `commit`, exported from the mirror; its Dockerfile checked to be a file inside it."""
        self.check_backend_paths(commit)
        if dest.exists():
            shutil.rmtree(dest)
        context = self.remote().export(commit, self.backend_context, dest)
        inside(context, self.layout.dockerfile, what="dockerfile", file=True)
        return context

    def build_frontend(self, commit: str, build_env: dict[str, str]) -> FrontendBuild:
        """Build the frontend of `commit` once per (tree, build-time values); later calls reuse the output."""
        remote = self.remote()
        remote.require_path(commit, self.layout.frontend_dir, kind="tree", what="frontend_dir")
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
        if proc.returncode == 0 and output.exists():
            inside(source, self.layout.frontend_output_dir, what="frontend_output_dir", file=False)
        if proc.returncode != 0 or not output.is_dir():
            tail = (proc.stdout + proc.stderr)[-BUILD_LOG_TAIL_CHARS:]
            reason = f"exited {proc.returncode}" if proc.returncode else f"produced no {self.frontend_output_dir}/"
            raise FrontendBuildFailed(
                f"frontend build `{self.frontend_build_command}` in {self.frontend_dir}/ of {commit[:12]} {reason}\n"
                f"--- build output (tail) ---\n{tail}"
            )
        (root / "complete").write_text(commit)
        return FrontendBuild(output, built=True, seconds=time.monotonic() - started, build_key=key)


def inside(root: Path, relative: str, *, what: str, file: bool) -> Path:
    """`root / relative`, refused unless it is a real file (or directory) that resolves inside `root`."""
    path = root / relative
    resolved, top = path.resolve(), root.resolve()
    if path.is_symlink() or not resolved.is_relative_to(top):
        raise LayoutPathError(f"{what} {relative!r} is a link that leaves the repository: refused")
    if file and not resolved.is_file():
        raise LayoutPathError(f"{what} {relative!r} is not a file of the exported tree")
    return resolved


def _refuse_links_out(remote: GitRemote, commit: str, path: str, what: str) -> None:
    leaving = remote.links_leaving(commit, path)
    if leaving:
        raise LayoutPathError(
            f"{what} {path!r} of commit {commit[:12]} holds symlink(s) pointing outside it: "
            f"{', '.join(repr(n) for n in leaving[:5])}. Builds take only the directory's own files: replace the "
            f"link with the file, or widen {what}"
        )
