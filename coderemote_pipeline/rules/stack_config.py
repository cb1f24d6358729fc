"""A Pulumi stack file (`infra/pulumi/Pulumi.<env>.yaml`), validated: the stack configuration the Pulumi program
reads, and the pipeline reads from the very same file."""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from coderemote_pipeline.rules.schema import ConfigError, StrictModel, read_yaml_mapping, said, validate

PULUMI_PROJECT = "code-remote"
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+){1,3}-[0-9]{1,2}")  # us-east-1, us-gov-west-1, eusc-de-east-1


def _config_key(name: str) -> str:
    return f"{PULUMI_PROJECT}:{name}"


class Secret(StrictModel):
    """A value Pulumi keeps encrypted in the stack file (`pulumi config set --secret`)."""

    secure: str


class StackConfigValues(StrictModel):
    """The `config:` of a Pulumi stack file: what the program reads, and the two values the pipeline sets."""

    region: str = Field(alias="aws:region", min_length=1)
    gemini_model: str = Field(alias=_config_key("gemini_model"), min_length=1)
    vpc_cidr: str | None = Field(None, alias=_config_key("vpc_cidr"))
    az_count: int | None = Field(None, alias=_config_key("az_count"))
    # Written by the pipeline's Automation API path on the aws target (resources/pulumi_provisioner.py).
    bootstrap_image_uri: str | None = Field(None, alias=_config_key("bootstrap_image_uri"))
    gemini_api_key: Secret | None = Field(None, alias=_config_key("gemini_api_key"))

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError(f"{said(value)} is not an AWS region name, e.g. us-east-1 or eu-west-3")
        return value

    @field_validator("az_count", mode="before")
    @classmethod
    def _az_count(cls, value: Any) -> int | None:
        # Pulumi writes config values as strings ("3"); a YAML true would otherwise count as 1.
        if value is None:
            return None
        text = str(value) if type(value) is int else value  # not isinstance: a YAML true is an int too
        if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 3):
            raise ValueError(f"{said(value)} must be a whole number of availability zones, 1 to 6")
        if not 1 <= int(text) <= 6:
            raise ValueError(f"{int(text)} must be between 1 and 6")
        return int(text)

    @field_validator("gemini_api_key", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            # Never quoted: a plain value here is the key itself.
            raise ValueError("must be a Pulumi secret ({secure: ...}): set it with `pulumi config set --secret "
                             "gemini_api_key`, never as plain text")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _network(self) -> StackConfigValues:
        if self.vpc_cidr is not None:
            try:
                network = ipaddress.ip_network(self.vpc_cidr)
            except ValueError:
                shown = said(self.vpc_cidr)
                raise ValueError(f"{_config_key('vpc_cidr')}: {shown} is not a CIDR block, e.g. 10.2.0.0/16") from None
            # A VPC is IPv4 /16 to /28, and the program splits it 16 ways into subnets of at least /28.
            if network.version != 4 or not 16 <= network.prefixlen <= 24:
                raise ValueError(f"{_config_key('vpc_cidr')}: {said(self.vpc_cidr)} must be an IPv4 block from /16 to "
                                 "/24 (the program splits it into 16 subnets), e.g. 10.2.0.0/16")  # fmt: skip
        if (self.vpc_cidr is None) != (self.az_count is None):
            raise ValueError(f"set both {_config_key('vpc_cidr')!r} and {_config_key('az_count')!r}, or neither")
        return self


class StackFile(StrictModel):
    """A whole `Pulumi.<env>.yaml`: Pulumi's own top-level keys and the stack's config."""

    config: StackConfigValues
    secretsprovider: str | None = None
    encryptedkey: str | None = None
    encryptionsalt: str | None = None
    environment: list[str] | None = None


@dataclass(frozen=True)
class StackConfig:
    region: str
    gemini_model: str
    vpc_cidr: str | None
    az_count: int | None


# Pulumi's AWS provider reads these from a stack file; the pipeline's own clients would not, and would act as
# another account than the program's. The environment is the one place both read.
_PROVIDER_CREDENTIALS = {"aws:profile": "AWS_PROFILE", "aws:accessKey": "AWS_ACCESS_KEY_ID",
                         "aws:secretKey": "AWS_SECRET_ACCESS_KEY", "aws:token": "AWS_SESSION_TOKEN",
                         "aws:sharedCredentialsFiles": "AWS_SHARED_CREDENTIALS_FILE"}  # fmt: skip


def _credentials_in(path: Path, data: dict[str, Any]) -> None:
    config = data.get("config")
    for written in config if isinstance(config, dict) else ():
        # A misspelled one (aws:profle) is still a credential: its nearest key says which.
        names = [k.removeprefix("aws:") for k in ("aws:region", "aws:assumeRole", *_PROVIDER_CREDENTIALS)]
        meant = difflib.get_close_matches(str(written).removeprefix("aws:"), names, n=1, cutoff=0.8)
        close = str(written).startswith("aws:") and meant and meant[0] != "region"
        key = f"aws:{meant[0]}" if close else str(written)
        named = written if key == written else f"{written} ({key}?)"
        if (variable := _PROVIDER_CREDENTIALS.get(key)) is not None:
            raise ConfigError(f"{path}: config.{named}: AWS credentials come from the environment, for the pipeline "
                              f"and the Pulumi program alike: remove it and set {variable} where the pipeline runs")
        if key == "aws:assumeRole":
            raise ConfigError(f"{path}: config.{named}: assume the role in a profile (role_arn in ~/.aws/config) and "
                              "set AWS_PROFILE where the pipeline runs: the pipeline's own clients need it too")


def load_stack_config(path: Path) -> StackConfig:
    data = read_yaml_mapping(path)
    _credentials_in(path, data)
    values = validate(StackFile, data, source=str(path)).config
    return StackConfig(
        region=values.region, gemini_model=values.gemini_model, vpc_cidr=values.vpc_cidr, az_count=values.az_count
    )
