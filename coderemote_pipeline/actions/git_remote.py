"""The app's git remote: a bare mirror per remote URL, and what its refs say (branches, tags, commits, history).

What one commit's files are (tree ids, path checks, exports) is in git_tree.py; running git in git_cli.py.
"""

from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coderemote_pipeline.actions.git_cli import (
    GitError,
    LayoutPathError,
    RefNotFound,
    RemoteUnreachable,
    first_line,
    git,
)
from coderemote_pipeline.actions.git_tree import CommitTrees
from coderemote_pipeline.rules.release_keys import (
    Release,
    ReleaseKind,
    commit_release_key,
    is_version_tag_name,
)
from coderemote_pipeline.rules.remote_urls import check_remote

DEFAULT_BRANCH = "main"
__all__ = ["GitError", "GitRemote", "LayoutPathError", "RefNotFound", "RemoteUnreachable", "ResolvedRef"]


@dataclass(frozen=True)
class ResolvedRef:
    ref: str
    commit: str
    release_key: str


class GitRemote(CommitTrees):
    """A remote URL (path, file://, ssh, https) and its bare mirror under `mirror_root`."""

    def __init__(self, url: str, mirror_root: Path):
        # Refused here: an option git would run (`--upload-pack=...`), or a credential every message would show.
        self.url = check_remote(url, name="app git remote")
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        # The stem only helps a reader: the digest keeps mirrors apart, and a long URL must not make a name the
        # file system refuses (255 bytes, not characters: 60 emoji are 240).
        stem = Path(url.rstrip("/")).stem.encode()[:60].decode(errors="ignore")
        self.mirror = Path(mirror_root) / f"{stem or 'app'}-{digest}.git"

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
                    git("init", "--bare", "--quiet", str(self.mirror))
                git(
                    "fetch", "--quiet", "--prune", "--force", "--", self.url,
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                    cwd=self.mirror,
                )  # fmt: skip
            except GitError as exc:
                raise RemoteUnreachable(
                    f"app git remote {self.url!r} is unreachable ({first_line(exc)}). Check the URL and that git can "
                    "read it (CODEREMOTE_APP_REMOTE or --remote set it; a retry or rollback uses its run's)"
                ) from None

    def ls_remote(self) -> dict[str, str]:
        """refs → commit on the remote, without fetching objects (cost independent of history length)."""
        try:
            out = git("ls-remote", "--heads", "--tags", "--", self.url).decode()
        except GitError as exc:
            # Read by the sensors too, where neither --remote nor a run's remote applies.
            raise RemoteUnreachable(f"app git remote {self.url!r} is unreachable ({first_line(exc)}). Check the URL "
                                    "and that git can read it") from None  # fmt: skip
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
            return git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", cwd=self.mirror).decode().strip()
        except GitError:
            return None

    def resolve(self, ref: str) -> ResolvedRef:
        """A tag, branch or commit of the remote → its commit and release key. Fetches first."""
        self.sync()
        tagged = self.rev_parse(f"refs/tags/{ref}")
        if tagged and is_version_tag_name(ref):
            return ResolvedRef(ref=ref, commit=tagged, release_key=ref)
        branch_commit = self.rev_parse(f"refs/heads/{ref}")
        if branch_commit:
            return ResolvedRef(ref=ref, commit=branch_commit, release_key=commit_release_key(ref, branch_commit))
        # A tag outside the `v*` namespace (`release-1`, `last-good`) is a name for a commit, not a release: it
        # deploys as that commit, where commits may go.
        hex_digits = bool(ref) and all(c in "0123456789abcdef" for c in ref.lower())
        # Copied from a UI that shows commits in capitals, a commit id is still that commit.
        commit = tagged or (self.rev_parse(ref.lower()) if hex_digits and len(ref) >= 7 else None)
        if commit:
            return ResolvedRef(
                ref=ref, commit=commit, release_key=commit_release_key(self._home_branch(commit), commit)
            )
        if hex_digits and len(ref) < 7:
            raise RefNotFound(f"{ref!r} is no branch or tag of the app remote, and too short for a commit id: give "
                              "at least a commit's first 7 characters")  # fmt: skip
        if is_version_tag_name(f"v{ref}") and self.rev_parse(f"refs/tags/v{ref}"):
            raise RefNotFound(f"{ref!r} is not a branch, version tag or commit of the app remote; its version tag "
                              f"is 'v{ref}': deploy that")  # fmt: skip
        raise RefNotFound(
            f"{ref!r} is not a branch, version tag or commit of the app remote {self.url!r}. "
            f"List its branches and tags with `git ls-remote {self.url}`"
        )

    def _home_branch(self, commit: str) -> str:
        out = git("branch", "--format=%(refname:short)", "--contains", commit, cwd=self.mirror).decode().split()
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
                    git("init", "--bare", "--quiet", str(self.mirror))
                git("fetch", "--quiet", "--force", "--no-tags", "--", self.url, *[f"+{r}:{r}" for r in refs],
                    cwd=self.mirror)  # fmt: skip
            except GitError as exc:
                raise RemoteUnreachable(
                    f"app git remote {self.url!r}: cannot fetch {', '.join(refs)} ({first_line(exc)})"
                ) from None

    def commits_between(self, old: str, new: str, limit: int = 50) -> list[tuple[str, str]] | None:
        """(sha, subject) of the commits `new` has and `old` has not, newest first, at most `limit`.

        None when the mirror does not know `old` (e.g. it was force-pushed away before the mirror ever saw it).
        """
        try:
            out = git("log", f"--max-count={limit}", "--format=%H%x00%s", new, f"^{old}", "--", cwd=self.mirror)
        except GitError:
            return None
        lines = (line.partition("\0") for line in out.decode(errors="replace").splitlines())
        return [(sha, subject) for sha, _, subject in lines]

    def is_ancestor(self, commit: str, of_ref: str) -> bool:
        try:
            git("merge-base", "--is-ancestor", commit, of_ref, cwd=self.mirror)
        except GitError:
            return False
        return True

    def commit_time(self, commit: str) -> float | None:
        """When `commit` was made (committer time), if the mirror has it: the start of its lead time."""
        try:
            return float(git("show", "-s", "--format=%ct", commit, cwd=self.mirror).decode().strip())
        except (GitError, ValueError):
            return None

    def merged_at(self, commit: str, ref: str) -> float | None:
        """When `ref` got `commit` through a merge: the committer time of the first commit on its first-parent
        line that has it (found by bisection: having it only grows along that line). None when `commit` is on
        that line itself, or its first parent (a direct push, a fast-forward: no trace of when), or not in `ref`."""
        try:
            line = git("rev-list", "--first-parent", "--reverse", f"{commit}..{ref}", "--",
                       cwd=self.mirror).decode().split()  # fmt: skip
        except GitError:
            return None
        low, high = 0, len(line)
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if self.is_ancestor(commit, line[mid]) else (mid + 1, high)
        if low == len(line) or self.rev_parse(f"{line[low]}^1") == commit:
            return None
        return self.commit_time(line[low])

    def describe_commit(self, commit: str) -> dict[str, str]:
        fmt = "%H%x00%an%x00%aI%x00%s"
        sha, author, date, subject = git("show", "-s", f"--format={fmt}", commit, cwd=self.mirror).decode().split("\0")
        return {"commit": sha, "author": author, "date": date, "subject": subject.strip()}
