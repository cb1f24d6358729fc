"""Who may approve a release for an environment, how many must, and that nobody approves their own release.

`approvers:` in an environment of infra/environments.yaml maps each approver's identity (the operating-system
account that runs `coderemote-pipeline approve`; the `by` of a UI approval) to the email their git tags and commits
carry, so the pipeline knows who created a release: the tagger of an annotated tag, else the commit's committer.
No `approvers:` means anyone may approve (the policy's `approval:` still says whether approval is needed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _name(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError("an approver's name must be an account name, without spaces (the `by` of an approval)")
    return value


def _email(value: str) -> str:
    # Not quoted back: whatever sits here when it is no email address may be anything, a key included.
    if not _EMAIL.fullmatch(value.strip()):
        raise ValueError("must be an email address (name@domain), the one the approver's git tags carry")
    return value.strip()


# `approvers:` of an environment as written: identity → the email their tags and commits carry.
Approvers = dict[Annotated[str, AfterValidator(_name)], Annotated[str, AfterValidator(_email)]]


@dataclass(frozen=True)
class Creator:
    """Who made a release: a tagger or a committer, as git recorded them."""

    name: str
    email: str
    role: str  # "tagger" or "committer"

    def describe(self) -> str:
        return f"{self.role} {self.name} <{self.email}>"


@dataclass(frozen=True)
class ApprovalRule:
    env: str
    approvers: dict[str, str] = field(default_factory=dict)  # identity → email; empty: anyone
    required: int = 1

    def where(self) -> str:
        return f"environments.{self.env}.approvers in infra/environments.yaml"

    def refusal(self, by: str, creator: Creator | None, *, approving: bool = True) -> str | None:
        """Why `by` may not approve (or, `approving` false, reject) a release `creator` made here, or None."""
        if self.approvers and by not in self.approvers:
            return (f"{by!r} is not an approver of {self.env}: approvers are {', '.join(sorted(self.approvers))} "
                    f"({self.where()})")  # fmt: skip
        if approving and creator is not None and self.is_creator(by, creator):
            return (f"{by} created this release ({creator.describe()}) and cannot approve it: no self-approval; "
                    f"ask another approver of {self.env}")  # fmt: skip
        return None

    def is_creator(self, by: str, creator: Creator) -> bool:
        """By the listed email where there is one, and always by the account against the git identity: its name or
        its email's name ("alice" tagged as "Alice <alice@corp.com>", "alice+git@corp.com", GitHub's
        "12345+alice@users.noreply.github.com", git's default "alice@laptop"), since a git name is rarely an account."""
        email, who = self.approvers.get(by, ""), by.strip().lower()
        if email and email.lower() == creator.email.strip().lower():
            return True
        return who in (creator.name.strip().lower(), _mailbox(creator.email))

    def missing(self, approvers: list[str]) -> int:
        """How many more distinct approvals the release needs, given those recorded."""
        return max(0, self.required - len(set(approvers)))


def _mailbox(email: str) -> str:
    """The person in an email's local part: without a +tag, and without the numeric id GitHub's noreply puts first."""
    local = email.strip().lower().partition("@")[0]
    head, plus, tail = local.partition("+")
    return tail if plus and head.isdigit() else head
