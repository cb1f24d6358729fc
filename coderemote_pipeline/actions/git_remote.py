"""The app's git remote: a bare mirror per remote URL, ref resolution and exports of one commit's files.

Builds never read a working copy: every stage exports the exact tree of the release's commit from the mirror.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import posixpath
import subprocess
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.release_keys import (
    Release,
    ReleaseKind,
    commit_release_key,
    is_version_tag_name,
)

GIT_TIMEOUT_S = 120
DEFAULT_BRANCH = "main"


class GitError(UserError, RuntimeError):
    pass


class RemoteUnreachable(GitError):
    pass


class RefNotFound(GitError):
    pass


class LayoutPathError(GitError):
    """An app-config path that the release's commit does not hold as a plain file or directory."""


SYMLINK_MODE = "120000"


@dataclass(frozen=True)
class ResolvedRef:
    ref: str
    commit: str
    release_key: str


def _git(*args: str, cwd: Path | None = None, input_bytes: bytes | None = None) -> bytes:
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


def _first_line(exc: Exception) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), str(exc)).removeprefix("fatal: ")


class GitRemote:
    """A remote URL (path, file://, ssh, https) and its bare mirror under `mirror_root`."""

    def __init__(self, url: str, mirror_root: Path):
        self.url = url
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.mirror = Path(mirror_root) / f"{Path(url.rstrip('/')).stem or 'app'}-{digest}.git"

    @contextmanager
    def _locked(self):
        self.mirror.parent.mkdir(parents=True, exist_ok=True)
        with open(self.mirror.parent / f"{self.mirror.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def sync(self) -> None:
        """Fetch every branch and tag into the mirror (prune deleted ones; moved tags follow the remote)."""
        with self._locked():
            try:
                if not (self.mirror / "HEAD").exists():
                    _git("init", "--bare", "--quiet", str(self.mirror))
                _git(
                    "fetch", "--quiet", "--prune", "--force", self.url,
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                    cwd=self.mirror,
                )  # fmt: skip
            except GitError as exc:
                raise RemoteUnreachable(
                    f"app git remote {self.url!r} is unreachable ({_first_line(exc)}). Check the URL "
                    "(CODEREMOTE_APP_REMOTE or app_source.remote_url) and that git can read it"
                ) from None

    def ls_remote(self) -> dict[str, str]:
        """refs → commit on the remote, without fetching objects (cost independent of history length)."""
        try:
            out = _git("ls-remote", "--heads", "--tags", self.url).decode()
        except GitError as exc:
            raise RemoteUnreachable(f"app git remote {self.url!r} is unreachable ({_first_line(exc)})") from None
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            # Peeled annotated tags (`refs/tags/v1^{}`) name the commit; they win over the tag object.
            if ref.endswith("^{}"):
                refs[ref[:-3]] = sha
            else:
                refs.setdefault(ref, sha)
        return refs

    def rev_parse(self, spec: str) -> str | None:
        if not (self.mirror / "HEAD").exists():
            return None
        try:
            return _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", cwd=self.mirror).decode().strip()
        except GitError:
            return None

    def resolve(self, ref: str) -> ResolvedRef:
        """A tag, branch or commit of the remote → its commit and release key. Fetches first."""
        self.sync()
        if self.rev_parse(f"refs/tags/{ref}") and is_version_tag_name(ref):
            return ResolvedRef(ref=ref, commit=self.rev_parse(f"refs/tags/{ref}") or "", release_key=ref)
        branch_commit = self.rev_parse(f"refs/heads/{ref}")
        if branch_commit:
            return ResolvedRef(ref=ref, commit=branch_commit, release_key=commit_release_key(ref, branch_commit))
        commit = self.rev_parse(ref) if all(c in "0123456789abcdef" for c in ref) and len(ref) >= 7 else None
        if commit:
            return ResolvedRef(
                ref=ref, commit=commit, release_key=commit_release_key(self._home_branch(commit), commit)
            )
        raise RefNotFound(
            f"{ref!r} is not a branch, version tag or commit of the app remote {self.url!r}. "
            f"List what exists with `git ls-remote {self.url}`"
        )

    def _home_branch(self, commit: str) -> str:
        out = _git("branch", "--format=%(refname:short)", "--contains", commit, cwd=self.mirror).decode().split()
        if DEFAULT_BRANCH in out:
            return DEFAULT_BRANCH
        return out[0] if out else "commit"

    def commit_of(self, release: Release) -> str:
        """The commit a release key names, fetching if the mirror does not know it yet."""
        spec = f"refs/tags/{release.key}" if release.kind is not ReleaseKind.COMMIT else release.commit_prefix
        assert spec is not None
        commit = self.rev_parse(spec)
        if commit is None:
            self.sync()
            commit = self.rev_parse(spec)
        if commit is None:
            raise RefNotFound(f"release {release.key!r} names no tag or commit on the app remote {self.url!r}")
        return commit

    def ensure_commit(self, commit: str) -> str:
        """`commit`, fetched into the mirror first if the mirror does not have it yet."""
        if self.rev_parse(commit) is None:
            self.sync()
            if self.rev_parse(commit) is None:
                raise RefNotFound(f"commit {commit[:12]} is not on the app remote {self.url!r} (force-pushed away?)")
        return commit

    def fetch_refs(self, *refs: str) -> None:
        """Fetch only these refs (`refs/heads/main`, `refs/tags/v1.2.3`) into the mirror, no other tags.

        What the sensors need to reason about history: once the mirror exists, the cost follows what changed since
        the last fetch, not the size of the repository (a full `sync` also fetches every branch and tag).
        """
        with self._locked():
            try:
                if not (self.mirror / "HEAD").exists():
                    _git("init", "--bare", "--quiet", str(self.mirror))
                _git(
                    "fetch", "--quiet", "--force", "--no-tags", self.url, *[f"+{r}:{r}" for r in refs], cwd=self.mirror
                )
            except GitError as exc:
                raise RemoteUnreachable(
                    f"app git remote {self.url!r}: cannot fetch {', '.join(refs)} ({_first_line(exc)})"
                ) from None

    def commits_between(self, old: str, new: str, limit: int = 50) -> list[tuple[str, str]] | None:
        """(sha, subject) of the commits `new` has and `old` has not, newest first, at most `limit`.

        None when the mirror does not know `old` (e.g. it was force-pushed away before the mirror ever saw it).
        """
        try:
            out = _git("log", f"--max-count={limit}", "--format=%H%x00%s", new, f"^{old}", "--", cwd=self.mirror)
        except GitError:
            return None
        lines = (line.partition("\0") for line in out.decode(errors="replace").splitlines())
        return [(sha, subject) for sha, _, subject in lines]

    def is_ancestor(self, commit: str, of_ref: str) -> bool:
        try:
            _git("merge-base", "--is-ancestor", commit, of_ref, cwd=self.mirror)
        except GitError:
            return False
        return True

    def tree_id(self, commit: str, path: str) -> str:
        """The git tree id of `path` at `commit`: a content hash of that directory, used as a build key."""
        spec = f"{commit}:{path.strip('/')}" if path.strip("/.") else f"{commit}^{{tree}}"
        try:
            return _git("rev-parse", "--verify", spec, cwd=self.mirror).decode().strip()
        except GitError:
            raise GitError(f"path {path!r} does not exist in commit {commit[:12]} of {self.url!r}") from None

    def _entry(self, commit: str, path: str) -> tuple[str, str] | None:
        """(mode, type) of `path` in `commit`'s tree, or None when it is not there."""
        out = _git("ls-tree", "-z", commit, "--", path, cwd=self.mirror).decode(errors="replace")
        for record in out.split("\0"):
            meta, _, name = record.partition("\t")
            if name == path:
                mode, kind, _ = meta.split(" ", 2)
                return mode, kind
        return None

    def require_path(self, commit: str, path: str, *, kind: str, what: str) -> None:
        """Refuse unless `path` is a `kind` ("tree" or "blob") of `commit`, reached through directories only.

        A symlink anywhere on the way (`backend -> /etc`, a Dockerfile linking to a host file) is refused: the
        build must only ever see the repository's own files. Messages quote the path, never a file's content.
        """
        if path in ("", "."):
            return
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            entry = self._entry(commit, prefix)
            if entry is None:
                raise LayoutPathError(f"{what} {path!r} does not exist in commit {commit[:12]} of {self.url!r}")
            mode, found = entry
            if mode == SYMLINK_MODE:
                raise LayoutPathError(
                    f"{what} {path!r} is refused: {prefix!r} is a symlink in commit {commit[:12]}; the build takes "
                    "only files inside the repository, so point the app config at the real path"
                )
            wanted = kind if depth == len(parts) else "tree"
            if found != wanted:
                noun = {"tree": "a directory", "blob": "a file"}[wanted]
                raise LayoutPathError(f"{what} {prefix!r} is not {noun} in commit {commit[:12]}")

    def links_leaving(self, commit: str, path: str) -> list[str]:
        """Symlinks under `path` in `commit` whose target lies outside `path` (absolute, or climbing out)."""
        spec = [] if path in ("", ".") else ["--", path]
        out = _git("ls-tree", "-r", "-z", commit, *spec, cwd=self.mirror).decode(errors="replace")
        root = "" if path in ("", ".") else path.rstrip("/") + "/"
        leaving = []
        for record in filter(None, out.split("\0")):
            meta, _, name = record.partition("\t")
            mode, _, sha = meta.split(" ", 2)
            if mode != SYMLINK_MODE:
                continue
            target = _git("cat-file", "blob", sha, cwd=self.mirror).decode(errors="replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or not (resolved + "/").startswith(root):
                leaving.append(name)
        return leaving

    def export(self, commit: str, path: str, dest: Path) -> Path:
        """Write the files of `path` at `commit` into `dest` (created empty), as a checkout would."""
        tree = self.tree_id(commit, path)
        data = _git("archive", "--format=tar", tree, cwd=self.mirror)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            _extract_data(archive, dest)
        return dest

    def commit_time(self, commit: str) -> float | None:
        """When `commit` was made (committer time), if the mirror has it: the start of its lead time."""
        try:
            return float(_git("show", "-s", "--format=%ct", commit, cwd=self.mirror).decode().strip())
        except (GitError, ValueError):
            return None

    def describe_commit(self, commit: str) -> dict[str, str]:
        fmt = "%H%x00%an%x00%aI%x00%s"
        sha, author, date, subject = _git("show", "-s", f"--format={fmt}", commit, cwd=self.mirror).decode().split("\0")
        return {"commit": sha, "author": author, "date": date, "subject": subject.strip()}


def _extract_data(archive: tarfile.TarFile, dest: Path) -> None:
    """Extract only plain files, directories and links that stay inside `dest` (tarfile's "data" filter).

    The filter argument exists from Python 3.11.4; Debian 12's python3 (3.11.2, the code-location image's) lacks it,
    so there the same rules are applied here.
    """
    if hasattr(tarfile, "data_filter"):
        try:
            archive.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            name = getattr(getattr(exc, "tarinfo", None), "name", "an entry")
            raise LayoutPathError(
                f"refusing {name!r} of the exported tree: it is a link or special file that points outside the "
                "repository"
            ) from None
        return
    root = dest.resolve()
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        link = ((target.parent if member.issym() else root) / member.linkname).resolve()
        unsafe = not (member.isfile() or member.isdir() or member.issym() or member.islnk())
        if (
            unsafe
            or not target.is_relative_to(root)
            or ((member.issym() or member.islnk()) and not link.is_relative_to(root))
        ):
            raise LayoutPathError(
                f"refusing {member.name!r} of the exported tree: it is a link or special file that points outside "
                "the repository"
            )
    archive.extractall(dest)
