"""Faster response parsing for the two hot spots of listing a large fleet.

botocore parses every EC2 ``DescribeInstances`` response generically against the whole EC2 model
(~60 members per instance) and parses timestamps with dateutil; for 10,000 instances that is
seconds of CPU on the event loop. Here:

* :func:`fast_timestamp` parses the two timestamp shapes AWS sends (epoch seconds, ISO 8601)
  without dateutil (falling back to botocore's parser for anything else);
* :class:`FleetParserFactory` gives EC2 clients a parser that reads ``DescribeInstances``
  results with one direct ElementTree walk, keeping the fields listed in
  :data:`DESCRIBE_INSTANCES_FIELDS` (what :mod:`ssmtui.aws.fleet` uses) under botocore's names.
  Any other operation, and any response the fast path cannot read, goes through botocore's
  parser unchanged.
"""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiobotocore.parsers import (  # type: ignore[import-untyped,unused-ignore]
    AioEC2QueryParser,
    AioResponseParserFactory,
)
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

__all__ = [
    "DESCRIBE_INSTANCES_FIELDS",
    "FleetParserFactory",
    "fast_timestamp",
    "parse_describe_instances",
]

#: Instance fields the fast ``DescribeInstances`` parser returns (botocore names).
DESCRIBE_INSTANCES_FIELDS = (
    "InstanceId",
    "ImageId",
    "State",
    "PrivateDnsName",
    "PublicDnsName",
    "InstanceType",
    "LaunchTime",
    "Placement",
    "Platform",
    "SubnetId",
    "VpcId",
    "PrivateIpAddress",
    "PublicIpAddress",
    "IamInstanceProfile",
    "Tags",
    "PlatformDetails",
)

_TEXT_FIELDS = {
    "instanceId": "InstanceId",
    "imageId": "ImageId",
    "privateDnsName": "PrivateDnsName",
    "dnsName": "PublicDnsName",
    "instanceType": "InstanceType",
    "platform": "Platform",
    "subnetId": "SubnetId",
    "vpcId": "VpcId",
    "privateIpAddress": "PrivateIpAddress",
    "ipAddress": "PublicIpAddress",
    "platformDetails": "PlatformDetails",
}


def fast_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser minus dateutil for epoch seconds and ISO 8601; always aware."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError):
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        result: datetime = parse_timestamp(value)
        return result
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(node: ET.Element | None) -> dict[str, ET.Element]:
    return {} if node is None else {_local(child.tag): child for child in node}


def _text(fields: dict[str, ET.Element], name: str) -> str:
    child = fields.get(name)
    return (child.text or "") if child is not None else ""


def _items(node: ET.Element | None) -> list[ET.Element]:
    return [] if node is None else [c for c in node if _local(c.tag) == "item"]


def _instance(node: ET.Element, timestamp: Callable[[Any], datetime]) -> dict[str, Any]:
    fields = _children(node)
    inst: dict[str, Any] = {}
    for xml_name, name in _TEXT_FIELDS.items():
        child = fields.get(xml_name)
        if child is not None:
            inst[name] = child.text or ""
    if "launchTime" in fields and fields["launchTime"].text:
        inst["LaunchTime"] = timestamp(fields["launchTime"].text)
    state = _children(fields.get("instanceState"))
    if state:
        inst["State"] = {"Code": int(_text(state, "code") or 0), "Name": _text(state, "name")}
    placement = _children(fields.get("placement"))
    if "availabilityZone" in placement:
        inst["Placement"] = {"AvailabilityZone": _text(placement, "availabilityZone")}
    profile = _children(fields.get("iamInstanceProfile"))
    if profile:
        inst["IamInstanceProfile"] = {
            key: _text(profile, xml)
            for xml, key in (("arn", "Arn"), ("id", "Id"))
            if xml in profile
        }
    if "tagSet" in fields:
        tags = []
        for item in _items(fields["tagSet"]):
            kv = _children(item)
            tags.append({"Key": _text(kv, "key"), "Value": _text(kv, "value")})
        inst["Tags"] = tags
    return inst


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a big acyclic tree.

    Parsing a 1,000-instance page allocates ~50,000 elements and dicts; with botocore's models
    loaded the heap is large, and the collections those allocations trigger cost several times the
    parse itself. Nothing built here has reference cycles, so pausing is safe.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_describe_instances(
    body: bytes, timestamp: Callable[[Any], datetime] = fast_timestamp
) -> dict[str, Any]:
    """A ``DescribeInstances`` XML body as botocore would return it, for
    :data:`DESCRIBE_INSTANCES_FIELDS` (plus ``ReservationId``/``OwnerId``, ``NextToken`` and the
    request id). Raises ``ValueError`` for anything that is not such a response."""
    with _gc_paused():
        return _parse_describe_instances(body, timestamp)


def _parse_describe_instances(body: bytes, timestamp: Callable[[Any], datetime]) -> dict[str, Any]:
    root = ET.fromstring(body)
    if _local(root.tag) != "DescribeInstancesResponse":
        raise ValueError(f"not a DescribeInstancesResponse: {_local(root.tag)}")
    top = _children(root)
    reservations = []
    for res in _items(top.get("reservationSet")):
        fields = _children(res)
        reservation: dict[str, Any] = {
            "Instances": [_instance(i, timestamp) for i in _items(fields.get("instancesSet"))]
        }
        for xml_name, name in (("reservationId", "ReservationId"), ("ownerId", "OwnerId")):
            if xml_name in fields:
                reservation[name] = _text(fields, xml_name)
        reservations.append(reservation)
    parsed: dict[str, Any] = {"Reservations": reservations}
    token = top.get("nextToken")
    if token is not None and token.text:
        parsed["NextToken"] = token.text
    request_id = top.get("requestId")
    if request_id is not None:
        parsed["ResponseMetadata"] = {"RequestId": request_id.text}
    return parsed


class _FleetEC2Parser(AioEC2QueryParser):  # type: ignore[misc,unused-ignore]
    """botocore's EC2 parser with the fast ``DescribeInstances`` path."""

    def _do_parse(self, response: dict[str, Any], shape: Any) -> Any:
        if shape is not None and getattr(shape, "name", None) == "DescribeInstancesResult":
            try:
                return parse_describe_instances(response["body"], self._timestamp_parser)
            except (ET.ParseError, ValueError, KeyError, TypeError):
                pass  # anything unexpected: the generic parser decides
        return super()._do_parse(response, shape)


class FleetParserFactory(AioResponseParserFactory):  # type: ignore[misc,unused-ignore]
    """aiobotocore's parser factory, with :class:`_FleetEC2Parser` for the EC2 protocol and
    :func:`fast_timestamp` as the default timestamp parser."""

    def __init__(self) -> None:
        super().__init__()
        self.set_parser_defaults(timestamp_parser=fast_timestamp)

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "ec2":
            return _FleetEC2Parser(**self._defaults)
        return super().create_parser(protocol_name)
