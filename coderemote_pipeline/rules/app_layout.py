"""The application's layout: where its backend, Dockerfile and frontend live inside its repository, and how it runs.

Any repository with this contract deploys by configuration alone. Every path is relative to the repository (the
Dockerfile to the backend context, the build output to the frontend directory), normalised, and refused when it
would leave the repository: `..`, an absolute path or a home directory never reach git, Docker or a message that
could quote a host file. The same paths are checked again against each commit's tree (`actions/git` refuses a
symlink or a missing entry), because a layout valid here can still name a symlink in the repository.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictFloat, model_validator

from coderemote_pipeline.rules.schema import ConfigError, StrictModel, read_yaml_mapping, said, validate


class FrontendEnvMode(StrEnum):
    # Built once per commit; env values arrive at deploy time in config.json, so every env gets the same bytes.
    RUNTIME_CONFIG = "runtime_config"
    # The app bakes API URL and release in at build time: rebuilt per env and release.
    BUILD_TIME = "build_time"


def repo_path(value: str, *, allow_root: bool = False) -> str:
    """`value` as a normalised relative POSIX path that stays inside the directory it is relative to."""
    text = str(value).strip()
    if not text or "\0" in text:
        raise ValueError("must be a non-empty relative path")
    if "\\" in text:
        raise ValueError(f"{said(text, 'the path')} uses backslashes: write paths with '/'")
    if text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        raise ValueError(f"{said(text, 'the path')} is absolute: paths are relative to the app's repository")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{said(text, 'the path')} leaves the repository: use a path inside it")
    if normal == "." and not allow_root:
        raise ValueError(f"{said(text, 'the path')} names a directory, not a file or a subdirectory")
    return normal


def _command(value: str) -> str:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"{said(value, 'the command')} is not a command line ({exc})") from None
    if not words:
        raise ValueError("is empty: give the command line to run")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value) or "://" in value:
        raise ValueError(f"{said(value)} must be a URL path starting with '/', e.g. /health")
    return value


def _check_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", value):
        raise ValueError(f"{said(value, 'the name')} must be lowercase letters, digits and _ (it names an asset check)")
    return value


RepoPath = Annotated[str, AfterValidator(repo_path)]
RepoDir = Annotated[str, AfterValidator(lambda v: repo_path(v, allow_root=True))]
Command = Annotated[str, AfterValidator(_command)]
UrlPath = Annotated[str, AfterValidator(_url_path)]


CheckName = Annotated[str, AfterValidator(_check_name)]


class Side(StrEnum):
    # On the exported backend tree, with the built image's own interpreter (a container, no network).
    BACKEND = "backend"
    # On the exported frontend tree, with the host's node (no network where the host allows it).
    FRONTEND = "frontend"


class CheckSpec(StrictModel):
    """One of the app's own checks (tests, linters): a blocking asset check of the side's build stage."""

    name: CheckName
    side: Side
    command: Command
    timeout_s: StrictFloat = Field(300.0, gt=0, le=3600)


EXAMPLE_CHECKS = (
    CheckSpec(name="backend_tests", side=Side.BACKEND, command="python3 -m unittest discover -s tests"),
    CheckSpec(name="backend_lint", side=Side.BACKEND, command="python3 tools/lint.py app tests tools"),
    CheckSpec(name="frontend_check", side=Side.FRONTEND, command="node tools/check.mjs"),
)


class AppLayout(StrictModel):
    """The fields of an app config file (`--app-config`, CODEREMOTE_APP_CONFIG); defaults fit the example app."""

    backend_context: RepoDir = Field("backend", description="Docker build context, relative to the repository")
    dockerfile: RepoPath = Field("Dockerfile", description="relative to backend_context")
    container_command: Command = Field("python3 -m app.server", description="plain HTTP entry point (HOST, PORT)")
    health_path: UrlPath = Field("/health", description="JSON with release and commit")
    frontend_dir: RepoDir = "frontend"
    frontend_build_command: Command = "npm run build"
    frontend_output_dir: RepoPath = Field("dist", description="relative to frontend_dir")
    frontend_env_mode: FrontendEnvMode = FrontendEnvMode.RUNTIME_CONFIG
    # The app's own tests and linters, run once per commit before anything goes live (defaults: the example app's;
    # another layout declares its own, or `checks: []`).
    checks: tuple[CheckSpec, ...] = EXAMPLE_CHECKS

    @model_validator(mode="after")
    def _unique_checks(self) -> AppLayout:
        names = [c.name for c in self.checks]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"checks: every check needs its own name; {', '.join(twice)} is used twice")
        return self

    def checks_of(self, side: Side) -> tuple[CheckSpec, ...]:
        return tuple(c for c in self.checks if c.side == side)

    @property
    def dockerfile_in_repo(self) -> str:
        """The Dockerfile's path from the repository root (what the commit's tree is checked for)."""
        return posixpath.normpath(posixpath.join(self.backend_context, self.dockerfile))

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> AppLayout:
        return validate(cls, json.loads(text or "{}"), source="recorded app layout")


def load_app_layout(path: Path | None) -> AppLayout:
    """The layout in an app config file (None: the defaults); every error is one ConfigError line."""
    if path is None:
        return AppLayout()
    data: dict[str, Any] = read_yaml_mapping(path, what="app config")
    return validate(AppLayout, data, source=f"app config {path}")


__all__ = ["AppLayout", "CheckSpec", "ConfigError", "FrontendEnvMode", "Side", "load_app_layout", "repo_path"]
