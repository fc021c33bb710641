"""Plain, frozen data shared by every layer: instances, targets, fleet scopes and results.

No I/O and nothing heavy here; :mod:`ssmtui.aws.fleet` builds these from the AWS APIs, the CLI
and the UI only read them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ssmtui.errors import SsmtuiError, TargetError, UsageError
from ssmtui.protocol.versions import MUX_ABOVE_AGENT, agent_compare, plugin_version_gt

__all__ = [
    "PING_STATUSES",
    "REMOTE_HOST_MIN_AGENT",
    "FleetResult",
    "FleetScope",
    "Instance",
    "InstanceFilter",
    "RemoteSession",
    "Target",
    "TargetKind",
]

#: Every ``ping_status`` an :class:`Instance` can have ("NotRegistered": EC2 only, no SSM agent).
PING_STATUSES = ("Online", "ConnectionLost", "Inactive", "NotRegistered")
#: Oldest agent that serves ``AWS-StartPortForwardingSessionToRemoteHost`` (AWS Session Manager
#: docs: "port forwarding sessions to remote hosts require SSM Agent 3.1.1374.0 or later").
REMOTE_HOST_MIN_AGENT = "3.1.1374.0"

_INSTANCE_ID_RE = re.compile(r"^(i|mi)-[0-9a-f]{8,17}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")

TargetKind = Literal["id", "name", "tag", "ip"]


@dataclass(frozen=True, slots=True, order=True)
class FleetScope:
    """One ``(profile, region)`` pair the fleet is listed in."""

    profile: str
    region: str

    def __str__(self) -> str:
        return f"{self.profile}/{self.region}"

    @staticmethod
    def valid_region(region: str) -> bool:
        """Whether ``region`` looks like an AWS region name (``us-east-1``, ``us-gov-west-1``)."""
        return bool(_REGION_RE.match(region))


@dataclass(frozen=True, slots=True)
class Instance:
    """A managed node (SSM) and/or EC2 instance, as one row of the fleet."""

    instance_id: str
    name: str = ""
    #: ``Online`` / ``ConnectionLost`` / ``Inactive`` (SSM) or ``NotRegistered`` (EC2 only).
    ping_status: str = "NotRegistered"
    platform_type: str = ""
    platform_name: str = ""
    platform_version: str = ""
    agent_version: str = ""
    private_ip: str | None = None
    public_ip: str | None = None
    computer_name: str = ""
    #: ``EC2Instance`` or ``ManagedInstance`` (hybrid ``mi-*``).
    resource_type: str = "EC2Instance"
    #: EC2 state name (``running``, ``stopped`` …); None for hybrid nodes / unknown.
    state: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    #: EC2 IAM instance profile ARN (or the hybrid node's service role name).
    instance_profile: str | None = None
    #: ``(key, value)`` pairs, sorted by key.
    tags: tuple[tuple[str, str], ...] = ()
    profile: str = ""
    region: str = ""
    account_id: str | None = None
    last_ping: datetime | None = None
    #: Whether the SSM agent is registered (DescribeInstanceInformation lists it).
    registered: bool = False
    instance_type: str | None = None

    def tag(self, key: str, default: str | None = None) -> str | None:
        """The value of tag ``key`` (case-sensitive), or ``default``."""
        for k, v in self.tags:
            if k == key:
                return v
        return default

    @property
    def tag_map(self) -> dict[str, str]:
        """The tags as a new dict."""
        return dict(self.tags)

    @property
    def display_name(self) -> str:
        """Name tag, else the hybrid node name / computer name, else the id."""
        return self.name or self.computer_name or self.instance_id

    @property
    def scope(self) -> FleetScope:
        """Where this instance was listed."""
        return FleetScope(self.profile, self.region)

    @property
    def is_hybrid(self) -> bool:
        """An on-premises / other-cloud node registered through a hybrid activation."""
        return self.instance_id.startswith("mi-")

    @property
    def is_online(self) -> bool:
        """Registered, pinging, and (for EC2) running: a session can be started now."""
        return self.registered and self.ping_status == "Online" and self.state in (None, "running")

    @property
    def supports_mux(self) -> bool:
        """Whether port forwarding uses smux (agent > 3.0.196.0, as the reference plugin says)."""
        return plugin_version_gt(self.agent_version, MUX_ABOVE_AGENT)

    @property
    def supports_remote_host(self) -> bool:
        """Whether the agent serves ``AWS-StartPortForwardingSessionToRemoteHost``."""
        if not self.agent_version:
            return False
        return agent_compare(self.agent_version, REMOTE_HOST_MIN_AGENT) >= 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tags as an object, datetimes as ISO 8601)."""
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "display_name": self.display_name,
            "ping_status": self.ping_status,
            "platform_type": self.platform_type,
            "platform_name": self.platform_name,
            "platform_version": self.platform_version,
            "agent_version": self.agent_version,
            "private_ip": self.private_ip,
            "public_ip": self.public_ip,
            "computer_name": self.computer_name,
            "resource_type": self.resource_type,
            "state": self.state,
            "vpc_id": self.vpc_id,
            "subnet_id": self.subnet_id,
            "instance_profile": self.instance_profile,
            "instance_type": self.instance_type,
            "tags": dict(self.tags),
            "profile": self.profile,
            "region": self.region,
            "account_id": self.account_id,
            "last_ping": self.last_ping.isoformat() if self.last_ping else None,
            "registered": self.registered,
            "supports_mux": self.supports_mux,
            "supports_remote_host": self.supports_remote_host,
        }


def sorted_tags(tags: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Tags as the sorted tuple of pairs :class:`Instance` stores."""
    items = tags.items() if isinstance(tags, Mapping) else tags
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class Target:
    """What a person typed to name an instance: an id, a Name tag, ``tag:K=V`` or a private IP."""

    kind: TargetKind
    value: str
    #: The tag key for ``kind == "tag"``.
    key: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``i-0abc…`` | ``mi-…`` | ``tag:Key=Value`` | ``10.0.1.5`` | ``Name``.

        Raises :class:`~ssmtui.errors.TargetError` for an empty target or a bad ``tag:`` form.
        """
        raw = text.strip()
        if not raw:
            raise TargetError("empty target", hint="give an instance id, Name, tag:K=V or IP")
        if _INSTANCE_ID_RE.match(raw):
            return cls("id", raw)
        if raw.startswith("tag:"):
            key, sep, value = raw[4:].partition("=")
            if not sep or not key:
                raise TargetError(
                    f"bad target {raw!r}: expected tag:Key=Value",
                    target=raw,
                    hint="e.g. tag:Role=web",
                )
            return cls("tag", value, key=key)
        try:
            ipaddress.ip_address(raw)
        except ValueError:
            return cls("name", raw)
        return cls("ip", raw)

    def matches(self, inst: Instance) -> bool:
        """Whether ``inst`` is what this target names (exact, case-sensitive)."""
        if self.kind == "id":
            return inst.instance_id == self.value
        if self.kind == "ip":
            return self.value in (inst.private_ip, inst.public_ip)
        if self.kind == "tag":
            return inst.tag(self.key or "") == self.value
        return self.value in (inst.name, inst.computer_name)

    def __str__(self) -> str:
        return f"tag:{self.key}={self.value}" if self.kind == "tag" else self.value


_FILTER_KINDS = ("text", "tag", "ping", "name", "id", "ip", "profile", "region", "platform")
_PING_ALIASES = {
    "online": "Online",
    "connectionlost": "ConnectionLost",
    "lost": "ConnectionLost",
    "inactive": "Inactive",
    "notregistered": "NotRegistered",
    "unregistered": "NotRegistered",
}


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    """One listing filter: a substring, ``tag:K=V`` (``tag:K`` = has the tag), ``ping:online`` …

    Also ``name:``, ``id:``, ``ip:``, ``profile:``, ``region:`` and ``platform:`` (substrings,
    case-insensitive). Used by ``ssmtui list FILTER`` and the UI's search box.
    """

    kind: str
    value: str
    key: str | None = None

    @classmethod
    def parse(cls, text: str) -> InstanceFilter:
        """Parse a filter; raises :class:`~ssmtui.errors.UsageError` on bad syntax."""
        raw = text.strip()
        if not raw:
            raise UsageError("empty filter", hint="use a substring, tag:K=V or ping:online")
        prefix, sep, rest = raw.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z]+", prefix):
            return cls("text", raw.lower())
        kind = prefix.lower()
        if kind == "tag":
            key, eq, value = rest.partition("=")
            if not key:
                raise UsageError(
                    f"bad filter {raw!r}: expected tag:Key=Value", hint="e.g. tag:Role=web"
                )
            return cls("tag", value, key=key) if eq else cls("tagkey", "", key=key)
        if kind == "ping":
            status = _PING_ALIASES.get(rest.lower().replace("-", "").replace("_", ""))
            if status is None:
                raise UsageError(
                    f"bad filter {raw!r}: unknown ping status {rest!r}",
                    hint="use ping:online, ping:connectionlost, ping:inactive or "
                    "ping:notregistered",
                )
            return cls("ping", status)
        if kind in _FILTER_KINDS:
            if not rest:
                raise UsageError(f"bad filter {raw!r}: nothing after {prefix}:")
            return cls(kind, rest.lower())
        raise UsageError(
            f"unknown filter {prefix + ':'!r} in {raw!r}",
            hint="use a substring, tag:K=V, ping:STATUS, name:, id:, ip:, profile:, region: "
            "or platform:",
        )

    def matches(self, inst: Instance) -> bool:
        """Whether ``inst`` passes this filter."""
        v = self.value
        if self.kind == "tag":
            return inst.tag(self.key or "") == v
        if self.kind == "tagkey":
            return inst.tag(self.key or "") is not None
        if self.kind == "ping":
            return inst.ping_status == v
        if self.kind == "name":
            return v in inst.display_name.lower()
        if self.kind == "id":
            return v in inst.instance_id
        if self.kind == "ip":
            return any(v in ip for ip in (inst.private_ip, inst.public_ip) if ip)
        if self.kind == "profile":
            return v in inst.profile.lower()
        if self.kind == "region":
            return v in inst.region.lower()
        if self.kind == "platform":
            return v in f"{inst.platform_type} {inst.platform_name}".lower()
        haystack = " ".join(
            [
                inst.instance_id,
                inst.name,
                inst.computer_name,
                inst.private_ip or "",
                inst.public_ip or "",
                inst.platform_name,
                inst.profile,
                inst.region,
                *(t for kv in inst.tags for t in kv),
            ]
        ).lower()
        return v in haystack


@dataclass(frozen=True, slots=True)
class FleetResult:
    """The fleet over several scopes: instances, and the errors of scopes that failed.

    A scope appears in :attr:`errors` when listing it failed (wholly, or partly: SSM listed but
    EC2 enrichment failed); its instances, if any, are still in :attr:`instances`.
    """

    instances: tuple[Instance, ...] = ()
    errors: Mapping[FleetScope, SsmtuiError] = field(default_factory=dict)
    scopes: tuple[FleetScope, ...] = ()
    #: Rows listed so far while the listing goes on (a streamed, incomplete result).
    partial: bool = False

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def ok(self) -> bool:
        """True when every scope listed without error."""
        return not self.errors

    def by_id(self) -> dict[str, Instance]:
        """Instance id -> instance."""
        return {i.instance_id: i for i in self.instances}

    def in_scope(self, scope: FleetScope) -> list[Instance]:
        """The instances listed in one scope."""
        return [i for i in self.instances if i.scope == scope]

    def filtered(self, filters: Iterable[InstanceFilter]) -> list[Instance]:
        """Instances passing every filter."""
        flts = list(filters)
        return [i for i in self.instances if all(f.matches(i) for f in flts)]


#: Session document -> what the session does, for tables (the default shell has no document).
_SESSION_WHAT = {
    "": "Shell",
    "SSM-SessionManagerRunShell": "Shell",
    "AWS-StartPortForwardingSession": "Port",
    "AWS-StartPortForwardingSessionToRemoteHost": "Remote host",
    "AWS-StartSSHSession": "SSH",
    "AWS-StartInteractiveCommand": "Command",
    "AWS-StartNonInteractiveCommand": "Command",
}


@dataclass(frozen=True, slots=True)
class RemoteSession:
    """One Session Manager session as DescribeSessions reports it (anyone's, from anywhere).

    DescribeSessions does not return a session's parameters (port numbers, commands): ``what``
    says only what the document tells, plus ``parameters`` when the caller knows them (a session
    this machine started and recorded).
    """

    session_id: str
    target: str
    #: ``Connected``, ``Connecting``, ``Disconnected``, ``Terminated``, ``Terminating``, ``Failed``.
    status: str
    #: ARN of the IAM principal that started the session.
    owner: str = ""
    start: datetime | None = None
    end: datetime | None = None
    #: Document name ("" for the default shell document).
    document: str = ""
    reason: str = ""
    #: DescribeSessions' ``Details`` (free text, usually empty).
    details: str = ""
    profile: str = ""
    region: str = ""
    #: Where the session's output is logged (S3 / CloudWatch URL), when logging is on.
    output_url: str = ""
    #: Document parameters when known from elsewhere (never from DescribeSessions).
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def scope(self) -> FleetScope:
        """Where the session was listed."""
        return FleetScope(self.profile, self.region)

    @property
    def active(self) -> bool:
        """Not ended (DescribeSessions' ``Active`` state)."""
        return self.status not in ("Terminated", "Failed") and self.end is None

    @property
    def owner_name(self) -> str:
        """The user part of the owner ARN: the session name of an assumed role
        (``…:assumed-role/Admin/alice@example.com`` -> ``alice@example.com``), the user name of
        an IAM user (``…:user/path/bob`` -> ``bob``), ``root``; else the ARN as given."""
        arn = self.owner
        if not arn.startswith("arn:"):
            return arn
        resource = arn.split(":", 5)[-1]
        if resource == "root":
            return "root"
        kind, _, rest = resource.partition("/")
        if not rest:
            return arn
        if kind in ("assumed-role", "user", "federated-user"):
            return rest.rsplit("/", 1)[-1]
        return rest

    def is_mine(self, caller_arn: str | None) -> bool:
        """Whether the principal ``caller_arn`` (STS GetCallerIdentity) started this session."""
        return bool(caller_arn) and self.owner == caller_arn

    @property
    def what(self) -> str:
        """``Shell``, ``Port 5432``, ``Remote host db:5432``, ``SSH``, ``Command`` … (port and
        host only when :attr:`parameters` knows them)."""
        label = _SESSION_WHAT.get(self.document, self.document)
        params = dict(self.parameters)
        port, host = params.get("portNumber"), params.get("host")
        if label == "Port" and port:
            return f"Port {port}"
        if label == "Remote host" and host:
            return f"Remote host {host}:{port}" if port else f"Remote host {host}"
        return label

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to end (or to ``now`` while active); None without a start."""
        if self.start is None:
            return None
        return max(0.0, ((self.end or now) - self.start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601)."""
        return {
            "session_id": self.session_id,
            "target": self.target,
            "status": self.status,
            "owner": self.owner,
            "owner_name": self.owner_name,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "document": self.document,
            "what": self.what,
            "reason": self.reason,
            "details": self.details,
            "output_url": self.output_url,
            "profile": self.profile,
            "region": self.region,
        }
