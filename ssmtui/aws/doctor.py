"""What ``ssmtui doctor`` reads from AWS: the facts behind "why can't I connect?".

Everything here only *reads* (EC2 Describe*, IAM Get*/List*/SimulatePrincipalPolicy, SSM
GetDocument, STS GetCallerIdentity) and returns plain dataclasses; the rules that turn facts into
findings live in :mod:`ssmtui.doctor.rules` and never touch the network. A call the caller may
not make (AccessDenied) or that fails does not stop the doctor: the fact is recorded as unknown
with the one-line reason, and the rules say what they could not check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote

from ssmtui.aws.clients import AwsClients
from ssmtui.errors import AwsError, SsmtuiError
from ssmtui.models import FleetScope, Instance

__all__ = [
    "PREFERENCES_DOCUMENT",
    "CallerFacts",
    "InstanceFacts",
    "NetworkFacts",
    "PolicyDoc",
    "PreferencesFacts",
    "RoleFacts",
    "ScopeFacts",
    "Unknown",
    "gather_scope",
    "instance_arn",
]

#: The document holding a region's Session Manager preferences.
PREFERENCES_DOCUMENT = "SSM-SessionManagerRunShell"
#: AWS-managed policies we know the content of (no need to fetch them).
KNOWN_MANAGED = {
    "AmazonSSMManagedInstanceCore",
    "AmazonSSMManagedEC2InstanceDefaultPolicy",
    "AmazonEC2RoleforSSM",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Unknown:
    """A fact that could not be read: which call, and the one-line reason."""

    call: str
    reason: str
    denied: bool = False


@dataclass(frozen=True)
class PolicyDoc:
    """One policy of a principal: its name, ARN (managed) and document (None if unreadable)."""

    name: str
    arn: str | None
    document: dict[str, Any] | None
    inline: bool = False


@dataclass
class RoleFacts:
    """An EC2 instance's instance profile and the policies of its role."""

    profile_arn: str | None
    profile_name: str | None = None
    profile_found: bool | None = None
    role_name: str | None = None
    policies: list[PolicyDoc] = field(default_factory=list)
    unknown: Unknown | None = None


@dataclass
class NetworkFacts:
    """The instance's subnet, the route table that applies to it, the VPC's interface
    endpoints and the security groups those endpoints (and the instance) use."""

    vpc_id: str | None
    subnet_id: str | None
    private_ip: str | None
    public_ip: str | None
    instance_groups: list[str] = field(default_factory=list)
    subnet: dict[str, Any] | None = None
    route_table: dict[str, Any] | None = None
    route_table_is_main: bool = False
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: Unknown | None = None


@dataclass
class CallerFacts:
    """Who is asking, and whether they may start a session on one instance."""

    arn: str | None
    principal_arn: str | None = None
    decision: str | None = None
    matched_policies: list[str] = field(default_factory=list)
    missing_context: list[str] = field(default_factory=list)
    policies: list[PolicyDoc] = field(default_factory=list)
    unknown: Unknown | None = None
    now: datetime | None = None


@dataclass
class PreferencesFacts:
    """The region's Session Manager preferences (``inputs`` of the document), or why none."""

    exists: bool | None
    inputs: dict[str, Any] = field(default_factory=dict)
    unknown: Unknown | None = None


@dataclass
class InstanceFacts:
    instance: Instance
    ec2: dict[str, Any] | None = None
    role: RoleFacts | None = None
    network: NetworkFacts | None = None
    caller: CallerFacts | None = None


@dataclass
class ScopeFacts:
    """One profile/region: its preferences, its caller and the instances examined."""

    scope: FleetScope
    account_id: str | None = None
    caller_arn: str | None = None
    preferences: PreferencesFacts | None = None
    instances: list[InstanceFacts] = field(default_factory=list)
    error: SsmtuiError | None = None


def _unknown(call: str, exc: BaseException) -> Unknown:
    code = getattr(exc, "code", None) or ""
    denied = "AccessDenied" in code or "UnauthorizedOperation" in code or "denied" in str(exc)
    return Unknown(call, str(exc), denied=denied)


def _partition(arn: str | None) -> str:
    parts = (arn or "").split(":")
    return parts[1] if len(parts) > 2 and parts[1] else "aws"


def instance_arn(inst: Instance, partition: str = "aws") -> str:
    """The ARN IAM sees for a session target: EC2 instance or hybrid managed instance."""
    account = inst.account_id or "*"
    if inst.is_hybrid:
        return f"arn:{partition}:ssm:{inst.region}:{account}:managed-instance/{inst.instance_id}"
    return f"arn:{partition}:ec2:{inst.region}:{account}:instance/{inst.instance_id}"


def policy_document(raw: Any) -> dict[str, Any] | None:
    """A policy document as IAM returns it: botocore usually decodes it already; otherwise it
    is URL-encoded JSON."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        for text in (raw, unquote(raw)):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            return doc if isinstance(doc, dict) else None
    return None


class _Reader:
    """One scope's AWS calls, with small caches (several instances share subnets, VPCs,
    instance profiles and policies)."""

    def __init__(self, clients: AwsClients, scope: FleetScope) -> None:
        self.clients = clients
        self.scope = scope
        self._memo: dict[tuple[str, ...], asyncio.Task[Any]] = {}

    async def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        async with self.clients.client(service, self.scope.profile, self.scope.region) as c:
            result: dict[str, Any] = await getattr(c, operation)(**kwargs)
            return result

    def once(self, key: tuple[str, ...], factory: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """The result of ``factory()`` shared by every caller asking for ``key``."""
        task = self._memo.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._memo[key] = task
        return asyncio.shield(task)

    async def pages(self, service: str, operation: str, key: str, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        token: str | None = None
        marker = "Marker" if service == "iam" else "NextToken"
        while True:
            extra = {marker: token} if token else {}
            page = await self.call(service, operation, **kwargs, **extra)
            items.extend(page.get(key) or [])
            more = page.get("IsTruncated", True) if service == "iam" else True
            token = page.get(marker) if more else None
            if not token:
                return items

    # ------------------------------------------------------------------ IAM

    async def managed_policy(self, arn: str) -> PolicyDoc:
        name = arn.rsplit("/", 1)[-1]
        if arn.split(":")[4:5] == ["aws"] and name in KNOWN_MANAGED:
            return PolicyDoc(name, arn, None)
        policy = (await self.call("iam", "get_policy", PolicyArn=arn)).get("Policy") or {}
        version = await self.call(
            "iam", "get_policy_version", PolicyArn=arn, VersionId=policy.get("DefaultVersionId")
        )
        doc = policy_document((version.get("PolicyVersion") or {}).get("Document"))
        return PolicyDoc(name, arn, doc)

    def _managed(self, arn: str) -> Awaitable[PolicyDoc]:
        return self.once(("policy", arn), lambda: self.managed_policy(arn))

    async def principal_policies(self, kind: str, name: str) -> list[PolicyDoc]:
        """Attached and inline policies of an IAM ``user`` or ``role``."""
        key = "UserName" if kind == "user" else "RoleName"
        attached = await self.pages(
            "iam", f"list_attached_{kind}_policies", "AttachedPolicies", **{key: name}
        )
        names = await self.pages("iam", f"list_{kind}_policies", "PolicyNames", **{key: name})
        managed = [self._managed(str(p["PolicyArn"])) for p in attached]

        async def inline(policy: str) -> PolicyDoc:
            got = await self.call("iam", f"get_{kind}_policy", **{key: name, "PolicyName": policy})
            return PolicyDoc(policy, None, policy_document(got.get("PolicyDocument")), inline=True)

        return list(await asyncio.gather(*managed, *(inline(str(n)) for n in names)))

    async def role_facts(self, profile_arn: str | None) -> RoleFacts:
        if not profile_arn:
            return RoleFacts(None, profile_found=False)
        name = profile_arn.rsplit("/", 1)[-1]
        facts = RoleFacts(profile_arn, profile_name=name)
        try:
            got = await self.call("iam", "get_instance_profile", InstanceProfileName=name)
        except AwsError as exc:
            if exc.code == "NoSuchEntity":
                facts.profile_found = False
            else:
                facts.unknown = _unknown("iam:GetInstanceProfile", exc)
            return facts
        facts.profile_found = True
        roles = (got.get("InstanceProfile") or {}).get("Roles") or []
        if not roles:
            return facts
        facts.role_name = str(roles[0].get("RoleName"))
        try:
            facts.policies = await self.principal_policies("role", facts.role_name)
        except SsmtuiError as exc:
            facts.unknown = _unknown("iam:ListAttachedRolePolicies", exc)
        return facts

    # ------------------------------------------------------------------ EC2

    async def vpc_endpoints(self, vpc_id: str) -> list[dict[str, Any]]:
        return await self.pages(
            "ec2",
            "describe_vpc_endpoints",
            "VpcEndpoints",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )

    async def route_tables(self, vpc_id: str) -> list[dict[str, Any]]:
        return await self.pages(
            "ec2",
            "describe_route_tables",
            "RouteTables",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )

    async def subnet(self, subnet_id: str) -> dict[str, Any] | None:
        got = await self.call("ec2", "describe_subnets", SubnetIds=[subnet_id])
        subnets = got.get("Subnets") or []
        return subnets[0] if subnets else None

    async def groups(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        got = await self.call("ec2", "describe_security_groups", GroupIds=list(ids))
        return {str(g["GroupId"]): g for g in got.get("SecurityGroups") or []}

    async def network_facts(self, inst: Instance, ec2: dict[str, Any] | None) -> NetworkFacts:
        facts = NetworkFacts(
            vpc_id=inst.vpc_id,
            subnet_id=inst.subnet_id,
            private_ip=inst.private_ip,
            public_ip=inst.public_ip,
            instance_groups=[str(g["GroupId"]) for g in (ec2 or {}).get("SecurityGroups") or []],
        )
        if not inst.vpc_id or not inst.subnet_id:
            return facts
        vpc, subnet_id = inst.vpc_id, inst.subnet_id
        try:
            subnet, tables, endpoints = await asyncio.gather(
                self.once(("subnet", subnet_id), lambda: self.subnet(subnet_id)),
                self.once(("rtb", vpc), lambda: self.route_tables(vpc)),
                self.once(("vpce", vpc), lambda: self.vpc_endpoints(vpc)),
            )
            facts.subnet = subnet
            facts.route_table, facts.route_table_is_main = pick_route_table(tables, subnet_id)
            facts.endpoints = list(endpoints)
            group_ids = sorted(
                {str(g["GroupId"]) for e in endpoints for g in e.get("Groups") or []}
            )
            key = ("sg", *group_ids)
            facts.groups = await self.once(key, lambda: self.groups(group_ids))
        except SsmtuiError as exc:
            facts.unknown = _unknown("ec2:Describe*", exc)
        return facts

    # ------------------------------------------------------------------ caller

    async def caller_identity(self) -> dict[str, Any]:
        return await self.call("sts", "get_caller_identity")

    async def principal(self, caller_arn: str) -> tuple[str, str, str] | None:
        """``(kind, name, iam_arn)`` of the caller: an IAM user, or the role behind an
        assumed-role session (GetRole finds its path, e.g. the one of SSO roles)."""
        parts = caller_arn.split(":", 5)
        if len(parts) < 6:
            return None
        resource = parts[5]
        if resource.startswith("user/"):
            return "user", resource.rsplit("/", 1)[-1], caller_arn
        if resource.startswith("assumed-role/"):
            role = resource.split("/")[1]
            try:
                got = await self.call("iam", "get_role", RoleName=role)
                arn = str((got.get("Role") or {}).get("Arn"))
            except SsmtuiError:
                arn = f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
            return "role", role, arn
        return None

    async def caller_facts(self, caller_arn: str | None, inst: Instance) -> CallerFacts:
        now = datetime.now(UTC)
        facts = CallerFacts(caller_arn, now=now)
        if not caller_arn:
            facts.unknown = Unknown("sts:GetCallerIdentity", "caller unknown")
            return facts
        who = await self.principal(caller_arn)
        if who is None:
            facts.unknown = Unknown("iam:SimulatePrincipalPolicy", f"cannot simulate {caller_arn}")
            return facts
        kind, name, facts.principal_arn = who
        context = [
            {
                "ContextKeyName": "aws:CurrentTime",
                "ContextKeyValues": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
                "ContextKeyType": "date",
            }
        ] + [
            {
                "ContextKeyName": f"ssm:resourceTag/{k}",
                "ContextKeyValues": [v],
                "ContextKeyType": "string",
            }
            for k, v in inst.tags
        ]
        try:
            got = await self.call(
                "iam",
                "simulate_principal_policy",
                PolicySourceArn=facts.principal_arn,
                ActionNames=["ssm:StartSession"],
                ResourceArns=[instance_arn(inst, _partition(caller_arn))],
                ContextEntries=context,
            )
            result = (got.get("EvaluationResults") or [{}])[0]
            facts.decision = str(result.get("EvalDecision") or "")
            facts.matched_policies = [
                str(m.get("SourcePolicyId"))
                for m in result.get("MatchedStatements") or []
                if m.get("SourcePolicyId")
            ]
            facts.missing_context = [str(k) for k in result.get("MissingContextValues") or []]
        except SsmtuiError as exc:
            facts.unknown = _unknown("iam:SimulatePrincipalPolicy", exc)
        try:
            facts.policies = await self.once(
                ("principal", kind, name), lambda: self.principal_policies(kind, name)
            )
        except SsmtuiError:
            facts.policies = []  # date conditions just go unreported
        return facts

    # ------------------------------------------------------------------ SSM

    async def preferences(self) -> PreferencesFacts:
        try:
            got = await self.call("ssm", "get_document", Name=PREFERENCES_DOCUMENT)
        except AwsError as exc:
            if exc.code in ("InvalidDocument", "InvalidDocumentException"):
                return PreferencesFacts(exists=False)
            return PreferencesFacts(exists=None, unknown=_unknown("ssm:GetDocument", exc))
        except SsmtuiError as exc:
            return PreferencesFacts(exists=None, unknown=_unknown("ssm:GetDocument", exc))
        content = policy_document(got.get("Content")) or {}
        inputs = content.get("inputs") if isinstance(content.get("inputs"), dict) else {}
        return PreferencesFacts(exists=True, inputs=dict(inputs or {}))

    async def ec2_records(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        chunks = [list(ids[i : i + 200]) for i in range(0, len(ids), 200)]
        pages = await asyncio.gather(
            *(
                self.pages("ec2", "describe_instances", "Reservations", InstanceIds=c)
                for c in chunks
            )
        )
        for reservation in (r for page in pages for r in page):
            for item in reservation.get("Instances") or []:
                out[str(item["InstanceId"])] = item
        return out


def pick_route_table(
    tables: Iterable[dict[str, Any]], subnet_id: str
) -> tuple[dict[str, Any] | None, bool]:
    """The route table that applies to ``subnet_id``: the one explicitly associated with it,
    else the VPC's main route table. Returns ``(table, is_main)``."""
    main: dict[str, Any] | None = None
    for table in tables:
        for assoc in table.get("Associations") or []:
            if assoc.get("SubnetId") == subnet_id:
                return table, False
            if assoc.get("Main"):
                main = table
    return main, main is not None


async def gather_scope(
    clients: AwsClients,
    scope: FleetScope,
    instances: Sequence[Instance],
    *,
    check_caller: bool = False,
) -> ScopeFacts:
    """Read every fact about ``instances`` (all of ``scope``) the rules need.

    ``check_caller`` also simulates ``ssm:StartSession`` for each instance (IAM policy
    simulation; one call per instance, so only for instances the user asked about).
    """
    reader = _Reader(clients, scope)
    facts = ScopeFacts(scope)
    try:
        ident = await reader.caller_identity()
        facts.caller_arn = str(ident.get("Arn") or "") or None
        facts.account_id = str(ident.get("Account") or "") or None
    except SsmtuiError as exc:
        facts.error = exc
        return facts
    prefs_task = asyncio.ensure_future(reader.preferences())
    ec2_ids = [i.instance_id for i in instances if not i.is_hybrid]
    try:
        records = await reader.ec2_records(ec2_ids)
    except SsmtuiError:
        records = {}

    async def one(inst: Instance) -> InstanceFacts:
        ec2 = records.get(inst.instance_id)
        out = InstanceFacts(inst, ec2=ec2)
        jobs: list[Awaitable[Any]] = []
        if not inst.is_hybrid:
            arn = inst.instance_profile
            jobs.append(reader.once(("profile", arn or ""), lambda: reader.role_facts(arn)))
            jobs.append(reader.network_facts(inst, ec2))
        if check_caller:
            jobs.append(reader.caller_facts(facts.caller_arn, inst))
        results = await asyncio.gather(*jobs)
        if not inst.is_hybrid:
            out.role, out.network = results[0], results[1]
        if check_caller:
            out.caller = results[-1]
        return out

    facts.instances = list(await asyncio.gather(*(one(i) for i in instances)))
    facts.preferences = await prefs_task
    return facts
