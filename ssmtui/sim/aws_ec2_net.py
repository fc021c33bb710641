"""Simulated EC2 network reads: DescribeSubnets, DescribeRouteTables, DescribeVpcEndpoints and
DescribeSecurityGroups (EC2 query protocol), over the fleet's :mod:`ssmtui.sim.network`.

Like AWS: id lists (``SubnetId.N``, ...) that name unknown ids fail with ``<Kind>.NotFound``;
``Filter.N.Name``/``Filter.N.Value.M`` filters are AND-ed, their values OR-ed, with ``*``/``?``
wildcards; ``MaxResults``/``NextToken`` page the result.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ssmtui.sim.aws_wire import AwsError, fingerprint, iso8601, page_offset, page_token, sub
from ssmtui.sim.network import SimRouteTable, SimSecurityGroup, SimSubnet, SimVpc, SimVpcEndpoint

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext

__all__ = ["NET_OPERATIONS"]

_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
T = TypeVar("T")
#: A listed object with its VPC (the VPC carries account/region/CIDR).
Row = tuple[SimVpc, T]
Getter = Callable[[SimVpc, Any], Iterable[str | None]]


def indexed(params: Mapping[str, str], prefix: str) -> list[str]:
    """Values of ``prefix.1``, ``prefix.2``, ... ordered by index."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k))]
    return [v for _, v in sorted(found)]


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _select(
    ctx: RequestContext,
    params: Mapping[str, str],
    rows: list[Row[Any]],
    *,
    id_param: str,
    id_of: Callable[[Any], str],
    not_found: tuple[str, str],
    filters: Mapping[str, Getter],
) -> tuple[list[Row[Any]], str | None]:
    """Apply ids, filters and paging; returns the page and the next token."""
    ids = indexed(params, id_param)
    if ids:
        known = {id_of(obj) for _, obj in rows}
        missing = [i for i in ids if i not in known]
        if missing:
            code, what = not_found
            raise AwsError(code, f"The {what} '{', '.join(missing)}' does not exist")
        rows = [r for r in rows if id_of(r[1]) in ids]
    index = 1
    while f"Filter.{index}.Name" in params:
        name = params[f"Filter.{index}.Name"]
        values = indexed(params, f"Filter.{index}.Value")
        index += 1
        getter = filters.get(name)
        if getter is None:
            raise AwsError("InvalidParameterValue", f"The filter '{name}' is invalid")
        rows = [
            r
            for r in rows
            if any(
                v is not None and fnmatch.fnmatchcase(v, p)
                for v in getter(r[0], r[1])
                for p in values
            )
        ]
    caller = ctx.caller
    scope = fingerprint(caller.account_id, caller.region, ctx.operation, sorted(params.items()))
    offset = page_offset(params.get("NextToken"), scope, "InvalidParameterValue")
    raw_max = params.get("MaxResults") or "0"
    if not raw_max.isdigit():
        raise AwsError("InvalidParameterValue", f"Invalid value '{raw_max}' for maxResults")
    limit = int(raw_max) or len(rows)
    end = offset + limit
    return rows[offset:end], (page_token(end, scope) if end < len(rows) else None)


def _rows(ctx: RequestContext, attr: Callable[[SimVpc], Iterable[T]]) -> list[Row[T]]:
    network = ctx.state.fleet.network
    if network is None:
        return []
    vpcs = network.in_scope(ctx.caller.account_id, ctx.caller.region)
    return [(vpc, obj) for vpc in vpcs for obj in attr(vpc)]


def _root(ctx: RequestContext, op: str) -> ET.Element:
    root = ET.Element(f"{op}Response", xmlns=_XMLNS)
    sub(root, "requestId", ctx.request_id)
    return root


def _finish(root: ET.Element, token: str | None) -> ET.Element:
    if token:
        sub(root, "nextToken", token)
    return root


# --------------------------------------------------------------------------- subnets


def _subnet_xml(parent: ET.Element, vpc: SimVpc, subnet: SimSubnet) -> None:
    item = sub(parent, "item")
    sub(item, "subnetId", subnet.subnet_id)
    arn = f"arn:aws:ec2:{vpc.region}:{vpc.account_id}:subnet/{subnet.subnet_id}"
    sub(item, "subnetArn", arn)
    sub(item, "state", "available")
    sub(item, "ownerId", vpc.account_id)
    sub(item, "vpcId", vpc.vpc_id)
    sub(item, "cidrBlock", subnet.cidr)
    sub(item, "availableIpAddressCount", 4000)
    sub(item, "availabilityZone", subnet.availability_zone)
    sub(item, "defaultForAz", False)
    sub(item, "mapPublicIpOnLaunch", subnet.public)
    sub(item, "assignIpv6AddressOnCreation", False)
    sub(item, "tagSet")


def describe_subnets(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """EC2 DescribeSubnets."""
    rows, token = _select(
        ctx,
        params,
        _rows(ctx, lambda v: v.subnets),
        id_param="SubnetId",
        id_of=lambda s: s.subnet_id,
        not_found=("InvalidSubnetID.NotFound", "subnet ID"),
        filters={
            "vpc-id": lambda v, _s: [v.vpc_id],
            "subnet-id": lambda _v, s: [s.subnet_id],
            "availability-zone": lambda _v, s: [s.availability_zone],
            "cidr-block": lambda _v, s: [s.cidr],
            "map-public-ip-on-launch": lambda _v, s: ["true" if s.public else "false"],
            "state": lambda _v, _s: ["available"],
        },
    )
    root = _root(ctx, "DescribeSubnets")
    subnets = sub(root, "subnetSet")
    for vpc, subnet in rows:
        _subnet_xml(subnets, vpc, subnet)
    return _finish(root, token)


# --------------------------------------------------------------------------- route tables


def _assoc_id(table: SimRouteTable, subnet_id: str) -> str:
    return "rtbassoc-" + _hex(table.route_table_id, subnet_id)


def _route_table_xml(parent: ET.Element, vpc: SimVpc, table: SimRouteTable) -> None:
    item = sub(parent, "item")
    sub(item, "routeTableId", table.route_table_id)
    sub(item, "vpcId", vpc.vpc_id)
    sub(item, "ownerId", vpc.account_id)
    routes = sub(item, "routeSet")
    for route in table.routes:
        node = sub(routes, "item")
        sub(node, "destinationCidrBlock", route.destination)
        if route.target.startswith("nat-"):
            sub(node, "natGatewayId", route.target)
        else:
            sub(node, "gatewayId", route.target)
        sub(node, "state", "active")
        sub(node, "origin", "CreateRouteTable" if route.target == "local" else "CreateRoute")
    assocs = sub(item, "associationSet")
    if table.main:
        node = sub(assocs, "item")
        sub(node, "main", True)
        sub(node, "routeTableAssociationId", _assoc_id(table, "main"))
        sub(node, "routeTableId", table.route_table_id)
        sub(sub(node, "associationState"), "state", "associated")
    for subnet_id in table.subnet_ids:
        node = sub(assocs, "item")
        sub(node, "main", False)
        sub(node, "routeTableAssociationId", _assoc_id(table, subnet_id))
        sub(node, "routeTableId", table.route_table_id)
        sub(node, "subnetId", subnet_id)
        sub(sub(node, "associationState"), "state", "associated")
    sub(item, "propagatingVgwSet")
    sub(item, "tagSet")


def _targets(table: SimRouteTable, prefix: str) -> list[str]:
    return [r.target for r in table.routes if r.target.startswith(prefix)]


def describe_route_tables(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """EC2 DescribeRouteTables (the main table has an association with ``main=true``)."""
    filters: dict[str, Getter] = {
        "vpc-id": lambda v, _t: [v.vpc_id],
        "route-table-id": lambda _v, t: [t.route_table_id],
        "association.subnet-id": lambda _v, t: t.subnet_ids,
        "association.main": lambda _v, t: (
            (["true"] if t.main else []) + (["false"] if t.subnet_ids else [])
        ),
        "association.route-table-association-id": lambda _v, t: [
            _assoc_id(t, s) for s in ([*t.subnet_ids, "main"] if t.main else t.subnet_ids)
        ],
        "route.destination-cidr-block": lambda _v, t: [r.destination for r in t.routes],
        "route.gateway-id": lambda _v, t: [
            r.target for r in t.routes if not r.target.startswith("nat-")
        ],
        "route.nat-gateway-id": lambda _v, t: _targets(t, "nat-"),
    }
    rows, token = _select(
        ctx,
        params,
        _rows(ctx, lambda v: v.route_tables),
        id_param="RouteTableId",
        id_of=lambda t: t.route_table_id,
        not_found=("InvalidRouteTableID.NotFound", "routeTable ID"),
        filters=filters,
    )
    root = _root(ctx, "DescribeRouteTables")
    tables = sub(root, "routeTableSet")
    for vpc, table in rows:
        _route_table_xml(tables, vpc, table)
    return _finish(root, token)


# --------------------------------------------------------------------------- VPC endpoints


def _service_name(vpc: SimVpc, endpoint: SimVpcEndpoint) -> str:
    return f"com.amazonaws.{vpc.region}.{endpoint.service}"


def _group_names(vpc: SimVpc) -> dict[str, str]:
    return {g.group_id: g.name for g in vpc.security_groups}


def _endpoint_xml(parent: ET.Element, vpc: SimVpc, endpoint: SimVpcEndpoint) -> None:
    item = sub(parent, "item")
    sub(item, "vpcEndpointId", endpoint.endpoint_id)
    sub(item, "vpcEndpointType", "Interface")
    sub(item, "vpcId", vpc.vpc_id)
    sub(item, "serviceName", _service_name(vpc, endpoint))
    sub(item, "state", "available")
    sub(
        item,
        "policyDocument",
        '{\n  "Statement": [\n    {\n      "Action": "*", \n      "Effect": "Allow", \n'
        '      "Principal": "*", \n      "Resource": "*"\n    }\n  ]\n}',
    )
    sub(item, "routeTableIdSet")
    subnets = sub(item, "subnetIdSet")
    for subnet_id in endpoint.subnet_ids:
        sub(subnets, "item", subnet_id)
    groups = sub(item, "groupSet")
    names = _group_names(vpc)
    for group_id in endpoint.group_ids:
        node = sub(groups, "item")
        sub(node, "groupId", group_id)
        sub(node, "groupName", names.get(group_id, group_id))
    sub(item, "ipAddressType", "ipv4")
    sub(sub(item, "dnsOptions"), "dnsRecordIpType", "ipv4")
    sub(item, "privateDnsEnabled", endpoint.private_dns)
    sub(item, "requesterManaged", False)
    enis = sub(item, "networkInterfaceIdSet")
    for subnet_id in endpoint.subnet_ids:
        sub(enis, "item", "eni-" + _hex(endpoint.endpoint_id, subnet_id))
    dns = sub(item, "dnsEntrySet")
    zone = "Z" + _hex(vpc.region, "vpce", length=13).upper()
    names_out = [
        f"{endpoint.endpoint_id}-{_hex(endpoint.endpoint_id, length=8)}."
        f"{endpoint.service}.{vpc.region}.vpce.amazonaws.com"
    ]
    if endpoint.private_dns:
        names_out.append(f"{endpoint.service}.{vpc.region}.amazonaws.com")
    for name in names_out:
        node = sub(dns, "item")
        sub(node, "dnsName", name)
        sub(node, "hostedZoneId", zone)
    sub(item, "creationTimestamp", iso8601(datetime(2024, 2, 1, 12, 0, tzinfo=UTC)))
    sub(item, "tagSet")
    sub(item, "ownerId", vpc.account_id)


def describe_vpc_endpoints(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """EC2 DescribeVpcEndpoints (interface endpoints, all ``available``)."""
    rows, token = _select(
        ctx,
        params,
        _rows(ctx, lambda v: v.endpoints),
        id_param="VpcEndpointId",
        id_of=lambda e: e.endpoint_id,
        not_found=("InvalidVpcEndpointId.NotFound", "Vpc Endpoint Id"),
        filters={
            "vpc-id": lambda v, _e: [v.vpc_id],
            "service-name": lambda v, e: [_service_name(v, e)],
            "vpc-endpoint-type": lambda _v, _e: ["Interface"],
            "vpc-endpoint-id": lambda _v, e: [e.endpoint_id],
            "vpc-endpoint-state": lambda _v, _e: ["available"],
        },
    )
    root = _root(ctx, "DescribeVpcEndpoints")
    endpoints = sub(root, "vpcEndpointSet")
    for vpc, endpoint in rows:
        _endpoint_xml(endpoints, vpc, endpoint)
    return _finish(root, token)


# --------------------------------------------------------------------------- security groups


def _permission_xml(parent: ET.Element, vpc: SimVpc, rule: Any) -> None:
    item = sub(parent, "item")
    sub(item, "ipProtocol", rule.protocol)
    if rule.protocol != "-1":
        sub(item, "fromPort", rule.from_port if rule.from_port is not None else 0)
        sub(item, "toPort", rule.to_port if rule.to_port is not None else 65535)
    groups = sub(item, "groups")
    for group_id in rule.groups:
        node = sub(groups, "item")
        sub(node, "userId", vpc.account_id)
        sub(node, "groupId", group_id)
    ranges = sub(item, "ipRanges")
    for cidr in rule.cidrs:
        sub(sub(ranges, "item"), "cidrIp", cidr)
    sub(item, "ipv6Ranges")
    sub(item, "prefixListIds")


def _group_xml(parent: ET.Element, vpc: SimVpc, group: SimSecurityGroup) -> None:
    item = sub(parent, "item")
    sub(item, "ownerId", vpc.account_id)
    sub(item, "groupId", group.group_id)
    sub(item, "groupName", group.name)
    sub(item, "groupDescription", group.description)
    ingress = sub(item, "ipPermissions")
    for rule in group.ingress:
        _permission_xml(ingress, vpc, rule)
    egress = sub(sub(item, "ipPermissionsEgress"), "item")
    sub(egress, "ipProtocol", "-1")
    sub(egress, "groups")
    sub(sub(sub(egress, "ipRanges"), "item"), "cidrIp", "0.0.0.0/0")
    sub(egress, "ipv6Ranges")
    sub(egress, "prefixListIds")
    sub(item, "vpcId", vpc.vpc_id)
    arn = f"arn:aws:ec2:{vpc.region}:{vpc.account_id}:security-group/{group.group_id}"
    sub(item, "securityGroupArn", arn)
    sub(item, "tagSet")


def describe_security_groups(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """EC2 DescribeSecurityGroups."""
    rows = _rows(ctx, lambda v: v.security_groups)
    names = indexed(params, "GroupName")
    if names:
        rows = [r for r in rows if r[1].name in names]
    rows, token = _select(
        ctx,
        params,
        rows,
        id_param="GroupId",
        id_of=lambda g: g.group_id,
        not_found=("InvalidGroup.NotFound", "security group"),
        filters={
            "group-id": lambda _v, g: [g.group_id],
            "group-name": lambda _v, g: [g.name],
            "vpc-id": lambda v, _g: [v.vpc_id],
        },
    )
    root = _root(ctx, "DescribeSecurityGroups")
    groups = sub(root, "securityGroupInfo")
    for vpc, group in rows:
        _group_xml(groups, vpc, group)
    return _finish(root, token)


def group_name(ctx: RequestContext, vpc_id: str | None, group_id: str) -> str:
    """The name of a security group (for DescribeInstances' ``groupSet``)."""
    network = ctx.state.fleet.network
    vpc = network.get(vpc_id) if network is not None else None
    return _group_names(vpc).get(group_id, group_id) if vpc is not None else group_id


#: Operation name -> handler.
NET_OPERATIONS: dict[str, Callable[[RequestContext, dict[str, str]], ET.Element]] = {
    "DescribeSubnets": describe_subnets,
    "DescribeRouteTables": describe_route_tables,
    "DescribeVpcEndpoints": describe_vpc_endpoints,
    "DescribeSecurityGroups": describe_security_groups,
}
