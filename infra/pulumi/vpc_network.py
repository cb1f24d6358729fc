"""The VPC of the API function, declared only when `code-remote:vpc_cidr` is set (prod).

Private subnets, one per availability zone, hold the function's network interfaces. The API calls the Gemini
API on the internet, and a function in a private subnet has no route out by itself: a NAT gateway in one public
subnet gives it egress. One NAT gateway, not one per zone, is a cost choice (each costs ~32 USD a month): if its
zone fails the API loses egress until the zone recovers. Add one per zone if that matters more than the cost.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from stack_settings import SUBNET_PREFIX_DIFF, StackSettings, config_key

from coderemote_pipeline.rules.stack_outputs import resource_prefix

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Network:
    vpc: aws.ec2.Vpc
    private_subnets: Sequence[aws.ec2.Subnet]
    function_security_group: aws.ec2.SecurityGroup


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """The first `count` blocks of the VPC split 16 ways: private subnets first, then the public one."""
    blocks = ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=SUBNET_PREFIX_DIFF)
    return [str(block) for block in itertools.islice(blocks, count)]


def availability_zones(az_count: int) -> list[str]:
    """The first `az_count` standard zones of the region (no Local or Wavelength zones, which need opting in
    and lack services). A plain invoke, so a region with too few zones fails before anything is declared."""
    names = aws.get_availability_zones(
        state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    ).names
    if len(names) < az_count:
        raise ValueError(
            f"{config_key('az_count')} is {az_count} but the region has only {len(names)} "
            f"available zones: {', '.join(names)}"
        )
    return list(names[:az_count])


def private_network(env: str, settings: StackSettings, tags: Mapping[str, str]) -> Network:
    if settings.vpc_cidr is None or settings.az_count is None:
        raise ValueError(f"private_network needs {config_key('vpc_cidr')} and {config_key('az_count')}")
    prefix = resource_prefix(env)
    az_count = settings.az_count

    def named(name: str, **extra: str) -> dict[str, str]:
        return {**tags, "Name": f"{prefix}-{name}", **extra}

    zones = availability_zones(az_count)
    cidrs = subnet_cidrs(settings.vpc_cidr, az_count + 1)

    vpc = aws.ec2.Vpc(
        "vpc",
        cidr_block=settings.vpc_cidr,
        enable_dns_support=True,
        enable_dns_hostnames=True,
        tags=named("vpc"),
    )
    private_subnets = [
        aws.ec2.Subnet(
            f"private-subnet-{index}",
            vpc_id=vpc.id,
            cidr_block=cidrs[index],
            availability_zone=zones[index],
            map_public_ip_on_launch=False,
            tags=named(f"private-{index}", tier="private"),
        )
        for index in range(az_count)
    ]

    internet_gateway = aws.ec2.InternetGateway("internet-gateway", vpc_id=vpc.id, tags=named("igw"))
    public_subnet = aws.ec2.Subnet(
        "public-subnet",
        vpc_id=vpc.id,
        cidr_block=cidrs[az_count],
        availability_zone=zones[0],
        map_public_ip_on_launch=False,
        tags=named("public", tier="public"),
    )
    public_routes = aws.ec2.RouteTable(
        "public-routes",
        vpc_id=vpc.id,
        routes=[{"cidr_block": ANYWHERE, "gateway_id": internet_gateway.id}],
        tags=named("public"),
    )
    aws.ec2.RouteTableAssociation("public-subnet-routes", subnet_id=public_subnet.id, route_table_id=public_routes.id)

    nat_address = aws.ec2.Eip("nat-address", domain="vpc", tags=named("nat"))
    nat_gateway = aws.ec2.NatGateway(
        "nat-gateway",
        allocation_id=nat_address.id,
        subnet_id=public_subnet.id,
        tags=named("nat"),
        opts=pulumi.ResourceOptions(depends_on=[internet_gateway]),
    )
    private_routes = aws.ec2.RouteTable(
        "private-routes",
        vpc_id=vpc.id,
        routes=[{"cidr_block": ANYWHERE, "nat_gateway_id": nat_gateway.id}],
        tags=named("private"),
    )
    for index, subnet in enumerate(private_subnets):
        aws.ec2.RouteTableAssociation(
            f"private-subnet-{index}-routes", subnet_id=subnet.id, route_table_id=private_routes.id
        )

    # The function only calls out (HTTPS to the Gemini API); nothing connects to it, so no ingress rule.
    # DNS goes to the VPC resolver, which security groups do not filter.
    function_security_group = aws.ec2.SecurityGroup(
        "api-function-sg",
        vpc_id=vpc.id,
        description=f"{prefix} API Lambda function: HTTPS egress only",
        egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [ANYWHERE]}],
        tags=named("api-function"),
    )
    return Network(vpc=vpc, private_subnets=private_subnets, function_security_group=function_security_group)
