"""Environment policy as data: the strategy's environment and stack-config tables, validated on load.

Trigger and approval come from `infra/environments.yaml`; stack configuration comes from the very
`infra/pulumi/Pulumi.<env>.yaml` files the Pulumi program reads, so the two can never disagree.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from coderemote_pipeline.rules.approvers import ApprovalRule, Approvers
from coderemote_pipeline.rules.deploy_windows import DeployWindows, WindowPlan
from coderemote_pipeline.rules.env_names import ENVIRONMENTS, check_env
from coderemote_pipeline.rules.errors import resolved
from coderemote_pipeline.rules.notify_config import Receiver
from coderemote_pipeline.rules.release_keys import Release, ReleaseKind
from coderemote_pipeline.rules.rollout import Delivery, Lifetime, RolloutPlan, plan, seconds
from coderemote_pipeline.rules.schema import ConfigError, StrictModel, read_yaml_mapping, said, validate
from coderemote_pipeline.rules.stack_config import StackConfig, load_stack_config

INFRA_DIR_VARIABLE = "CODEREMOTE_INFRA_DIR"
_CHECKOUT_INFRA = Path(__file__).resolve().parents[2] / "infra"
# Where a non-editable install puts the project's own infra/ (pyproject.toml's data-files).
_INSTALLED_INFRA = Path(sys.prefix) / "share" / "coderemote-pipeline" / "infra"


def default_infra_dir(environ: Mapping[str, str] | None = None) -> Path:
    """CODEREMOTE_INFRA_DIR, else the checkout's infra/, else the copy a non-editable install ships."""
    env = os.environ if environ is None else environ
    if env.get(INFRA_DIR_VARIABLE):
        return resolved(env[INFRA_DIR_VARIABLE], INFRA_DIR_VARIABLE)
    return _CHECKOUT_INFRA if (_CHECKOUT_INFRA / "environments.yaml").exists() else _INSTALLED_INFRA


DEFAULT_INFRA_DIR = _CHECKOUT_INFRA


class PolicyError(ConfigError):
    """An environment or stack file that does not validate; the message names the file and the key."""


class Trigger(StrEnum):
    MAIN_PUSH = "main_push"
    MANUAL = "manual"
    STABLE_TAG = "stable_tag"


class Approval(StrEnum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


class Accepts(StrEnum):
    ANY = "any"
    STABLE_TAGS = "stable_tags"


EnvName = Literal["dev", "staging", "prod"]


class EnvironmentEntry(StrictModel):
    """One row of the strategy's environment table (`environments.<env>` in infra/environments.yaml)."""

    trigger: Trigger
    approval: Approval = Approval.NONE
    auto_rollback: StrictBool = False
    accepts: Accepts = Accepts.ANY
    verified_in: EnvName | None = None
    delivery: Delivery = Delivery()
    # Who may approve (identity → the email their tags and commits carry), and how many distinct approvals.
    approvers: Approvers = {}
    approvals_required: StrictInt = Field(1, ge=1, le=10)
    # How long an approval stands before the release is deployed (unset: until a rollback flees the release).
    approval_expires: Lifetime | None = None
    # A version tag deploys only if its signature verifies against this allowed-signers file (in infra/).
    require_signed_tags: StrictBool = False
    allowed_signers: str | None = None
    deploy_windows: DeployWindows | None = None
    notify: list[Receiver] = []

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentEntry:
        if self.require_signed_tags and not self.allowed_signers:
            raise ValueError("require_signed_tags needs allowed_signers: a file in infra/ of git's allowed-signers "
                             "format (`EMAIL namespaces=\"git\" ssh-ed25519 KEY`)")  # fmt: skip
        if self.allowed_signers is not None and not self.require_signed_tags:
            # Loading skips the file unless tags must be signed: a lone allowed_signers would look like a guard.
            raise ValueError("allowed_signers is only read with require_signed_tags: true; set it, or remove "
                             "allowed_signers")  # fmt: skip
        idle = [key for key in ("approvers", "approvals_required", "approval_expires") if key in self.model_fields_set]
        if self.approval is Approval.NONE and idle:
            # They would read as a guard that is not there.
            raise ValueError(f"{', '.join(idle)} only count with approval: required or optional; set approval, or "
                             f"remove {'them' if len(idle) > 1 else 'it'}")  # fmt: skip
        by_email: dict[str, list[str]] = {}
        for name, email in self.approvers.items():
            by_email.setdefault(email.lower(), []).append(name)
        if shared := next((names for names in by_email.values() if len(names) > 1), None):
            raise ValueError(f"approvers {' and '.join(shared)} share one email: each needs their own (it tells who "
                             "created a release, whom the no-self-approval rule stops)")  # fmt: skip
        if self.approvers and self.approvals_required > len(self.approvers):
            raise ValueError(f"approvals_required is {self.approvals_required} but only {len(self.approvers)} "
                             "approver(s) are listed: no release could ever be approved")  # fmt: skip
        return self


class EnvironmentsFile(StrictModel):
    environments: dict[EnvName, EnvironmentEntry]

    @model_validator(mode="after")
    def _every_environment(self) -> EnvironmentsFile:
        missing = [env for env in ENVIRONMENTS if env not in self.environments]
        if missing:
            raise ValueError(f"environments must declare {', '.join(ENVIRONMENTS)}; missing {', '.join(missing)}")
        for name, entry in self.environments.items():
            if entry.verified_in == name:
                raise ValueError(f"environments.{name}.verified_in must name another environment, not {name}")
            chain, at = [name], entry.verified_in
            while at is not None and at not in chain:
                chain.append(at)
                at = self.environments[at].verified_in if at in self.environments else None
            if at is not None:
                # Each waits for a commit to pass in the next: none could ever deploy without --force.
                raise ValueError(f"verified_in goes round in a circle ({' → '.join([*chain, at])}): no environment "
                                 "on it could ever take a release; break the circle")  # fmt: skip
        return self


@dataclass(frozen=True)
class EnvironmentPolicy:
    name: str
    trigger: Trigger
    approval: Approval
    auto_rollback: bool
    accepts: Accepts
    verified_in: str | None
    stack: StackConfig
    rollout: RolloutPlan = field(default_factory=RolloutPlan.at_once)
    approvers: ApprovalRule | None = None
    approval_expires_s: float | None = None
    allowed_signers: Path | None = None  # set: a version tag must be signed by one of them
    windows: WindowPlan = field(default_factory=lambda: WindowPlan.of(None))
    receivers: tuple[Receiver, ...] = ()

    @property
    def approval_rule(self) -> ApprovalRule:
        return self.approvers or ApprovalRule(self.name)

    @property
    def approval_required(self) -> bool:
        return self.approval is Approval.REQUIRED

    def refusal(self, release: Release) -> str | None:
        """Why this environment refuses the release, or None if it accepts it."""
        if self.accepts is Accepts.STABLE_TAGS and release.kind is not ReleaseKind.STABLE:
            what = "a pre-release tag" if release.kind is ReleaseKind.PRERELEASE else "a commit, not a version tag"
            return (
                f"{self.name} deploys only stable version tags (vMAJOR.MINOR.PATCH); {release.key!r} is {what}. "
                f"Tag the commit, e.g. `git tag v1.2.3 && git push origin v1.2.3`, and deploy that tag"
            )
        return None


def policy_files(infra_dir: Path) -> list[Path]:
    return [infra_dir / "environments.yaml", *(infra_dir / "pulumi" / f"Pulumi.{env}.yaml" for env in ENVIRONMENTS)]


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), stat.st_mtime_ns, stat.st_size


def load_policies(infra_dir: Path | None = None) -> dict[str, EnvironmentPolicy]:
    """Every environment's policy; any error in either file stops every deploy (never a weaker default).

    Parsed once per change of the files: stages and sensor ticks ask on every run, the files change rarely.
    """
    infra_dir = Path(infra_dir) if infra_dir is not None else default_infra_dir()
    return _load(infra_dir, tuple(_stamp(p) for p in policy_files(infra_dir)))


def _inside(infra_dir: Path) -> None:
    """The policy files are the repository's own: one that is a symlink out of infra/ is refused, as a path out of
    the repository is anywhere else."""
    try:
        top = infra_dir.resolve()
        links = [path for path in policy_files(infra_dir) if path.is_symlink()]
    except OSError as exc:  # a name too long, a loop: the path itself is unusable
        raise ConfigError(f"infra directory {str(infra_dir)[:120]!r} cannot be read ({exc.strerror}): set "
                          "CODEREMOTE_INFRA_DIR to the repository's infra/ directory") from None  # fmt: skip
    for path in links:
        if not resolved(path, str(path)).is_relative_to(top):
            raise ConfigError(f"{path} is a symbolic link out of infra/: keep the file itself there")


@functools.lru_cache(maxsize=8)
def _load(infra_dir: Path, _stamps: tuple[tuple[str, int, int], ...]) -> dict[str, EnvironmentPolicy]:
    path = infra_dir / "environments.yaml"
    try:
        _inside(infra_dir)
        table = validate(EnvironmentsFile, read_yaml_mapping(path), source=str(path))
        return {
            name: EnvironmentPolicy(
                name=name,
                trigger=entry.trigger,
                approval=entry.approval,
                auto_rollback=entry.auto_rollback,
                accepts=entry.accepts,
                verified_in=entry.verified_in,
                rollout=plan(entry.delivery),
                stack=load_stack_config(infra_dir / "pulumi" / f"Pulumi.{name}.yaml"),
                approvers=ApprovalRule(name, dict(entry.approvers), entry.approvals_required),
                approval_expires_s=seconds(entry.approval_expires) if entry.approval_expires else None,
                allowed_signers=_signers(infra_dir, name, entry) if entry.require_signed_tags else None,
                windows=WindowPlan.of(entry.deploy_windows),
                receivers=tuple(entry.notify),
            )
            for name in ENVIRONMENTS
            for entry in [table.environments[name]]
        }
    except ConfigError as exc:
        raise PolicyError(f"{exc}{_from_variable(infra_dir)}") from None


def _from_variable(infra_dir: Path) -> str:
    """The fix, when CODEREMOTE_INFRA_DIR chose a directory without a readable environments.yaml: the variable."""
    if not os.environ.get(INFRA_DIR_VARIABLE):
        return ""
    try:
        if (infra_dir / "environments.yaml").is_file():
            return ""
    except OSError:
        pass
    return f" ({INFRA_DIR_VARIABLE} chose that directory: set it to the repository's infra/ directory, or unset it)"


def _signers(infra_dir: Path, env: str, entry: EnvironmentEntry) -> Path:
    source = infra_dir / "environments.yaml"
    path = (infra_dir / str(entry.allowed_signers)).resolve()
    named = f"{source}: environments.{env}.allowed_signers: {said(entry.allowed_signers, 'the path')}"
    if not path.is_relative_to(infra_dir.resolve()):
        raise ConfigError(f"{named} leaves infra/; name a file inside it")
    if not path.is_file():
        raise ConfigError(f"{named} is not a file in infra/")
    return path


def policy_for(env: str, infra_dir: Path | None = None) -> EnvironmentPolicy:
    return load_policies(infra_dir)[check_env(env)]
