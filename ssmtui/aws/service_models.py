"""Trimmed AWS service models: only the operations ssmtui calls, loaded from the botocore wheel.

botocore builds a client from the service's whole JSON model. EC2's has ~800 operations and
thousands of shapes (several MB of JSON, ~25 MB of Python objects kept for the life of the
client); SSM's has ~150 operations. ssmtui calls a handful of them, so :class:`TrimmedLoader`
(botocore's loader, registered as every session's ``data_loader`` by
:class:`~ssmtui.aws.clients.AwsClients`) hands botocore a model reduced to the operations in
:data:`ALLOWED_OPERATIONS` and the shapes they reference, without documentation strings.
The JSON is read from the installed botocore data and decoded one operation / shape at a time
(:func:`extract_service_model`), so the full model never exists as Python objects: decoding it
whole and trimming afterwards leaves ~10 MB of fragmented heap behind. Nothing from AWS is
vendored into the repository. botocore's endpoint data (``endpoints.json``, ~7 MB as objects)
is cut the same way to the services in :data:`ENDPOINT_DATA_SERVICES`.

:data:`ALLOWED_OPERATIONS` is the one place to list what may be called; services not in it
(STS, KMS, IAM: small models, and IAM operations are also named dynamically) are loaded
untrimmed. ``tests/test_service_models.py`` scans the package for every operation name of a
trimmed service and fails if one is called but not allowed.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from botocore.loaders import JSONFileLoader, Loader  # type: ignore[import-untyped]

__all__ = [
    "ALLOWED_OPERATIONS",
    "ENDPOINT_DATA_SERVICES",
    "TrimmedLoader",
    "extract_endpoints",
    "extract_service_model",
    "trim_service_model",
]

#: Service -> the operations (API names) its trimmed model keeps.
ALLOWED_OPERATIONS: Mapping[str, frozenset[str]] = {
    "ec2": frozenset(
        {
            "DescribeInstances",
            "DescribeRegions",
            "DescribeRouteTables",
            "DescribeSecurityGroups",
            "DescribeSubnets",
            "DescribeVpcEndpoints",
        }
    ),
    "ssm": frozenset(
        {
            "DescribeInstanceInformation",
            "DescribeSessions",
            "GetCommandInvocation",
            "GetConnectionStatus",
            "GetDocument",
            "ResumeSession",
            "SendCommand",
            "StartSession",
            "TerminateSession",
        }
    ),
}


#: Services kept in botocore's endpoint data (``endpoints.json``, 1.2 MB of JSON for ~400
#: services): the endpoint prefixes of the clients ssmtui creates, and of those the credential
#: chain creates (STS for role assumption, SSO / SSO-OIDC for IAM Identity Center logins).
ENDPOINT_DATA_SERVICES = frozenset(
    {"ec2", "iam", "kms", "oidc", "portal.sso", "sso", "ssm", "ssmmessages", "sts"}
)


def _shape_refs(shape: Mapping[str, Any]) -> Iterable[str]:
    """Names of the shapes one shape refers to (structure members, list member, map key/value)."""
    for member in (shape.get("members") or {}).values():
        yield member["shape"]
    for key in ("member", "key", "value"):
        ref = shape.get(key)
        if ref is not None:
            yield ref["shape"]


def _undocumented(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a shape or operation without documentation (members' too)."""
    out = {k: v for k, v in data.items() if k != "documentation"}
    members = out.get("members")
    if isinstance(members, dict):
        out["members"] = {
            name: {k: v for k, v in ref.items() if k != "documentation"}
            for name, ref in members.items()
        }
    return out


def trim_service_model(model: Mapping[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """``model`` (a ``service-2`` document) with only ``operations`` and the shapes they reach.

    Unknown operation names are ignored (an older botocore may not have them all).
    """
    all_ops: Mapping[str, Any] = model.get("operations") or {}
    shapes: Mapping[str, Any] = model.get("shapes") or {}
    ops = {name: _undocumented(all_ops[name]) for name in operations if name in all_ops}
    wanted: set[str] = set()
    todo: list[str] = []
    for op in ops.values():
        refs = [op.get("input"), op.get("output"), *(op.get("errors") or [])]
        todo.extend(ref["shape"] for ref in refs if ref and "shape" in ref)
    while todo:
        name = todo.pop()
        if name in wanted or name not in shapes:
            continue
        wanted.add(name)
        todo.extend(_shape_refs(shapes[name]))
    trimmed = {k: v for k, v in model.items() if k not in ("operations", "shapes", "documentation")}
    trimmed["operations"] = ops
    trimmed["shapes"] = {name: _undocumented(shapes[name]) for name in sorted(wanted)}
    return trimmed


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _ws(text: str, idx: int) -> int:
    match = _WS.match(text, idx)
    return idx if match is None else match.end()


def _members(text: str, idx: int, handle: Callable[[str, int], int]) -> int:
    """Walk the JSON object starting at ``text[idx]``: ``handle(key, value_start)`` reads (or
    skips) each member's value and returns where it ends. Returns the end of the object."""
    idx = _ws(text, idx)
    if text[idx] != "{":
        raise ValueError(f"expected an object at {idx}")
    idx = _ws(text, idx + 1)
    if text[idx] == "}":
        return idx + 1
    while True:
        key, idx = _DECODER.raw_decode(text, idx)
        idx = _ws(text, idx)
        if text[idx] != ":":
            raise ValueError(f"expected ':' at {idx}")
        idx = _ws(text, handle(str(key), _ws(text, idx + 1)))
        if text[idx] == "}":
            return idx + 1
        if text[idx] != ",":
            raise ValueError(f"expected ',' at {idx}")
        idx = _ws(text, idx + 1)


def extract_service_model(text: str, operations: Iterable[str]) -> dict[str, Any]:
    """:func:`trim_service_model` of the ``service-2`` JSON ``text``, decoding one operation or
    shape at a time (each dropped at once unless kept): peak memory stays small and nothing of
    the full model survives to fragment the heap."""
    wanted_ops = set(operations)
    top: dict[str, Any] = {}
    ops: dict[str, Any] = {}
    shapes: dict[str, tuple[int, list[str]]] = {}  # name -> (offset, referenced shapes)

    def operation(name: str, start: int) -> int:
        value, end = _DECODER.raw_decode(text, start)
        if name in wanted_ops:
            ops[name] = _undocumented(value)
        return int(end)

    def shape(name: str, start: int) -> int:
        value, end = _DECODER.raw_decode(text, start)
        shapes[name] = (start, list(_shape_refs(value)))
        return int(end)

    def member(key: str, start: int) -> int:
        if key == "operations":
            return _members(text, start, operation)
        if key == "shapes":
            return _members(text, start, shape)
        value, end = _DECODER.raw_decode(text, start)
        if key != "documentation":
            top[key] = value
        return int(end)

    _members(text, 0, member)
    wanted: set[str] = set()
    todo = [
        ref["shape"]
        for op in ops.values()
        for ref in (op.get("input"), op.get("output"), *(op.get("errors") or []))
        if ref and "shape" in ref
    ]
    while todo:
        name = todo.pop()
        if name in wanted or name not in shapes:
            continue
        wanted.add(name)
        todo.extend(shapes[name][1])
    top["operations"] = ops
    top["shapes"] = {
        name: _undocumented(_DECODER.raw_decode(text, shapes[name][0])[0])
        for name in sorted(wanted)
    }
    return top


def _elements(text: str, idx: int, handle: Callable[[int], int]) -> int:
    """Walk the JSON array starting at ``text[idx]`` (``handle(value_start)`` returns where each
    element ends). Returns the end of the array."""
    idx = _ws(text, idx)
    if text[idx] != "[":
        raise ValueError(f"expected an array at {idx}")
    idx = _ws(text, idx + 1)
    if text[idx] == "]":
        return idx + 1
    while True:
        idx = _ws(text, handle(idx))
        if text[idx] == "]":
            return idx + 1
        if text[idx] != ",":
            raise ValueError(f"expected ',' at {idx}")
        idx = _ws(text, idx + 1)


def extract_endpoints(text: str, services: Iterable[str]) -> dict[str, Any]:
    """botocore's ``endpoints.json`` ``text`` with only ``services`` in each partition (decoded
    one service at a time, like :func:`extract_service_model`)."""
    keep = set(services)
    top: dict[str, Any] = {}
    partitions: list[dict[str, Any]] = []

    def partition(start: int) -> int:
        current: dict[str, Any] = {}

        def service(name: str, at: int) -> int:
            value, end = _DECODER.raw_decode(text, at)
            if name in keep:
                current["services"][name] = value
            return int(end)

        def member(key: str, at: int) -> int:
            if key == "services":
                current["services"] = {}
                return _members(text, at, service)
            value, end = _DECODER.raw_decode(text, at)
            current[key] = value
            return int(end)

        end = _members(text, start, member)
        partitions.append(current)
        return end

    def member(key: str, start: int) -> int:
        if key == "partitions":
            top["partitions"] = partitions
            return _elements(text, start, partition)
        value, end = _DECODER.raw_decode(text, start)
        top[key] = value
        return int(end)

    _members(text, 0, member)
    return top


class _TrimmingFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's JSON file loader; ``<service>/<version>/service-2`` of an allowed service is
    read with :func:`extract_service_model`."""

    def __init__(self, allowed: Mapping[str, frozenset[str]]) -> None:
        self._allowed = allowed

    def load_file(self, file_path: str) -> Any:
        """The (trimmed) document at ``file_path`` (without extension), or None."""
        name = os.path.basename(file_path)
        extract: Callable[[str], dict[str, Any]] | None = None
        if name == "endpoints":
            extract = partial(extract_endpoints, services=ENDPOINT_DATA_SERVICES)
        elif name == "service-2":
            ops = self._allowed.get(os.path.basename(os.path.dirname(os.path.dirname(file_path))))
            if ops is not None:
                extract = partial(extract_service_model, operations=ops)
        if extract is None:
            return super().load_file(file_path)
        for ext, opener in (".json", open), (".json.gz", gzip.open):
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as fp:
                    text = fp.read().decode("utf-8")
                try:
                    return extract(text)
                except (ValueError, IndexError, KeyError, TypeError):
                    return super().load_file(file_path)  # not the layout expected: load it all
        return None


class TrimmedLoader(Loader):  # type: ignore[misc]
    """botocore's data loader serving trimmed ``service-2`` models for
    :data:`ALLOWED_OPERATIONS`' services (everything else unchanged)."""

    def __init__(
        self, allowed: Mapping[str, frozenset[str]] | None = None, data_path: str | None = None
    ) -> None:
        """``data_path``: botocore's ``data_path`` setting (``AWS_DATA_PATH``), searched first."""
        extra = [
            os.path.expanduser(os.path.expandvars(p))
            for p in (data_path.split(os.pathsep) if data_path else [])
        ]
        super().__init__(
            extra_search_paths=extra,
            file_loader=_TrimmingFileLoader(ALLOWED_OPERATIONS if allowed is None else allowed),
        )
