"""The doctor's network rules: the subnet's way out (internet gateway + public IP, NAT, other
hops) and the VPC interface endpoints for ssm, ssmmessages and ec2messages (present, available,
private DNS on, HTTPS open to the instance). Pure: facts in, findings out."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ssmtui.aws.doctor import NetworkFacts
from ssmtui.doctor.model import Finding
from ssmtui.models import Instance

__all__ = ["ENDPOINT_SERVICES", "network_findings", "where"]

#: The interface endpoints a private subnet without internet access needs.
ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages")


def where(inst: Instance) -> str:
    """The ``--profile P --region R`` of a fix's command line."""
    return f"--profile {inst.profile} --region {inst.region}"


def _default_route(table: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for route in (table or {}).get("Routes") or []:
        if (
            route.get("DestinationCidrBlock") == "0.0.0.0/0"
            and route.get("State", "active") == "active"
        ):
            return route  # type: ignore[no-any-return]
    return None


def _opens_443(
    group: Mapping[str, Any], source_ip: str | None, source_groups: Iterable[str]
) -> bool:
    ours = set(source_groups)
    for perm in group.get("IpPermissions") or []:
        proto = str(perm.get("IpProtocol", ""))
        if proto not in ("-1", "tcp", "6"):
            continue
        if proto != "-1" and not (
            int(perm.get("FromPort", 0)) <= 443 <= int(perm.get("ToPort", 65535))
        ):
            continue
        if any(str(p.get("GroupId")) in ours for p in perm.get("UserIdGroupPairs") or []):
            return True
        if perm.get("PrefixListIds"):
            return True  # cannot see inside a prefix list: give it the benefit of the doubt
        for rng in perm.get("IpRanges") or []:
            try:
                if source_ip and ipaddress.ip_address(source_ip) in ipaddress.ip_network(
                    str(rng.get("CidrIp")), strict=False
                ):
                    return True
            except ValueError:
                continue
    return False


def _endpoint(net: NetworkFacts, region: str, service: str) -> Mapping[str, Any] | None:
    suffix = f"{region}.{service}"
    for ep in net.endpoints:
        if (
            str(ep.get("ServiceName", "")).endswith(suffix)
            and str(ep.get("VpcEndpointType", "Interface")) == "Interface"
        ):
            return ep
    return None


def _route_finding(
    inst: Instance, net: NetworkFacts, route: Mapping[str, Any] | None, via: str
) -> tuple[Finding, bool]:
    """The subnet's way out, and whether it reaches the internet."""
    if route is None:
        return Finding("network", "info", "no route to the internet" + via), False
    gateway = str(route.get("GatewayId", ""))
    if gateway.startswith("igw-"):
        if net.public_ip:
            title = f"public subnet: internet gateway {gateway}, public IP {net.public_ip}"
            return Finding("network", "ok", title), True
        return (
            Finding(
                "network",
                "info",
                f"route to internet gateway {gateway} but no public IP" + via,
                "An instance needs a public IP to use an internet gateway.",
                "give it an Elastic IP (aws ec2 allocate-address, then aws ec2 associate-address "
                f"--instance-id {inst.instance_id} --allocation-id EIPALLOC {where(inst)}), or "
                "move it to a private subnet that routes through a NAT gateway",
            ),
            False,
        )
    if route.get("NatGatewayId"):
        title = f"private subnet: 0.0.0.0/0 via NAT gateway {route['NatGatewayId']}" + via
        return Finding("network", "ok", title), True
    keys = ("TransitGatewayId", "InstanceId", "NetworkInterfaceId", "VpcPeeringConnectionId")
    hop = next((str(route[k]) for k in (*keys, "GatewayId") if route.get(k)), "?")
    return (
        Finding(
            "network",
            "info",
            f"0.0.0.0/0 goes to {hop}" + via,
            "ssmtui cannot see past this hop; it must reach the internet (or the SSM endpoints).",
        ),
        True,
    )


def _endpoint_problems(inst: Instance, net: NetworkFacts, internet: bool) -> list[Finding]:
    """What is wrong with the ssm / ssmmessages / ec2messages endpoints (one finding per kind
    of problem), given that some endpoint exists or the subnet has no other way out."""
    region = inst.region
    missing: list[str] = []
    no_dns: list[tuple[str, str]] = []
    blocked: dict[str, list[str]] = {}
    down: list[str] = []
    for service in ENDPOINT_SERVICES:
        ep = _endpoint(net, region, service)
        if ep is None:
            missing.append(service)
            continue
        ep_id = str(ep.get("VpcEndpointId"))
        if str(ep.get("State", "available")).lower() != "available":
            down.append(f"{ep_id} ({service}: {ep.get('State')})")
        elif not ep.get("PrivateDnsEnabled"):
            no_dns.append((service, ep_id))
        else:
            groups = [str(g.get("GroupId")) for g in ep.get("Groups") or []]
            opens = (
                _opens_443(net.groups.get(g, {}), net.private_ip, net.instance_groups)
                for g in groups
            )
            if groups and not any(opens):
                blocked.setdefault(", ".join(groups), []).append(service)
    out: list[Finding] = []
    at = where(inst)
    if missing and not internet:
        names = ", ".join(missing)
        pattern = missing[0] if len(missing) == 1 else "{" + ",".join(missing) + "}"
        out.append(
            Finding(
                "vpc-endpoints",
                "fail",
                f"no VPC endpoint for {names}",
                "The subnet has no internet path, so the agent can only reach these services "
                "through interface endpoints.",
                f"aws ec2 create-vpc-endpoint --vpc-endpoint-type Interface --vpc-id "
                f"{net.vpc_id} --service-name com.amazonaws.{region}.{pattern} --subnet-ids "
                f"{net.subnet_id} --security-group-ids SG --private-dns-enabled {at}"
                + (" (once per service)" if len(missing) > 1 else ""),
            )
        )
    if no_dns and not internet:
        names = ", ".join(s for s, _ in no_dns)
        ids = " ".join(i for _, i in no_dns)
        out.append(
            Finding(
                "vpc-endpoints",
                "fail",
                f"private DNS off on the endpoints for {names}",
                f"The agent resolves {no_dns[0][0]}.{region}.amazonaws.com to public addresses it "
                "cannot reach; with private DNS on, the names resolve to the endpoints.",
                f"aws ec2 modify-vpc-endpoint --private-dns-enabled --vpc-endpoint-id ID {at} "
                f"for each of {ids} (the VPC needs enableDnsSupport and enableDnsHostnames)",
            )
        )
    for group_text, blocked_services in blocked.items():
        cidr = str((net.subnet or {}).get("CidrBlock") or net.private_ip or "SUBNET_CIDR")
        out.append(
            Finding(
                "vpc-endpoints",
                "fail",
                f"the endpoints for {', '.join(blocked_services)} do not accept HTTPS from "
                "the instance",
                f"Their security group(s) {group_text} allow no TCP 443 from "
                f"{net.private_ip or 'the instance'}; private DNS sends the traffic to the "
                "endpoints, so this blocks the agent even where a NAT exists.",
                f"aws ec2 authorize-security-group-ingress --group-id {group_text.split(',')[0]} "
                f"--protocol tcp --port 443 --cidr {cidr} {at}",
            )
        )
    if down:
        out.append(
            Finding("vpc-endpoints", "fail", "endpoint(s) not available: " + ", ".join(down))
        )
    return out


def network_findings(inst: Instance, net: NetworkFacts | None) -> list[Finding]:
    """Route to the internet and/or VPC interface endpoints for ssm, ssmmessages, ec2messages."""
    if net is None or not net.subnet_id:
        return []
    if net.unknown is not None:
        return [
            Finding(
                "network",
                "unknown",
                "could not read the instance's network",
                f"{net.unknown.call}: {net.unknown.reason}",
                "needs ec2:DescribeSubnets, ec2:DescribeRouteTables, ec2:DescribeVpcEndpoints, "
                "ec2:DescribeSecurityGroups to check",
            )
        ]
    table_id = str((net.route_table or {}).get("RouteTableId") or "?")
    if net.route_table_is_main:
        via = f" (the VPC's main route table {table_id})"
    else:
        via = f" ({table_id})"
    route, internet = _route_finding(inst, net, _default_route(net.route_table), via)
    has_endpoints = any(_endpoint(net, inst.region, s) for s in ENDPOINT_SERVICES)
    if not internet and not has_endpoints:
        nat = (
            f"aws ec2 create-route --route-table-id {table_id} --destination-cidr-block "
            f"0.0.0.0/0 --nat-gateway-id NAT {where(inst)}"
        )
        endpoints = (
            "create interface endpoints (private DNS on, 443 open) for "
            f"com.amazonaws.{inst.region}.{{ssm,ssmmessages,ec2messages}}"
        )
        fix = f"{route.fix}; or {endpoints}" if route.fix else f"{nat}; or {endpoints}"
        detail = (route.detail + " " if route.detail else "") + (
            "No VPC endpoints either: the agent cannot reach Systems Manager."
        )
        return [Finding("network", "fail", route.title, detail, fix)]
    problems = _endpoint_problems(inst, net, internet)
    if not internet and not problems:
        route = Finding("network", "ok", "no internet route; VPC endpoints carry the traffic" + via)
    elif not internet:
        route = Finding(
            "network", "info", route.title, "The VPC endpoints must carry the agent's traffic."
        )
    found = [route, *problems]
    if has_endpoints and not problems:
        found.append(
            Finding("vpc-endpoints", "ok", "VPC endpoints for ssm, ssmmessages, ec2messages: fine")
        )
    return found
