"""Run the doctor: pick the instances worth examining, read their facts, apply the rules."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from ssmtui.aws.clients import AwsClients
from ssmtui.aws.doctor import ScopeFacts, gather_scope
from ssmtui.aws.fleet import list_fleet, resolve_target
from ssmtui.doctor.model import DoctorReport, ScopeReport
from ssmtui.doctor.rules import scope_report
from ssmtui.models import FleetScope, Instance

__all__ = ["needs_attention", "run_doctor"]


def needs_attention(inst: Instance) -> bool:
    """Instances the doctor looks at unasked: EC2 instances not registered in SSM (running or
    not) and registered instances that are not online."""
    if not inst.registered:
        return not inst.is_hybrid
    return inst.ping_status != "Online"


async def run_doctor(
    clients: AwsClients,
    scopes: Sequence[FleetScope],
    target: str | None = None,
) -> DoctorReport:
    """Examine ``target`` (any instance, registered or not; permissions included), or every
    instance needing attention in ``scopes``; each scope also gets its session preferences.

    An unknown target raises :class:`~ssmtui.errors.TargetError`; a scope that cannot be read
    is reported in its :class:`ScopeReport` (``error``), the others still are.
    """
    now = datetime.now(UTC)
    if target is not None:
        inst = await resolve_target(clients, scopes, target)
        facts = await gather_scope(clients, inst.scope, [inst], check_caller=True)
        report = scope_report(facts, now=now)
        return DoctorReport((report,), target=target)
    fleet = await list_fleet(clients, scopes)
    by_scope: dict[FleetScope, list[Instance]] = {s: [] for s in fleet.scopes}
    for inst in fleet.instances:
        by_scope.setdefault(inst.scope, []).append(inst)

    async def one(scope: FleetScope) -> ScopeReport:
        members = by_scope.get(scope, [])
        online = sum(1 for i in members if i.registered and i.ping_status == "Online")
        registered = sum(1 for i in members if i.registered)
        error = fleet.errors.get(scope)
        if error is not None and not members:
            return scope_report(
                ScopeFacts(scope, error=error), online=online, registered=registered
            )
        picked = [i for i in members if needs_attention(i)]
        facts = await gather_scope(clients, scope, picked)
        return scope_report(facts, now=now, online=online, registered=registered)

    reports = await asyncio.gather(*(one(s) for s in fleet.scopes))
    return DoctorReport(tuple(reports))
