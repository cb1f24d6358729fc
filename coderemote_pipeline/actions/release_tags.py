"""What git says about a release tag in the app's mirror: who created it (for the no-self-approval rule) and whether
its signature verifies against an environment's allowed signers (git's own `verify-tag` with
`gpg.ssh.allowedSignersFile`; SSH signatures verify offline).
"""

from __future__ import annotations

from pathlib import Path

from coderemote_pipeline.actions.git_cli import GitError, first_line, git
from coderemote_pipeline.actions.git_remote import GitRemote
from coderemote_pipeline.rules.approvers import Creator
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.release_keys import MAIN_REF, Release, ReleaseKind


def creator(remote: GitRemote, release: Release, commit: str) -> Creator | None:
    """The tagger of an annotated release tag, else the committer of its commit; None when git cannot say."""
    try:
        if release.kind is not ReleaseKind.COMMIT:
            ref = f"refs/tags/{release.key}"
            if remote.rev_parse(ref) is None:
                remote.fetch_refs(ref)
            out = git("for-each-ref", "--format=%(objecttype)%00%(taggername)%00%(taggeremail)", ref, cwd=remote.mirror)
            kind, name, email = [*out.decode(errors="replace").strip().split("\0"), "", "", ""][:3]
            if kind == "tag" and email:
                return Creator(name, email.strip("<>"), "tagger")
        out = git("show", "-s", "--format=%cn%x00%ce", remote.ensure_commit(commit), cwd=remote.mirror)
        name, _, email = out.decode(errors="replace").strip().partition("\0")
        return Creator(name, email, "committer")
    except GitError:
        return None


def off_main_refusal(remote: GitRemote, deploy: Deployment) -> str | None:
    """Why `deploy` may not go out: a stable tag for an env of stable tags whose commit is not on main as the mirror
    has it (the CLI's refusal before a run, and the switch's whatever launched the run). None where main is unknown
    here: nothing to judge by."""
    if not deploy.must_be_on_main or remote.rev_parse(MAIN_REF) is None:
        return None
    return None if remote.is_ancestor(deploy.commit, MAIN_REF) else deploy.off_main()


def signature_refusal(remote: GitRemote, release: Release, allowed_signers: Path) -> str | None:
    """Why `release`'s tag does not verify against `allowed_signers` (unsigned, lightweight, unknown key, bad
    signature), or None when it does."""
    if release.kind is ReleaseKind.COMMIT:
        return f"{release.key} is a commit, not a signed version tag"
    ref = f"refs/tags/{release.key}"
    if remote.rev_parse(ref) is None:
        remote.fetch_refs(ref)
    config = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
    try:
        git(*config, "verify-tag", "--raw", ref, cwd=remote.mirror)
    except GitError as exc:
        said = str(exc)
        if "non-tag object" in said:
            why = "it is a lightweight tag, not a signed annotated tag (`git tag -s`)"
        elif "no signature found" in said:
            why = "it is not signed (sign it with `git tag -s`, an SSH key: `git config gpg.format ssh`)"
        elif "No principal matched" in said or "not in allowed signers" in said.lower():
            why = "its signing key is not one of the allowed signers"
        else:
            why = f"its signature does not verify ({first_line(exc)})"
        return f"tag {release.key} may not deploy: {why}; allowed signers: {allowed_signers.name} in infra/"
    return None
