"""The fleet: SSM ``DescribeInstanceInformation`` ⋈ EC2 ``DescribeInstances`` -> models.Instance.

Each (profile, region) scope is listed concurrently. The join keeps every SSM-registered node (EC2
instances and hybrid ``mi-*`` nodes, which have no EC2 record) and adds live EC2 instances
without a registered agent as ``ping_status="NotRegistered"``. A scope that fails lands in
:attr:`FleetResult.errors` and never hides the others; a failing EC2 call alone still lists the
scope's SSM nodes (without EC2 names, tags and state) and records the error.

A whole scope is listed by :class:`ssmtui.aws.fleet_scan.ScopeScan` (EC2 first, SSM looked up
by id chunks in parallel, rows streamed as they complete; the module says why).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from ssmtui.aws.clients import AwsClients
from ssmtui.aws.fleet_scan import (
    LIVE_EC2_STATES,
    Ec2Failed,
    Ec2Record,
    RowsListed,
    ScopeScan,
    chunks,
    ec2_pages,
    join,
    ssm_pages,
)
from ssmtui.errors import AwsError, SsmtuiError, TargetError
from ssmtui.models import FleetResult, FleetScope, Instance, Target

__all__ = [
    "RowsListed",
    "describe_instance_information",
    "describe_instances",
    "list_fleet",
    "resolve_target",
]

_ID_CHUNK = 50  # values per InstanceIds / instance-id filter


async def describe_instance_information(
    clients: AwsClients, scope: FleetScope, instance_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every ``InstanceInformation`` of a scope (all pages), optionally only ``instance_ids``."""
    if instance_ids is None:
        return await ssm_pages(clients, scope, None)
    items: list[dict[str, Any]] = []
    for chunk in chunks(instance_ids, _ID_CHUNK):
        flt = [{"Key": "InstanceIds", "Values": list(chunk)}]
        items.extend(await ssm_pages(clients, scope, flt))
    return items


async def describe_instances(
    clients: AwsClients, scope: FleetScope, instance_ids: Sequence[str] | None = None
) -> list[Ec2Record]:
    """Live EC2 instances of a scope as ``(instance, owner account id)`` (all pages)."""
    found: list[Ec2Record] = []
    state_filter = {"Name": "instance-state-name", "Values": list(LIVE_EC2_STATES)}
    if instance_ids is not None:
        ec2_ids = [i for i in instance_ids if i.startswith("i-")]
        if not ec2_ids:
            return found
        batches = [
            [state_filter, {"Name": "instance-id", "Values": list(c)}]
            for c in chunks(ec2_ids, _ID_CHUNK)
        ]
    else:
        batches = [[state_filter]]
    for filters in batches:
        async for page in ec2_pages(clients, scope, filters):
            found.extend(page)
    return found


async def _list_scope(
    clients: AwsClients,
    scope: FleetScope,
    instance_ids: Sequence[str] | None,
    on_rows: RowsListed | None = None,
) -> tuple[list[Instance], SsmtuiError | None]:
    """One scope: (instances, partial error). Raises when SSM itself could not be listed."""
    if instance_ids is None:
        try:
            return await ScopeScan(clients, scope, on_rows).run(), None
        except Ec2Failed as failed:
            ec2_error = _as_ssmtui(failed.error, scope)
            ssm_items = await describe_instance_information(clients, scope)
            return join(scope, ssm_items, []), ec2_error
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
    return join(scope, ssm_result, ec2_result), partial


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
    on_rows: RowsListed | None = None,
) -> FleetResult:
    """List every scope concurrently; ``instance_ids`` narrows the listing server-side.

    Instances come back grouped by scope (in ``scopes`` order), sorted by display name.
    ``on_rows`` (whole-scope listings only) is called with each batch of complete rows as it is
    listed, so a UI can show them before the listing ends; the returned result is the
    authoritative one (a scope that fails, or whose EC2 listing fails, is listed again or
    dropped there).
    """
    ordered = list(dict.fromkeys(scopes))
    results = await asyncio.gather(
        *(_list_scope(clients, s, instance_ids, on_rows) for s in ordered),
        return_exceptions=True,
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
