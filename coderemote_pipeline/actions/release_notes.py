"""What an approver reads before saying yes: the commits between what the environment serves and the candidate
(subject and author), the files they change per area of the app (backend, frontend, infra, other), and whether the
candidate was verified where the policy asks. Markdown for the UI (the hold's metadata), lines for `approvals`."""

from __future__ import annotations

from dataclasses import dataclass, field

from coderemote_pipeline.actions.git_cli import GitError, first_line, git
from coderemote_pipeline.actions.git_remote import GitRemote
from coderemote_pipeline.rules.app_layout import AppLayout

MAX_COMMITS = 30
AREAS = ("backend", "frontend", "infra", "other")
FIRST = "all of the app's (nothing deployed to compare with)"


@dataclass(frozen=True)
class ReleaseNotes:
    since: str  # what the env serves now ("" when nothing yet)
    commits: list[tuple[str, str, str]] = field(default_factory=list)  # (sha, author, subject), newest first
    files: dict[str, list[str]] = field(default_factory=dict)  # area → paths
    verified: str = ""  # the promotion gate's verdict, "" when the env has no gate
    more: bool = False  # more commits than listed
    infra: list[str] | None = None  # what infra_stack would change (a preview), None when not asked
    # Why the commits could not be read (the remote unreachable, the commit gone): said, never shown as "none".
    unavailable: str = ""
    # Commits the env serves that the candidate lacks (a tag on an older commit, a tag moved back): it takes them out.
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    removed_more: bool = False  # more of them than listed

    def _backwards(self) -> str:
        return (f"takes {len(self.removed)}{'+' if self.removed_more else ''} commit(s) of {self.since} back out: a "
                "step back, not forward")  # fmt: skip

    def lines(self) -> list[str]:
        if self.unavailable:
            out = [f"release notes unavailable: {self.unavailable}"]
        else:
            head = f"{len(self.commits)}{'+' if self.more else ''} commit(s) since {self.since or 'nothing deployed'}"
            out = [head, *(f"  {sha[:12]} {subject} ({author})" for sha, author, subject in self.commits)]
            if self.removed:
                out += [f"  WARNING: {self._backwards()}:",
                        *(f"  - {sha[:12]} {subject} ({author})" for sha, author, subject in self.removed)]
            areas = ", ".join(f"{area} {len(paths)}" for area, paths in self.files.items() if paths)
            out.append(f"  files changed: {areas or 'none'}" if self.since else f"  files changed: {FIRST}")
        if self.verified:
            out.append(f"  promotion gate: {self.verified}")
        if self.infra is not None:
            out.append(f"  infra: {'; '.join(self.infra) if self.infra else 'no change'}")
        return out

    def markdown(self) -> str:
        if self.unavailable:
            return f"**release notes unavailable**: {self.unavailable}"
        rows = [f"**{len(self.commits)}{'+' if self.more else ''} commit(s) since {self.since or 'nothing deployed'}**",
                "", *(f"- `{sha[:12]}` {subject} — {author}" for sha, author, subject in self.commits), ""]  # fmt: skip
        if self.removed:
            rows += [f"**WARNING**: {self._backwards()}:", "",
                     *(f"- ~~`{sha[:12]}` {subject}~~ — {author}" for sha, author, subject in self.removed),
                     ""]  # fmt: skip
        if not self.since:
            rows += [f"**files changed**: {FIRST}", ""]
        for area, paths in self.files.items():
            if paths:
                rows += [f"**{area}** ({len(paths)} files): " + ", ".join(f"`{p}`" for p in paths[:20])
                         + (" …" if len(paths) > 20 else ""), ""]  # fmt: skip
        if self.verified:
            rows.append(f"**promotion gate**: {self.verified}")
        if self.infra is not None:
            rows += ["", f"**infra**: {'; '.join(self.infra) if self.infra else 'no change'}"]
        return "\n".join(rows)


def _area(path: str, layout: AppLayout) -> str:
    for area, prefix in (("backend", layout.backend_context), ("frontend", layout.frontend_dir), ("infra", "infra")):
        if prefix not in ("", ".") and (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            return area
    return "other"


def release_notes(remote: GitRemote, layout: AppLayout, live_commit: str | None, live_release: str, commit: str,
                  verified: str = "") -> ReleaseNotes:  # fmt: skip
    """The notes of `commit` against `live_commit` (None: the whole history up to it, first commits only)."""
    try:
        remote.ensure_commit(commit)
        span = [commit, f"^{live_commit}"] if live_commit and remote.rev_parse(live_commit) else [commit]
        commits = _log(remote, span)
        removed = _log(remote, [span[1][1:], f"^{commit}"]) if len(span) == 2 else []
        files: dict[str, list[str]] = {area: [] for area in AREAS}
        if len(span) == 2:
            names = git("diff", "--name-only", live_commit or "", commit, cwd=remote.mirror).decode().splitlines()
            for path in names:
                files[_area(path, layout)].append(path)
    except GitError as exc:
        return ReleaseNotes(live_release, verified=verified, unavailable=first_line(exc))
    return ReleaseNotes(live_release, commits[:MAX_COMMITS], files, verified, more=len(commits) > MAX_COMMITS,
                        removed=removed[:MAX_COMMITS], removed_more=len(removed) > MAX_COMMITS)


def _log(remote: GitRemote, span: list[str]) -> list[tuple[str, str, str]]:
    """(sha, author, subject) of the commits in `span`, newest first, one more than listed at most."""
    log = git("log", f"--max-count={MAX_COMMITS + 1}", "--format=%H%x00%an%x00%s", *span, "--", cwd=remote.mirror)
    listed = [line.split("\0", 2) for line in log.decode(errors="replace").splitlines() if line]
    return [(c[0], c[1], c[2]) for c in listed if len(c) == 3]
