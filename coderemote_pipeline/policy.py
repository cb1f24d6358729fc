"""Environment policy as data: the strategy's environment and stack-config tables, validated on load.

Trigger and approval come from `infra/environments.yaml`; stack configuration comes from the very
`infra/pulumi/Pulumi.<env>.yaml` files the Pulumi program reads, so the two can never disagree.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from coderemote_pipeline.partitions import ENVIRONMENTS, check_env
from coderemote_pipeline.release_rules import Release, ReleaseKind

PULUMI_PROJECT = "code-remote"
DEFAULT_INFRA_DIR = Path(__file__).resolve().parents[1] / "infra"


class PolicyError(ValueError):
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


@dataclass(frozen=True)
class StackConfig:
    region: str
    gemini_model: str
    vpc_cidr: str | None
    az_count: int | None


@dataclass(frozen=True)
class EnvironmentPolicy:
    name: str
    trigger: Trigger
    approval: Approval
    auto_rollback: bool
    accepts: Accepts
    verified_in: str | None
    stack: StackConfig

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


def _enum(value: Any, enum: type[StrEnum], where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise PolicyError(f"{where}: {value!r} is not one of {allowed}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PolicyError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    return data


def load_stack_config(path: Path) -> StackConfig:
    config = _read_yaml(path).get("config") or {}
    if not isinstance(config, dict):
        raise PolicyError(f"{path}: 'config' must be a mapping")

    def key(name: str) -> str:
        return f"{path}: config key '{name}'"

    region = config.get("aws:region")
    if not isinstance(region, str) or not region:
        raise PolicyError(f"{key('aws:region')} is required (e.g. us-east-1)")
    model = config.get(f"{PULUMI_PROJECT}:gemini_model")
    if not isinstance(model, str) or not model:
        raise PolicyError(f"{key(PULUMI_PROJECT + ':gemini_model')} is required (e.g. gemini-2.5-flash)")
    cidr = config.get(f"{PULUMI_PROJECT}:vpc_cidr")
    if cidr is not None:
        try:
            ipaddress.ip_network(str(cidr))
        except ValueError:
            raise PolicyError(f"{key(PULUMI_PROJECT + ':vpc_cidr')}: {cidr!r} is not a CIDR block") from None
    azs = config.get(f"{PULUMI_PROJECT}:az_count")
    if azs is not None:
        try:
            azs = int(azs)
        except (TypeError, ValueError):
            raise PolicyError(f"{key(PULUMI_PROJECT + ':az_count')}: {azs!r} is not an integer") from None
        if not 1 <= azs <= 6:
            raise PolicyError(f"{key(PULUMI_PROJECT + ':az_count')}: {azs} must be between 1 and 6")
    if (cidr is None) != (azs is None):
        raise PolicyError(f"{path}: set both '{PULUMI_PROJECT}:vpc_cidr' and '{PULUMI_PROJECT}:az_count', or neither")
    return StackConfig(region=region, gemini_model=model, vpc_cidr=cidr, az_count=azs)


def _verified_in(value: Any, env: str, where: str) -> str | None:
    if value is None:
        return None
    if value not in ENVIRONMENTS or value == env:
        others = [e for e in ENVIRONMENTS if e != env]
        raise PolicyError(f"{where}: {value!r} must be another environment ({', '.join(others)}) or absent")
    return value


def load_policies(infra_dir: Path = DEFAULT_INFRA_DIR) -> dict[str, EnvironmentPolicy]:
    path = infra_dir / "environments.yaml"
    envs = _read_yaml(path).get("environments")
    if not isinstance(envs, dict):
        raise PolicyError(f"{path}: key 'environments' must map each environment to its policy")
    unknown = sorted(set(envs) - set(ENVIRONMENTS))
    missing = sorted(set(ENVIRONMENTS) - set(envs))
    if unknown or missing:
        raise PolicyError(
            f"{path}: environments must be exactly {list(ENVIRONMENTS)} (unknown {unknown}, missing {missing})"
        )
    policies = {}
    for name in ENVIRONMENTS:
        entry = envs[name] or {}
        where = f"{path}: environments.{name}"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be a mapping")
        auto_rollback = entry.get("auto_rollback", False)
        if not isinstance(auto_rollback, bool):
            raise PolicyError(f"{where}.auto_rollback: {auto_rollback!r} must be true or false")
        policies[name] = EnvironmentPolicy(
            name=name,
            trigger=_enum(entry.get("trigger"), Trigger, f"{where}.trigger"),
            approval=_enum(entry.get("approval", "none"), Approval, f"{where}.approval"),
            auto_rollback=auto_rollback,
            accepts=_enum(entry.get("accepts", "any"), Accepts, f"{where}.accepts"),
            verified_in=_verified_in(entry.get("verified_in"), name, f"{where}.verified_in"),
            stack=load_stack_config(infra_dir / "pulumi" / f"Pulumi.{name}.yaml"),
        )
    return policies


def policy_for(env: str, infra_dir: Path = DEFAULT_INFRA_DIR) -> EnvironmentPolicy:
    return load_policies(infra_dir)[check_env(env)]
