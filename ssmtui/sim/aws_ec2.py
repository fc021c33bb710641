"""Simulated Amazon EC2 ``DescribeInstances`` (EC2 query protocol, ``Version=2016-11-15``).

The network reads (subnets, route tables, VPC endpoints, security groups) live in
:mod:`ssmtui.sim.aws_ec2_net` and are served through the same operation table.

Requests are form bodies (``InstanceId.N``, ``Filter.N.Name``, ``Filter.N.Value.M``,
``MaxResults``, ``NextToken``); responses are XML in the ``http://ec2.amazonaws.com/doc/2016-11-15/``
namespace, shaped as botocore's EC2 parser reads them.
"""

from __future__ import annotations

import fnmatch
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ssmtui.sim.aws_ec2_net import NET_OPERATIONS, group_name
from ssmtui.sim.aws_wire import AwsError, fingerprint, iso8601, page_offset, page_token, sub
from ssmtui.sim.fleet import SimInstance

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext

__all__ = ["EC2_OPERATIONS", "EC2_XMLNS"]

EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

_FILTER_ATTRS: dict[str, Callable[[SimInstance], str | None]] = {
    "instance-id": lambda i: i.instance_id,
    "instance-state-name": lambda i: i.ec2_state,
    "instance-state-code": lambda i: str(i.ec2_state_code),
    "instance-type": lambda i: i.instance_type,
    "vpc-id": lambda i: i.vpc_id,
    "subnet-id": lambda i: i.subnet_id,
    "availability-zone": lambda i: i.availability_zone,
    "private-ip-address": lambda i: i.private_ip,
    "ip-address": lambda i: i.public_ip,
    "image-id": lambda i: i.image_id,
    "platform": lambda i: "windows" if i.is_windows else None,
    "platform-details": lambda i: i.platform_details,
    "iam-instance-profile.arn": lambda i: i.instance_profile_arn,
}
_MULTI_FILTERS: dict[str, Callable[[SimInstance], Iterable[str]]] = {
    "instance.group-id": lambda i: i.security_group_ids,
    "network-interface.group-id": lambda i: i.security_group_ids,
}


def _indexed(params: Mapping[str, str], prefix: str) -> list[str]:
    """Values of ``prefix.1``, ``prefix.2``, ... ordered by index."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k))]
    return [v for _, v in sorted(found)]


def _matches(value: str | None, patterns: list[str]) -> bool:
    """EC2 filter value match: exact, with ``*`` / ``?`` wildcards."""
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _tag_value_filter(tag: str, values: list[str]) -> Callable[[SimInstance], bool]:
    return lambda i: _matches(i.tags.get(tag), values)


def _attr_filter(
    attr: Callable[[SimInstance], str | None], values: list[str]
) -> Callable[[SimInstance], bool]:
    return lambda i: _matches(attr(i), values)


def _any_filter(
    items: Callable[[SimInstance], Iterable[str]], values: list[str]
) -> Callable[[SimInstance], bool]:
    return lambda i: any(_matches(x, values) for x in items(i))


def _filters(params: Mapping[str, str]) -> list[Callable[[SimInstance], bool]]:
    """``Filter.N.Name`` / ``Filter.N.Value.M`` as predicates (filters AND-ed, values OR-ed)."""
    preds: list[Callable[[SimInstance], bool]] = []
    index = 1
    while f"Filter.{index}.Name" in params:
        name = params[f"Filter.{index}.Name"]
        values = _indexed(params, f"Filter.{index}.Value")
        index += 1
        if name.startswith("tag:") and len(name) > 4:
            preds.append(_tag_value_filter(name[4:], values))
        elif name == "tag-key":
            preds.append(_any_filter(lambda i: i.tags.keys(), values))
        elif name == "tag-value":
            preds.append(_any_filter(lambda i: i.tags.values(), values))
        elif name in _MULTI_FILTERS:
            preds.append(_any_filter(_MULTI_FILTERS[name], values))
        elif name in _FILTER_ATTRS:
            preds.append(_attr_filter(_FILTER_ATTRS[name], values))
        else:
            raise AwsError("InvalidParameterValue", f"The filter '{name}' is invalid")
    return preds


def _instance_xml(parent: ET.Element, inst: SimInstance, groups: Mapping[str, str]) -> None:
    item = sub(parent, "item")
    sub(item, "instanceId", inst.instance_id)
    sub(item, "imageId", inst.image_id)
    state = sub(item, "instanceState")
    sub(state, "code", inst.ec2_state_code)
    sub(state, "name", inst.ec2_state)
    dashed = inst.private_ip.replace(".", "-")
    domain = "ec2.internal" if inst.region == "us-east-1" else f"{inst.region}.compute.internal"
    sub(item, "privateDnsName", f"ip-{dashed}.{domain}")
    sub(
        item,
        "dnsName",
        f"ec2-{inst.public_ip.replace('.', '-')}.compute.amazonaws.com" if inst.public_ip else "",
    )
    if inst.ec2_state == "stopped":
        sub(item, "reason", "User initiated (2024-06-30 18:00:00 GMT)")
    sub(item, "amiLaunchIndex", 0)
    sub(item, "productCodes")
    sub(item, "instanceType", inst.instance_type)
    sub(item, "launchTime", iso8601(inst.launch_time))
    placement = sub(item, "placement")
    sub(placement, "availabilityZone", inst.availability_zone)
    sub(placement, "groupName", "")
    sub(placement, "tenancy", "default")
    if inst.is_windows:
        sub(item, "platform", "windows")
    monitoring = sub(item, "monitoring")
    sub(monitoring, "state", "disabled")
    sub(item, "subnetId", inst.subnet_id)
    sub(item, "vpcId", inst.vpc_id)
    sub(item, "privateIpAddress", inst.private_ip)
    if inst.public_ip:
        sub(item, "ipAddress", inst.public_ip)
    sub(item, "architecture", "x86_64")
    sub(item, "rootDeviceType", "ebs")
    sub(item, "rootDeviceName", "/dev/sda1" if inst.is_windows else "/dev/xvda")
    group_set = sub(item, "groupSet")
    for group_id in inst.security_group_ids:
        group = sub(group_set, "item")
        sub(group, "groupId", group_id)
        sub(group, "groupName", groups.get(group_id, group_id))
    if inst.instance_profile_arn:
        profile = sub(item, "iamInstanceProfile")
        sub(profile, "arn", inst.instance_profile_arn)
        sub(profile, "id", inst.instance_profile_id)
    tag_set = sub(item, "tagSet")
    for key, value in inst.tags.items():
        tag = sub(tag_set, "item")
        sub(tag, "key", key)
        sub(tag, "value", value)
    sub(item, "virtualizationType", "hvm")
    sub(item, "hypervisor", "xen")
    sub(item, "platformDetails", inst.platform_details)
    if inst.ec2_state == "stopped":
        reason = sub(item, "stateReason")
        sub(reason, "code", "Client.UserInitiatedShutdown")
        sub(reason, "message", "Client.UserInitiatedShutdown: User initiated shutdown")


def describe_instances(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """EC2 DescribeInstances: EC2 instances (registered in SSM or not) of the caller's scope."""
    ids = _indexed(params, "InstanceId")
    raw_max = params.get("MaxResults")
    if ids and raw_max is not None:
        raise AwsError(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        )
    limit: int | None = None
    if raw_max is not None:
        try:
            limit = int(raw_max)
        except ValueError:
            raise AwsError(
                "InvalidParameterValue", f"Invalid value '{raw_max}' for maxResults"
            ) from None
        if not 5 <= limit <= 1000:
            raise AwsError(
                "InvalidParameterValue",
                f"Value ( {limit} ) for parameter maxResults is invalid. "
                "Expecting a value between 5 and 1000.",
            )
    caller = ctx.caller
    in_scope = [i for i in ctx.state.fleet.in_scope(caller.account_id, caller.region) if i.is_ec2]
    if ids:
        known = {i.instance_id for i in in_scope}
        missing = [i for i in ids if i not in known]
        if missing:
            raise AwsError(
                "InvalidInstanceID.NotFound",
                f"The instance ID{'s' if len(missing) > 1 else ''} "
                f"'{', '.join(missing)}' do{'' if len(missing) > 1 else 'es'} not exist",
            )
        wanted = set(ids)
        in_scope = [i for i in in_scope if i.instance_id in wanted]
    preds = _filters(params)
    matched = [i for i in in_scope if all(p(i) for p in preds)]
    filters = {k: v for k, v in params.items() if k.startswith(("Filter.", "InstanceId."))}
    scope = fingerprint(caller.account_id, caller.region, filters)
    offset = page_offset(params.get("NextToken"), scope, "InvalidParameterValue")
    end = len(matched) if limit is None else offset + limit
    page = matched[offset:end]

    root = ET.Element("DescribeInstancesResponse", xmlns=EC2_XMLNS)
    sub(root, "requestId", ctx.request_id)
    reservations = sub(root, "reservationSet")
    names: dict[str, str] = {}
    for inst in page:
        for group_id in inst.security_group_ids:
            if group_id not in names:
                names[group_id] = group_name(ctx, inst.vpc_id, group_id)
        res = sub(reservations, "item")
        sub(res, "reservationId", "r-" + inst.instance_id.split("-", 1)[1])
        sub(res, "ownerId", inst.account_id)
        sub(res, "groupSet")
        _instance_xml(sub(res, "instancesSet"), inst, names)
    if end < len(matched):
        sub(root, "nextToken", page_token(end, scope))
    return root


#: Operation name -> handler.
EC2_OPERATIONS: dict[str, Callable[[RequestContext, dict[str, str]], ET.Element]] = {
    "DescribeInstances": describe_instances,
    **NET_OPERATIONS,
}
