"""Faster response parsing for the two hot spots of listing a large fleet.

botocore parses every EC2 ``DescribeInstances`` response generically against the whole EC2 model
(~60 members per instance) and parses timestamps with dateutil; for 10,000 instances that is
seconds of CPU on the event loop. Here:

* :func:`fast_timestamp` parses the two timestamp shapes AWS sends (epoch seconds, ISO 8601)
  without dateutil (falling back to botocore's parser for anything else);
* :class:`FleetParserFactory` gives EC2 clients a parser that reads ``DescribeInstances``
  results with one direct ElementTree walk, keeping the fields listed in
  :data:`DESCRIBE_INSTANCES_FIELDS` (what :mod:`ssmtui.aws.fleet` uses) under botocore's names;
  pages of :data:`OFF_LOOP_BYTES` or more are parsed in a worker thread, so the event loop (the
  UI) is not stalled for the tens of milliseconds a 1,000-instance page takes;
* it gives JSON clients a parser that reads SSM ``DescribeInstanceInformation`` results with
  ``json`` and converts only the timestamp members (the fleet makes hundreds of these calls).

Any other operation, and any response a fast path cannot read, goes through botocore's parser
unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiobotocore.parsers import (  # type: ignore[import-untyped,unused-ignore]
    AioEC2QueryParser,
    AioJSONParser,
    AioResponseParserFactory,
)
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

__all__ = [
    "DESCRIBE_INSTANCES_FIELDS",
    "OFF_LOOP_BYTES",
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


#: The default namespace declaration of the root element (EC2's only one).
_ROOT_XMLNS = re.compile(rb"""^(\s*(?:<\?xml[^>]*\?>\s*)?<[A-Za-z]+)\s+xmlns=(?:"[^"]*"|'[^']*')""")


def _children(node: ET.Element | None) -> dict[str, ET.Element]:
    return {} if node is None else {child.tag: child for child in node}


def _text(fields: dict[str, ET.Element], name: str) -> str:
    child = fields.get(name)
    return (child.text or "") if child is not None else ""


def _instance(node: ET.Element, timestamp: Callable[[Any], datetime]) -> dict[str, Any]:
    fields = _children(node)
    inst: dict[str, Any] = {}
    for xml_name, name in _TEXT_FIELDS.items():
        child = fields.get(xml_name)
        if child is not None:
            inst[name] = child.text or ""
    launch = fields.get("launchTime")
    if launch is not None and launch.text:
        inst["LaunchTime"] = timestamp(launch.text)
    state = fields.get("instanceState")
    if state is not None and len(state):
        code = state.findtext("code") or 0
        inst["State"] = {"Code": int(code), "Name": state.findtext("name") or ""}
    placement = fields.get("placement")
    if placement is not None:
        zone = placement.findtext("availabilityZone")
        if zone is not None:
            inst["Placement"] = {"AvailabilityZone": zone}
    profile = fields.get("iamInstanceProfile")
    if profile is not None and len(profile):
        inst["IamInstanceProfile"] = {
            key: value
            for xml, key in (("arn", "Arn"), ("id", "Id"))
            if (value := profile.findtext(xml)) is not None
        }
    tag_set = fields.get("tagSet")
    if tag_set is not None:
        inst["Tags"] = [
            {"Key": item.findtext("key") or "", "Value": item.findtext("value") or ""}
            for item in tag_set.iterfind("item")
        ]
    return inst


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a big acyclic tree.

    Parsing a 1,000-instance page allocates ~50,000 elements and dicts; with botocore's models
    loaded the heap is large, and the collections those allocations trigger cost several times the
    parse itself. Nothing built here has reference cycles, so pausing is safe. Pages may be parsed
    in several worker threads at once: the collector is re-enabled when the last one is done
    (and only if it was enabled when the first one started).
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


_gc_was_enabled = True


def parse_describe_instances(
    body: bytes, timestamp: Callable[[Any], datetime] = fast_timestamp
) -> dict[str, Any]:
    """A ``DescribeInstances`` XML body as botocore would return it, for
    :data:`DESCRIBE_INSTANCES_FIELDS` (plus ``ReservationId``/``OwnerId``, ``NextToken`` and the
    request id). Raises ``ValueError`` for anything that is not such a response (including one
    using XML namespaces beyond the root's default one: the generic parser handles those)."""
    with _gc_paused():
        return _parse_describe_instances(body, timestamp)


def _parse_describe_instances(body: bytes, timestamp: Callable[[Any], datetime]) -> dict[str, Any]:
    # Drop the root's default namespace so tags are plain names (C-level lookups, no
    # "{namespace}tag" splitting per element); any other namespace use is left to botocore.
    body = _ROOT_XMLNS.sub(rb"\1", body, count=1)
    if b"xmlns" in body:
        raise ValueError("namespaced DescribeInstances response")
    root = ET.fromstring(body)
    if root.tag != "DescribeInstancesResponse":
        raise ValueError(f"not a DescribeInstancesResponse: {root.tag}")
    top = _children(root)
    reservations = []
    res_set = top.get("reservationSet")
    for res in () if res_set is None else res_set.iterfind("item"):
        fields = _children(res)
        instances = fields.get("instancesSet")
        reservation: dict[str, Any] = {
            "Instances": []
            if instances is None
            else [_instance(i, timestamp) for i in instances.iterfind("item")]
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


#: Bodies at least this large are parsed in a worker thread (a 1,000-instance page is ~1.4 MB
#: and takes tens of milliseconds; small ones are not worth the hop).
OFF_LOOP_BYTES = 64 * 1024


class _FleetEC2Parser(AioEC2QueryParser):  # type: ignore[misc,unused-ignore]
    """botocore's EC2 parser with the fast ``DescribeInstances`` path, run in a worker thread for
    large pages so the event loop (the UI) keeps running while a page is parsed."""

    def _do_parse(self, response: dict[str, Any], shape: Any) -> Any:
        if shape is not None and getattr(shape, "name", None) == "DescribeInstancesResult":
            body = response.get("body")
            if isinstance(body, bytes) and len(body) >= OFF_LOOP_BYTES:
                return self._parse_off_loop(response, shape)
            try:
                return parse_describe_instances(response["body"], self._timestamp_parser)
            except (ET.ParseError, ValueError, KeyError, TypeError):
                pass  # anything unexpected: the generic parser decides
        return super()._do_parse(response, shape)

    async def _parse_off_loop(self, response: dict[str, Any], shape: Any) -> Any:
        try:
            return await asyncio.to_thread(
                parse_describe_instances, response["body"], self._timestamp_parser
            )
        except (ET.ParseError, ValueError, KeyError, TypeError):
            return super()._do_parse(response, shape)


class _FleetJSONParser(AioJSONParser):  # type: ignore[misc,unused-ignore]
    """botocore's JSON parser with a direct path for ``DescribeInstanceInformation``: the body
    is decoded with ``json`` and only the timestamp members the model declares are converted,
    instead of walking every value through the model (the fleet makes hundreds of these calls).
    """

    def _do_parse(self, response: dict[str, Any], shape: Any) -> Any:
        if shape is not None and getattr(shape, "name", None) == _SSM_INFO_RESULT:
            try:
                parsed = _parse_instance_information(
                    response["body"], shape, self._timestamp_parser
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # anything unexpected: the generic parser decides
            else:
                self._inject_response_metadata(parsed, response["headers"])
                return parsed
        return super()._do_parse(response, shape)


_SSM_INFO_RESULT = "DescribeInstanceInformationResult"
_info_timestamps: dict[int, frozenset[str]] = {}


def _plain(shape: Any, depth: int = 0) -> bool:
    """True when botocore's JSON parser would return ``shape``'s JSON value unchanged."""
    kind = shape.type_name
    if depth > 8 or kind in ("timestamp", "blob") or shape.serialization.get("jsonvalue"):
        return False
    if kind == "structure":
        return all(_plain(m, depth + 1) for m in shape.members.values())
    if kind == "list":
        return _plain(shape.member, depth + 1)
    if kind == "map":
        return _plain(shape.key, depth + 1) and _plain(shape.value, depth + 1)
    return True


def _parse_instance_information(
    body: bytes, shape: Any, timestamp: Callable[[Any], datetime]
) -> dict[str, Any]:
    """A ``DescribeInstanceInformation`` JSON body as botocore would return it."""
    item_shape = shape.members["InstanceInformationList"].member
    stamps = _info_timestamps.get(id(item_shape))
    if stamps is None:
        members = item_shape.members
        stamps = frozenset(n for n, m in members.items() if m.type_name == "timestamp")
        if not all(_plain(m) for n, m in members.items() if n not in stamps):
            raise ValueError("InstanceInformation has members this parser does not convert")
        _info_timestamps[id(item_shape)] = stamps
    doc = json.loads(body) if body else {}
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    parsed: dict[str, Any] = {}
    items = doc.get("InstanceInformationList")
    if items is not None:
        for item in items:
            for name in stamps.intersection(item):
                if item[name] is not None:
                    item[name] = timestamp(item[name])
        parsed["InstanceInformationList"] = items
    if doc.get("NextToken") is not None:
        parsed["NextToken"] = doc["NextToken"]
    return parsed


class FleetParserFactory(AioResponseParserFactory):  # type: ignore[misc,unused-ignore]
    """aiobotocore's parser factory, with :class:`_FleetEC2Parser` for the EC2 protocol,
    :class:`_FleetJSONParser` for JSON services and :func:`fast_timestamp` as the default
    timestamp parser."""

    def __init__(self) -> None:
        super().__init__()
        self.set_parser_defaults(timestamp_parser=fast_timestamp)

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "ec2":
            return _FleetEC2Parser(**self._defaults)
        if protocol_name == "json":
            return _FleetJSONParser(**self._defaults)
        return super().create_parser(protocol_name)
