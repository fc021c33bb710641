"""Listing one whole (profile, region) scope fast: EC2 first, SSM by id chunks in parallel.

SSM returns at most 50 nodes per ``DescribeInstanceInformation`` page and its ``NextToken``
chain is strictly sequential, so listing 2,500 nodes is 50 round trips one after another (on
real AWS ~100-300 ms each: seconds). EC2 pages hold 1,000 instances. So a scope is listed EC2
first, and SSM is asked about each EC2 page's instances by ``InstanceIds`` filter chunks of 50
(one call each) *in parallel* as soon as the page arrives, with at most
:data:`SSM_CONCURRENCY` SSM calls in flight per scope: real AWS throttles
``DescribeInstanceInformation`` to a few calls per second sustained (with a burst), and the
clients retry throttled calls in standard mode with backoff, so a small bound keeps bursts short
without a retry storm. The scan starts with one quick EC2 page of 100 listed on its own (its
``NextToken`` is never mixed with another page size) and looks it up before asking anything
else, so the first rows wait neither for a page of 1,000 nor behind the scan's other calls.

Two more SSM passes, running alongside the rest, find what the EC2 listing cannot: hybrid
``mi-*`` nodes (``ResourceType=ManagedInstance``) and registered EC2 nodes whose instance is no
longer listed live (``ResourceType=EC2Instance`` that are ``ConnectionLost``/``Inactive``, e.g.
terminated over an hour ago). EC2 is listed including ``shutting-down``/``terminated`` instances
so that an agent still ``Online`` while its instance terminates is found by the chunk lookups;
those records are then dropped from the join, exactly as when EC2 was listed for live states
only. The result is the same rows with the same fields as joining a full SSM listing with a live
EC2 listing, and rows are complete (EC2 + SSM fields) as each chunk returns, so ``on_rows`` can
stream them to the UI while the rest of the scope is still being listed. If EC2 cannot be
listed, the scope falls back to the full sequential SSM listing (as before: SSM rows only).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ssmtui.aws.clients import AwsClients
from ssmtui.models import FleetScope, Instance, sorted_tags

__all__ = [
    "LIVE_EC2_STATES",
    "SSM_CONCURRENCY",
    "Ec2Failed",
    "Ec2Record",
    "RowsListed",
    "ScopeScan",
    "chunks",
    "ec2_pages",
    "first_error",
    "join",
    "ssm_pages",
]

#: EC2 states listed (terminated / shutting-down instances are gone for Session Manager).
LIVE_EC2_STATES = ("pending", "running", "stopping", "stopped")
#: Also listed by the scope scan, only to look their ids up in SSM (see the module docstring).
_GONE_EC2_STATES = ("shutting-down", "terminated")
_SSM_PAGE = 50  # the API maximum
_EC2_PAGE = 1000  # the API maximum
_EC2_PREVIEW = 100  # the scan's first, quick EC2 page (see ScopeScan._ec2)
_ID_CHUNK = 50  # values per InstanceIds / instance-id filter
#: SSM calls in flight at once per scope (DescribeInstanceInformation is throttled by AWS).
SSM_CONCURRENCY = 8

#: The SSM passes beside the chunk lookups: hybrid nodes, and registered EC2 nodes that may be
#: missing from the EC2 listing (see the module docstring).
_EXTRA_PASSES: tuple[list[dict[str, Any]], ...] = (
    [{"Key": "ResourceType", "Values": ["ManagedInstance"]}],
    [
        {"Key": "ResourceType", "Values": ["EC2Instance"]},
        {"Key": "PingStatus", "Values": ["ConnectionLost", "Inactive"]},
    ],
)

#: Called with the scope and a batch of its rows as they are listed (complete rows; a final
#: row may still be added later for nodes only SSM knows, and the final result is authoritative).
RowsListed = Callable[[FleetScope, list[Instance]], None]

#: An EC2 instance (botocore's dict) and the account id owning its reservation.
Ec2Record = tuple[Mapping[str, Any], "str | None"]


def chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    """``items`` in slices of ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def ssm_pages(
    clients: AwsClients,
    scope: FleetScope,
    filters: list[dict[str, Any]] | None,
    limit: asyncio.Semaphore | None = None,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every ``InstanceInformation`` matching ``filters`` (pages fetched one after another; each
    call holds ``limit`` while in flight; ``on_page`` sees each page's items as it arrives)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"MaxResults": _SSM_PAGE}
    if filters:
        kwargs["Filters"] = filters
    async with clients.client("ssm", scope.profile, scope.region) as ssm:
        while True:
            if limit is None:
                page = await ssm.describe_instance_information(**kwargs)
            else:
                async with limit:
                    page = await ssm.describe_instance_information(**kwargs)
            found = page.get("InstanceInformationList") or []
            items.extend(found)
            if on_page is not None:
                on_page(found)
            token = page.get("NextToken")
            if not token:
                return items
            kwargs["NextToken"] = token


async def ec2_pages(
    clients: AwsClients,
    scope: FleetScope,
    filters: list[dict[str, Any]],
    *,
    page_size: int = _EC2_PAGE,
    follow: bool = True,
) -> AsyncIterator[list[Ec2Record]]:
    """EC2 instances matching ``filters`` as ``(instance, owner account id)``, a page at a time
    (only the first page unless ``follow``)."""
    kwargs: dict[str, Any] = {"Filters": filters, "MaxResults": page_size}
    async with clients.client("ec2", scope.profile, scope.region) as ec2:
        while True:
            page = await ec2.describe_instances(**kwargs)
            found: list[Ec2Record] = []
            for reservation in page.get("Reservations") or []:
                owner = reservation.get("OwnerId")
                for inst in reservation.get("Instances") or []:
                    found.append((inst, owner))
            yield found
            token = page.get("NextToken")
            if not follow or not token:
                return
            kwargs["NextToken"] = token


def _ec2_platform(ec2: Mapping[str, Any]) -> str:
    if str(ec2.get("Platform", "")).lower() == "windows":
        return "Windows"
    details = str(ec2.get("PlatformDetails", ""))
    return "Windows" if details.lower().startswith("windows") else ("Linux" if details else "")


def registered_row(
    scope: FleetScope,
    info: Mapping[str, Any],
    ec2: Mapping[str, Any],
    owner: str | None,
    account: str | None,
) -> Instance:
    """The row of an SSM-registered node (``ec2`` empty when it has no live EC2 record)."""
    iid = str(info.get("InstanceId", ""))
    tags = sorted_tags((t["Key"], t.get("Value", "")) for t in ec2.get("Tags") or [])
    name = next((v for k, v in tags if k == "Name"), "") or str(info.get("Name") or "")
    last_ping = info.get("LastPingDateTime")
    return Instance(
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
        instance_profile=(ec2.get("IamInstanceProfile") or {}).get("Arn") or info.get("IamRole"),
        tags=tags,
        profile=scope.profile,
        region=scope.region,
        account_id=owner or account,
        last_ping=last_ping if isinstance(last_ping, datetime) else None,
        registered=True,
        instance_type=ec2.get("InstanceType"),
    )


def unregistered_row(
    scope: FleetScope, iid: str, ec2: Mapping[str, Any], owner: str | None, account: str | None
) -> Instance:
    """The row of a live EC2 instance without a registered agent."""
    tags = sorted_tags((t["Key"], t.get("Value", "")) for t in ec2.get("Tags") or [])
    return Instance(
        instance_id=iid,
        name=next((v for k, v in tags if k == "Name"), ""),
        ping_status="NotRegistered",
        platform_type=_ec2_platform(ec2),
        platform_name=str(ec2.get("PlatformDetails") or ""),
        private_ip=ec2.get("PrivateIpAddress") or None,
        public_ip=ec2.get("PublicIpAddress") or None,
        computer_name=str(ec2.get("PrivateDnsName") or ""),
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


def join(
    scope: FleetScope,
    ssm_items: Iterable[Mapping[str, Any]],
    ec2_items: Iterable[Ec2Record],
) -> list[Instance]:
    """Merge one scope's SSM and (live) EC2 records into instances."""
    ec2_by_id: dict[str, Ec2Record] = {
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
        out.append(registered_row(scope, info, ec2, owner, account))
    for iid, (ec2, owner) in ec2_by_id.items():
        if iid not in seen:
            out.append(unregistered_row(scope, iid, ec2, owner, account))
    return out


class Ec2Failed(Exception):
    """The EC2 listing of a scope failed (wraps the error; the scan falls back to SSM only)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class ScopeScan:
    """One scope listed EC2 first, SSM by id chunks in parallel (see the module docstring)."""

    def __init__(
        self,
        clients: AwsClients,
        scope: FleetScope,
        on_rows: RowsListed | None,
        concurrency: int | None = None,
    ) -> None:
        self.clients = clients
        self.scope = scope
        self.on_rows = on_rows
        self.limit = asyncio.Semaphore(SSM_CONCURRENCY if concurrency is None else concurrency)
        self.rows: list[Instance] = []
        self.seen: set[str] = set()  # ids with a row
        self.account: str | None = None
        #: SSM records the two extra passes found so far (their ids need no chunk lookup).
        self.known: dict[str, dict[str, Any]] = {}

    async def run(self) -> list[Instance]:
        """Every row of the scope; raises :class:`Ec2Failed` or the first SSM error."""
        try:
            async with asyncio.TaskGroup() as tg:
                await self._ec2(tg)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        # Nodes only SSM knows: hybrid ones, and EC2 nodes whose instance is not listed live.
        late: list[Instance] = []
        for iid, info in self.known.items():
            if iid not in self.seen:
                self.seen.add(iid)
                late.append(registered_row(self.scope, info, {}, None, self.account))
        self._emit(late)
        return self.rows

    async def _collect(self, flt: list[dict[str, Any]]) -> None:
        await ssm_pages(self.clients, self.scope, flt, self.limit, self._found)

    def _found(self, items: list[dict[str, Any]]) -> None:
        for info in items:
            iid = str(info.get("InstanceId", ""))
            if iid:
                self.known.setdefault(iid, info)

    async def _ec2(self, tg: asyncio.TaskGroup) -> None:
        """List EC2 and start every SSM call (the extra passes and the chunk lookups)."""
        states = [*LIVE_EC2_STATES, *_GONE_EC2_STATES]
        filters = [{"Name": "instance-state-name", "Values": states}]
        queued: set[str] = set()
        # First a small page alone (not followed: its NextToken is never mixed with another page
        # size), and its lookups before anything else is asked, so the first rows wait neither
        # for a 1,000-instance page nor behind the other calls (server-side or throttling).
        preview: list[asyncio.Task[None]] = []
        try:
            async for page in ec2_pages(
                self.clients, self.scope, filters, page_size=_EC2_PREVIEW, follow=False
            ):
                preview = self._queue(tg, page, queued)
        except Exception as exc:
            raise Ec2Failed(exc) from exc
        if preview:
            await asyncio.wait(preview)  # their errors surface through the task group
        for flt in _EXTRA_PASSES:
            tg.create_task(self._collect(flt))
        try:
            async for page in ec2_pages(self.clients, self.scope, filters):
                self._queue(tg, page, queued)
        except Exception as exc:
            raise Ec2Failed(exc) from exc

    def _queue(
        self, tg: asyncio.TaskGroup, page: list[Ec2Record], queued: set[str]
    ) -> list[asyncio.Task[None]]:
        """Start the SSM lookups of one EC2 page's instances not looked up yet."""
        if self.account is None:
            self.account = next((owner for _, owner in page if owner), None)
        records = {str(inst["InstanceId"]): (inst, owner) for inst, owner in page}
        ids = [i for i in records if i not in queued]
        queued.update(ids)
        known = {i: records[i] for i in ids if i in self.known}
        if known:  # already found by an extra pass: no lookup needed
            self._emit(self._rows(known, [self.known[i] for i in known]))
        unknown = [i for i in ids if i not in known]
        return [
            tg.create_task(self._lookup({i: records[i] for i in chunk}))
            for chunk in chunks(unknown, _ID_CHUNK)
        ]

    async def _lookup(self, records: dict[str, Ec2Record]) -> None:
        """Rows for one chunk of EC2 instances (SSM fields from one filtered call)."""
        flt = [{"Key": "InstanceIds", "Values": list(records)}]
        infos = await ssm_pages(self.clients, self.scope, flt, self.limit)
        self._emit(self._rows(records, infos))

    def _rows(
        self, records: dict[str, Ec2Record], infos: Iterable[Mapping[str, Any]]
    ) -> list[Instance]:
        """Rows for EC2 instances given every SSM record there is for them."""
        rows: list[Instance] = []
        for info in infos:
            iid = str(info.get("InstanceId", ""))
            if not iid or iid in self.seen:
                continue
            self.seen.add(iid)
            ec2, owner = records.get(iid, ({}, None))
            if not _is_live(ec2):
                ec2, owner = {}, None  # as if EC2 had been listed for live states only
            rows.append(registered_row(self.scope, info, ec2, owner, self.account))
        for iid, (ec2, owner) in records.items():
            if iid not in self.seen and _is_live(ec2):
                self.seen.add(iid)
                rows.append(unregistered_row(self.scope, iid, ec2, owner, self.account))
        return rows

    def _emit(self, rows: list[Instance]) -> None:
        if rows:
            self.rows.extend(rows)
            if self.on_rows is not None:
                self.on_rows(self.scope, rows)


def _is_live(ec2: Mapping[str, Any]) -> bool:
    return (ec2.get("State") or {}).get("Name") in LIVE_EC2_STATES


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a failed scan raises: cancellation first, then an SSM error, then the EC2 one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    fatal = [e for e in leaves if not isinstance(e, Exception)]
    ssm = [e for e in leaves if not isinstance(e, Ec2Failed)]
    return (fatal or ssm or leaves)[0]
