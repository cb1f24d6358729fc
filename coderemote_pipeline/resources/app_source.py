"""The application being released, as configuration: its git remote and where things live inside it.

Defaults fit `examples/code-remote-app`; any repository with the same contract (a Dockerfile taking BASE_IMAGE,
an HTTP entry point, a health path reporting the release, a frontend with a build command) deploys by changing
these fields only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from coderemote_pipeline.actions.git_remote import GitRemote, LayoutPathError
from coderemote_pipeline.actions.session_commands import run_in_session
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
    seconds: float  # the build's own seconds (0.0 when reused)
    build_key: str
    ahead: bool = False  # built in the background while the image built (start_frontend_build)
    waited_s: float = 0.0  # for a build in progress


# Builds started ahead in this process, by (remote, work dir, commit, build values): one at a time each.
_AHEAD: dict[tuple[str, str, str, str], threading.Thread] = {}
_AHEAD_LOCK = threading.Lock()


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

    def scratch_root(self) -> Path:
        """Where a deploy's scratch dirs go (actions/scratch.py): beside the mirror and the build cache."""
        return Path(self.work_dir) / "scratch"

    def export_backend(self, commit: str, dest: Path) -> Path:
        """The build context of `commit`, exported from the mirror; its Dockerfile checked to be a file inside it."""
        self.check_backend_paths(commit)
        if dest.exists():
            shutil.rmtree(dest)
        context = self.remote().export(commit, self.backend_context, dest)
        inside(context, self.layout.dockerfile, what="dockerfile", file=True)
        return context

    def build_env(self, *, release: str, api_url: str, env: str) -> dict[str, str]:
        """The values the frontend build sees: none in the runtime-config mode (one build serves every
        environment, config.json says where it is), the environment's in the build-time mode."""
        if self.frontend_env_mode is FrontendEnvMode.RUNTIME_CONFIG:
            return {}
        return {"APP_RELEASE": release, "API_URL": api_url, "APP_ENV": env}

    def start_frontend_build(self, commit: str, build_env: dict[str, str], *, by: str) -> None:
        """Build `commit`'s frontend with `build_env` in the background, for `frontend_bundle` of run `by` to find
        done (or in progress: it waits). What lets one process run both branches at once: while this process waits
        on the Docker engine for the image, npm works beside it. A failure here is left for frontend_bundle to meet
        and report."""
        key = (self.remote_url, self.work_dir, commit, json.dumps(build_env, sort_keys=True))
        with _AHEAD_LOCK:
            if key in _AHEAD and _AHEAD[key].is_alive():
                return
            # A daemon: a run that failed before its frontend stage does not wait for this build to exit.
            worker = threading.Thread(target=self._build_quietly, args=(commit, build_env, by),
                                      name=f"frontend-{commit[:8]}", daemon=True)  # fmt: skip
            _AHEAD[key] = worker
        worker.start()

    def _build_quietly(self, commit: str, build_env: dict[str, str], by: str) -> None:
        with contextlib.suppress(Exception):
            self.build_frontend(commit, build_env, by=by)

    def build_frontend(self, commit: str, build_env: dict[str, str], *, by: str = "") -> FrontendBuild:
        """Build the frontend of `commit` once per (tree, build-time values); later calls reuse the output. One
        build at a time per key, across threads and processes: a caller that finds one in progress waits for it.
        `by` (a run id) is written beside the output, so the run that started a build ahead says it built it."""
        remote = self.remote()
        remote.require_path(commit, self.layout.frontend_dir, kind="tree", what="frontend_dir")
        inputs = {
            "tree": remote.tree_id(commit, self.frontend_dir),
            "command": self.frontend_build_command,
            "output": self.frontend_output_dir,
            "env": build_env,
        }
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        builds = Path(self.work_dir) / "builds"
        root = builds / "frontend" / key
        for folder in ("frontend", "frontend-locks", "frontend-partial"):
            (builds / folder).mkdir(parents=True, exist_ok=True)
        with open(builds / "frontend-locks" / f"{key}.lock", "w") as lock:  # closing it releases the lock
            waited = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build_locked(commit, build_env, root, key, by, time.monotonic() - waited)

    def _build_locked(
        self, commit: str, build_env: dict[str, str], root: Path, key: str, by: str, waited: float
    ) -> FrontendBuild:
        output = root / "src" / self.frontend_output_dir
        if (root / "complete").exists():
            done = _completion(root / "complete")
            mine = bool(by) and done.get("by") == by
            return FrontendBuild(output, built=mine, seconds=float(done.get("seconds", 0.0)) if mine else 0.0,
                                 build_key=key, ahead=mine, waited_s=waited)  # fmt: skip
        started = time.monotonic()
        # Built in a folder of this call's own, then moved into place whole: a build left running by a process
        # that was killed writes only into its own folder, never into the cache.
        work = root.parent.parent / "frontend-partial" / f"{key}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            source = self.remote().export(commit, self.frontend_dir, work / "src")
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "CI": "true", **build_env}
            proc = run_in_session(shlex.split(self.frontend_build_command), cwd=source, env=env,
                                  timeout=FRONTEND_BUILD_TIMEOUT_S)
            built = source / self.frontend_output_dir
            if proc.returncode == 0 and built.exists():
                inside(source, self.layout.frontend_output_dir, what="frontend_output_dir", file=False)
            if proc.returncode == 0 and built.is_dir():
                seconds = time.monotonic() - started
                (work / "complete").write_text(json.dumps({"commit": commit, "seconds": round(seconds, 3),
                                                           "by": by}))  # fmt: skip
                shutil.rmtree(root, ignore_errors=True)
                work.rename(root)
                return FrontendBuild(output, built=True, seconds=seconds, build_key=key)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        tail = (proc.stdout + proc.stderr)[-BUILD_LOG_TAIL_CHARS:]
        reason = (f"did not finish within {FRONTEND_BUILD_TIMEOUT_S} s" if proc.timed_out
                  else f"exited {proc.returncode}" if proc.returncode
                  else f"produced no {self.frontend_output_dir}/")  # fmt: skip
        raise FrontendBuildFailed(
            f"frontend build `{self.frontend_build_command}` in {self.frontend_dir}/ of {commit[:12]} {reason}\n"
            f"--- build output (tail) ---\n{tail}"
        )


def _completion(marker: Path) -> dict:
    # Builds of before this format wrote the bare commit.
    try:
        found = json.loads(marker.read_text())
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


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
