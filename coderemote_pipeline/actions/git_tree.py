"""One commit's files in the mirror: a directory's tree id (a content hash used as a build key), the checks that
keep a build inside the repository (no missing path, no symlink on the way or leaving a directory), and exports.

Builds never read a working copy: every stage exports the exact tree of the release's commit from the mirror.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from pathlib import Path

from coderemote_pipeline.actions.git_cli import SYMLINK_MODE, GitError, LayoutPathError, git


class CommitTrees:
    """Tree access for a bare mirror at `self.mirror` of the remote `self.url` (GitRemote is one)."""

    mirror: Path
    url: str

    def tree_id(self, commit: str, path: str) -> str:
        """The git tree id of `path` at `commit`: a content hash of that directory, used as a build key."""
        spec = f"{commit}:{path.strip('/')}" if path.strip("/.") else f"{commit}^{{tree}}"
        try:
            return git("rev-parse", "--verify", spec, cwd=self.mirror).decode().strip()
        except GitError:
            raise GitError(f"path {path!r} does not exist in commit {commit[:12]} of {self.url!r}") from None

    def _entry(self, commit: str, path: str) -> tuple[str, str] | None:
        """(mode, type) of `path` in `commit`'s tree, or None when it is not there."""
        out = git("ls-tree", "-z", commit, "--", path, cwd=self.mirror).decode(errors="replace")
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
                raise LayoutPathError(f"{what} {path!r} does not exist in commit {commit[:12]} of {self.url!r}: point "
                                      f"{what} in the app config at a path that commit has, or deploy one that has "
                                      "it")  # fmt: skip
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
        out = git("ls-tree", "-r", "-z", commit, *spec, cwd=self.mirror).decode(errors="replace")
        root = "" if path in ("", ".") else path.rstrip("/") + "/"
        leaving = []
        for record in filter(None, out.split("\0")):
            meta, _, name = record.partition("\t")
            mode, _, sha = meta.split(" ", 2)
            if mode != SYMLINK_MODE:
                continue
            target = git("cat-file", "blob", sha, cwd=self.mirror).decode(errors="replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or not (resolved + "/").startswith(root):
                leaving.append(name)
        return leaving

    def export(self, commit: str, path: str, dest: Path) -> Path:
        """Write the files of `path` at `commit` into `dest` (created empty), as a checkout would."""
        tree = self.tree_id(commit, path)
        data = git("archive", "--format=tar", tree, cwd=self.mirror)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            _extract_data(archive, dest)
        return dest


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
