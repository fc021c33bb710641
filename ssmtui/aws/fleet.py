"""The fleet: SSM ``DescribeInstanceInformation`` ⋈ EC2 ``DescribeInstances`` -> models.Instance.

Each (profile, region) scope is listed concurrently; within a scope the SSM and EC2 listings run
concurrently too. The join keeps every SSM-registered node (EC2 instances and hybrid ``mi-*``
nodes, which have no EC2 record) and adds live EC2 instances without a registered agent as
``ping_status="NotRegistered"``. A scope that fails lands in :attr:`FleetResult.errors` and never
hides the others; a failing EC2 call alone still lists the scope's SSM nodes (without EC2 names,
tags and state) and records the error.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ssmtui.aws.clients import AwsClients
from ssmtui.errors import AwsError, SsmtuiError, TargetError
from ssmtui.models import FleetResult, FleetScope, Instance, Target, sorted_tags

__all__ = ["describe_instance_information", "describe_instances", "list_fleet", "resolve_target"]

#: EC2 states listed (terminated / shutting-down instances are gone for Session Manager).
LIVE_EC2_STATES = ("pending", "running", "stopping", "stopped")
_SSM_PAGE = 50  # the API maximum
_EC2_PAGE = 1000  # the API maximum
_ID_CHUNK = 50  # values per InstanceIds / instance-id filter


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def describe_instance_information(
    clients: AwsClients, scope: FleetScope, instance_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every ``InstanceInformation`` of a scope (all pages), optionally only ``instance_ids``."""
    items: list[dict[str, Any]] = []
    if instance_ids is not None and not instance_ids:
        return items
    async with clients.client("ssm", scope.profile, scope.region) as ssm:
        paginator = ssm.get_paginator("describe_instance_information")
        batches: list[dict[str, Any]] = [{}]
        if instance_ids:
            batches = [
                {"Filters": [{"Key": "InstanceIds", "Values": list(chunk)}]}
                for chunk in _chunks(instance_ids, _ID_CHUNK)
            ]
        for extra in batches:
            async for page in paginator.paginate(MaxResults=_SSM_PAGE, **extra):
                items.extend(page.get("InstanceInformationList") or [])
    return items


async def describe_instances(
    clients: AwsClients, scope: FleetScope, instance_ids: Sequence[str] | None = None
) -> list[tuple[dict[str, Any], str | None]]:
    """Live EC2 instances of a scope as ``(instance, owner account id)`` (all pages)."""
    found: list[tuple[dict[str, Any], str | None]] = []
    state_filter = {"Name": "instance-state-name", "Values": list(LIVE_EC2_STATES)}
    if instance_ids is not None:
        ec2_ids = [i for i in instance_ids if i.startswith("i-")]
        if not ec2_ids:
            return found
        batches = [
            [state_filter, {"Name": "instance-id", "Values": list(c)}]
            for c in _chunks(ec2_ids, _ID_CHUNK)
        ]
    else:
        batches = [[state_filter]]
    async with clients.client("ec2", scope.profile, scope.region) as ec2:
        paginator = ec2.get_paginator("describe_instances")
        for filters in batches:
            async for page in paginator.paginate(Filters=filters, MaxResults=_EC2_PAGE):
                for reservation in page.get("Reservations") or []:
                    owner = reservation.get("OwnerId")
                    for inst in reservation.get("Instances") or []:
                        found.append((inst, owner))
    return found


def _ec2_platform(ec2: Mapping[str, Any]) -> str:
    if str(ec2.get("Platform", "")).lower() == "windows":
        return "Windows"
    details = str(ec2.get("PlatformDetails", ""))
    return "Windows" if details.lower().startswith("windows") else ("Linux" if details else "")


def _join(
    scope: FleetScope,
    ssm_items: Iterable[Mapping[str, Any]],
    ec2_items: Iterable[tuple[Mapping[str, Any], str | None]],
) -> list[Instance]:
    """Merge one scope's SSM and EC2 records into instances."""
    ec2_by_id: dict[str, tuple[Mapping[str, Any], str | None]] = {
        str(inst["InstanceId"]): (inst, owner) for inst, owner in ec2_items
    }
    account = next((owner for _, owner in ec2_by_id.values() if owner), None)
    out: list[Instance] = []
    seen: set[str] = set()
    for info in ssm_items:
        iid = str(info.get("InstanceId", ""))
        if not iid or iid in seen:
            continue
        seen.add(iid)
        ec2, owner = ec2_by_id.get(iid, ({}, None))
        tags = sorted_tags((t["Key"], t.get("Value", "")) for t in ec2.get("Tags") or [])
        name = next((v for k, v in tags if k == "Name"), "") or str(info.get("Name") or "")
        last_ping = info.get("LastPingDateTime")
        out.append(
            Instance(
                instance_id=iid,
                name=name,
                ping_status=str(info.get("PingStatus") or "Inactive"),
                platform_type=str(info.get("PlatformType") or _ec2_platform(ec2)),
                platform_name=str(info.get("PlatformName") or ""),
                platform_version=str(info.get("PlatformVersion") or ""),
                agent_version=str(info.get("AgentVersion") or ""),
                private_ip=ec2.get("PrivateIpAddress") or info.get("IPAddress") or None,
                public_ip=ec2.get("PublicIpAddress") or None,
                computer_name=str(info.get("ComputerName") or ""),
                resource_type=str(
                    info.get("ResourceType")
                    or ("ManagedInstance" if iid.startswith("mi-") else "EC2Instance")
                ),
                state=(ec2.get("State") or {}).get("Name") if ec2 else None,
                vpc_id=ec2.get("VpcId"),
                subnet_id=ec2.get("SubnetId"),
                instance_profile=(ec2.get("IamInstanceProfile") or {}).get("Arn")
                or info.get("IamRole"),
                tags=tags,
                profile=scope.profile,
                region=scope.region,
                account_id=owner or account,
                last_ping=last_ping if isinstance(last_ping, datetime) else None,
                registered=True,
                instance_type=ec2.get("InstanceType"),
            )
        )
    for iid, (ec2, owner) in ec2_by_id.items():
        if iid in seen:
            continue
        tags = sorted_tags((t["Key"], t.get("Value", "")) for t in ec2.get("Tags") or [])
        dns = str(ec2.get("PrivateDnsName") or "")
        out.append(
            Instance(
                instance_id=iid,
                name=next((v for k, v in tags if k == "Name"), ""),
                ping_status="NotRegistered",
                platform_type=_ec2_platform(ec2),
                platform_name=str(ec2.get("PlatformDetails") or ""),
                private_ip=ec2.get("PrivateIpAddress") or None,
                public_ip=ec2.get("PublicIpAddress") or None,
                computer_name=dns,
                resource_type="EC2Instance",
                state=(ec2.get("State") or {}).get("Name"),
                vpc_id=ec2.get("VpcId"),
                subnet_id=ec2.get("SubnetId"),
                instance_profile=(ec2.get("IamInstanceProfile") or {}).get("Arn"),
                tags=tags,
                profile=scope.profile,
                region=scope.region,
                account_id=owner or account,
                registered=False,
                instance_type=ec2.get("InstanceType"),
            )
        )
    return out


async def _list_scope(
    clients: AwsClients, scope: FleetScope, instance_ids: Sequence[str] | None
) -> tuple[list[Instance], SsmtuiError | None]:
    """One scope: (instances, partial error). Raises when SSM itself could not be listed."""
    ssm_result, ec2_result = await asyncio.gather(
        describe_instance_information(clients, scope, instance_ids),
        describe_instances(clients, scope, instance_ids),
        return_exceptions=True,
    )
    for res in (ssm_result, ec2_result):
        if isinstance(res, BaseException) and not isinstance(res, Exception):
            raise res  # cancellation / KeyboardInterrupt
    if isinstance(ssm_result, BaseException):
        raise _as_ssmtui(ssm_result, scope)
    partial: SsmtuiError | None = None
    if isinstance(ec2_result, BaseException):
        partial = _as_ssmtui(ec2_result, scope)
        ec2_result = []
    return _join(scope, ssm_result, ec2_result), partial


def _as_ssmtui(exc: BaseException, scope: FleetScope) -> SsmtuiError:
    if isinstance(exc, SsmtuiError):
        return exc
    return AwsError(
        f"{scope}: {type(exc).__name__}: {exc}",
        cause=exc,
        profile=scope.profile,
        region=scope.region,
    )


async def list_fleet(
    clients: AwsClients,
    scopes: Iterable[FleetScope],
    *,
    instance_ids: Sequence[str] | None = None,
) -> FleetResult:
    """List every scope concurrently; ``instance_ids`` narrows the listing server-side.

    Instances come back grouped by scope (in ``scopes`` order), sorted by display name.
    """
    ordered = list(dict.fromkeys(scopes))
    results = await asyncio.gather(
        *(_list_scope(clients, s, instance_ids) for s in ordered), return_exceptions=True
    )
    instances: list[Instance] = []
    errors: dict[FleetScope, SsmtuiError] = {}
    for scope, res in zip(ordered, results, strict=True):
        if isinstance(res, BaseException):
            if not isinstance(res, Exception):
                raise res
            errors[scope] = _as_ssmtui(res, scope)
            continue
        found, partial = res
        if partial is not None:
            errors[scope] = partial
        found.sort(key=lambda i: (i.display_name.lower(), i.instance_id))
        instances.extend(found)
    return FleetResult(instances=tuple(instances), errors=errors, scopes=tuple(ordered))


def describe_candidate(inst: Instance) -> str:
    """``name (i-…, profile/region, Online)``: how a candidate is shown in an error."""
    where = f"{inst.profile}/{inst.region}"
    return f"{inst.display_name} ({inst.instance_id}, {where}, {inst.ping_status})"


async def resolve_target(
    clients: AwsClients, scopes: Iterable[FleetScope], target: str | Target
) -> Instance:
    """The one instance ``target`` names across ``scopes``.

    Matches by id, Name tag (or hybrid node name / computer name; case-insensitive if no exact
    match), ``tag:K=V`` or private/public IP. No match -> :class:`TargetError` listing close
    matches; several -> :class:`TargetError` with the candidates. If nothing matched and a scope
    failed, that scope's error is raised instead (an expired login is not "no such instance").
    """
    parsed = Target.parse(target) if isinstance(target, str) else target
    ids = [parsed.value] if parsed.kind == "id" else None
    result = await list_fleet(clients, scopes, instance_ids=ids)
    matches = [i for i in result.instances if parsed.matches(i)]
    if not matches and parsed.kind == "name":
        folded = parsed.value.casefold()
        matches = [
            i for i in result.instances if folded in (i.name.casefold(), i.computer_name.casefold())
        ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = [describe_candidate(i) for i in matches]
        more = f" (+{len(shown) - 5} more)" if len(shown) > 5 else ""
        raise TargetError(
            f"target {str(parsed)!r} is ambiguous: {len(matches)} instances match",
            hint="use the instance id, or narrow with --profile/--region: "
            + "; ".join(shown[:5])
            + more,
            target=str(parsed),
            candidates=shown,
        )
    if result.errors:
        raise next(iter(result.errors.values()))
    close = _close_matches(parsed, result.instances)
    raise TargetError(
        f"no instance matches {str(parsed)!r} in {_scopes_text(result.scopes)}",
        hint=("did you mean: " + "; ".join(close)) if close else "list instances with: ssmtui list",
        target=str(parsed),
        candidates=close,
    )


def _scopes_text(scopes: Sequence[FleetScope]) -> str:
    if len(scopes) <= 3:
        return ", ".join(str(s) for s in scopes) or "no profile/region"
    return f"{len(scopes)} profile/region scopes"


def _close_matches(target: Target, instances: Sequence[Instance], n: int = 5) -> list[str]:
    """Display strings of instances whose name/id/IP resembles the target."""
    key = target.value.casefold()
    by_word: dict[str, Instance] = {}
    for inst in instances:
        for word in (inst.name, inst.instance_id, inst.private_ip or "", inst.computer_name):
            if word:
                by_word.setdefault(word.casefold(), inst)
    picked: list[Instance] = []
    for word in difflib.get_close_matches(key, list(by_word), n=n, cutoff=0.6):
        if by_word[word] not in picked:
            picked.append(by_word[word])
    if len(picked) < n and len(key) >= 3:
        for word, inst in by_word.items():
            if key in word and inst not in picked:
                picked.append(inst)
                if len(picked) >= n:
                    break
    return [describe_candidate(i) for i in picked]
