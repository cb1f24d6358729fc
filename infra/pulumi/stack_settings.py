"""The typed, validated view of one stack's Pulumi config (`Pulumi.<env>.yaml` plus secrets).

Config keys, all in the project namespace `code-remote:` except the provider's `aws:region`:

| key                   | required | meaning                                                                 |
| --------------------- | -------- | ----------------------------------------------------------------------- |
| `aws:region`          | yes      | region of every resource                                                |
| `gemini_model`        | yes      | GEMINI_MODEL of the API                                                 |
| `gemini_api_key`      | yes      | secret (`pulumi config set --secret`), GEMINI_API_KEY of the API        |
| `bootstrap_image_uri` | yes      | ECR image the Lambda function is created from (see `lambda_api.py`)     |
| `vpc_cidr`            | no       | IPv4 CIDR of a VPC for the function; together with `az_count`           |
| `az_count`            | no       | number of availability zones (private subnets); together with vpc_cidr  |
| `log_retention_days`  | no       | CloudWatch retention; 30 in prod, 14 elsewhere                          |
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi

from coderemote_pipeline.rules.stack_outputs import PROJECT

PROD_ENV = "prod"
MAX_AZ_COUNT = 6
# Each subnet is the VPC's block split 16 ways (/16 -> /20): room for MAX_AZ_COUNT private subnets + 1 public.
SUBNET_PREFIX_DIFF = 4
# The smallest VPC AWS allows is /28; after the 16-way split each subnet must still be a valid /28 at most.
MAX_VPC_PREFIX = 28 - SUBNET_PREFIX_DIFF
# The values CloudWatch Logs accepts for retentionInDays.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def config_key(name: str) -> str:
    """`code-remote:<name>`: the fully qualified key, as it appears in `Pulumi.<env>.yaml` and in errors."""
    return f"{PROJECT}:{name}"


def default_log_retention_days(env: str) -> int:
    return 30 if env == PROD_ENV else 14


@dataclass(frozen=True)
class StackSettings:
    region: str
    gemini_model: str
    bootstrap_image_uri: str
    # An Output marked secret: it is encrypted in the stack state and never printed.
    gemini_api_key: pulumi.Output[str] = field(repr=False, compare=False)
    vpc_cidr: str | None = None
    az_count: int | None = None
    log_retention_days: int = 14

    def __post_init__(self) -> None:
        if self.vpc_cidr is not None and self.az_count is None:
            raise ValueError(f"{config_key('az_count')} is required when {config_key('vpc_cidr')} is set")
        if self.az_count is not None and self.vpc_cidr is None:
            raise ValueError(f"{config_key('vpc_cidr')} is required when {config_key('az_count')} is set")
        if self.vpc_cidr is not None:
            _check_vpc_cidr(self.vpc_cidr)
        if self.az_count is not None and not 1 <= self.az_count <= MAX_AZ_COUNT:
            raise ValueError(f"{config_key('az_count')} must be between 1 and {MAX_AZ_COUNT}, got {self.az_count}")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{config_key('log_retention_days')} must be one of {sorted(LOG_RETENTION_DAYS)}, "
                f"got {self.log_retention_days}"
            )
        if not self.bootstrap_image_uri.strip():
            raise ValueError(f"{config_key('bootstrap_image_uri')} must not be empty")

    @property
    def has_vpc(self) -> bool:
        return self.vpc_cidr is not None


def _check_vpc_cidr(cidr: str) -> None:
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError as error:
        raise ValueError(f"{config_key('vpc_cidr')} is not a CIDR block: {cidr!r} ({error})") from error
    if network.version != 4 or not 16 <= network.prefixlen <= MAX_VPC_PREFIX:
        raise ValueError(f"{config_key('vpc_cidr')} must be an IPv4 block from /16 to /{MAX_VPC_PREFIX}, got {cidr}")


def load_settings(config: pulumi.Config, env: str | None = None) -> StackSettings:
    """Read and validate the stack's config; `env` defaults to the stack name (stack name = environment)."""
    env = env or pulumi.get_stack()
    return StackSettings(
        region=pulumi.Config("aws").require("region"),
        gemini_model=config.require("gemini_model"),
        bootstrap_image_uri=config.require("bootstrap_image_uri"),
        gemini_api_key=config.require_secret("gemini_api_key"),
        vpc_cidr=config.get("vpc_cidr") or None,
        az_count=config.get_int("az_count"),
        log_retention_days=config.get_int("log_retention_days") or default_log_retention_days(env),
    )
