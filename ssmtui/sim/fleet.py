"""The demo fleet: simulated EC2 instances and hybrid managed nodes, spread over profiles/regions.

A fleet is plain data. The loopback AWS simulation (:mod:`ssmtui.sim.api`) serves it through the
real SSM/EC2 wire protocols; the simulated agents (:mod:`ssmtui.sim.agent`) answer sessions on it.

Fleets are defined in TOML (see ``ssmtui/sim/fleets/default.toml`` for the format) or generated
deterministically with :func:`generate_fleet` for scale tests.
"""

from __future__ import annotations

import hashlib
import random
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ssmtui.sim.network import SimNetwork, attach_instance, declared_network, public_subnet_id

__all__ = [
    "DEFAULT_ACCOUNTS",
    "LATEST_AGENT_VERSION",
    "PING_STATUSES",
    "SimFleet",
    "SimInstance",
    "default_fleet",
    "demo_credentials",
    "fleet_from_dict",
    "generate_fleet",
    "load_fleet",
]

#: The agent version the simulated SSM service reports as "latest" (``IsLatestVersion``).
LATEST_AGENT_VERSION = "3.3.987.0"
#: Valid ``PingStatus`` values.
PING_STATUSES = ("Online", "ConnectionLost", "Inactive")
#: Valid ``PlatformType`` values.
PLATFORM_TYPES = ("Linux", "Windows", "MacOS")
#: Valid EC2 instance states the simulation uses.
EC2_STATES = ("running", "stopped")
#: Profile name -> account id used when a fleet file names no accounts.
DEFAULT_ACCOUNTS: dict[str, str] = {"dev": "111111111111", "prod": "222222222222"}

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_ID_RE = re.compile(r"^(i|mi)-[0-9a-f]{8,17}$")
_EC2_STATE_CODES = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80}


def demo_credentials(profile: str) -> tuple[str, str]:
    """Return the throwaway ``(access_key_id, secret_access_key)`` of a demo profile.

    The access key is ``AKIADEMO`` followed by the upper-cased profile name, padded with ``X`` to
    the usual 20 characters (so ``dev`` -> ``AKIADEMODEVXXXXXXXXX``); the demo server maps it back
    to the profile and thus the account. Names longer than 12 characters are shortened with a hash.
    """
    tag = re.sub(r"[^A-Z0-9]", "", profile.upper())
    if len(tag) > 12 or tag != profile.upper():
        digest = hashlib.sha256(profile.encode()).hexdigest().upper()
        tag = (tag[:6] + digest)[:12]
    access_key = ("AKIADEMO" + tag).ljust(20, "X")
    secret_key = f"ssmtui-demo-secret/{profile}".ljust(40, "x")
    return access_key, secret_key


def _stable_hex(*parts: str, length: int = 17) -> str:
    """Deterministic hex string derived from ``parts``."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _default_ping_age(ping_status: str) -> float:
    """Seconds since the last ping, typical for a ping status."""
    return {"Online": 40.0, "ConnectionLost": 3 * 3600.0, "Inactive": 12 * 86400.0}.get(
        ping_status, 60.0
    )


@dataclass(slots=True)
class SimInstance:
    """One simulated node: an EC2 instance (``i-…``) or a hybrid managed instance (``mi-…``)."""

    instance_id: str
    name: str
    profile: str
    region: str
    account_id: str
    ping_status: str = "Online"
    platform_type: str = "Linux"
    platform_name: str = "Amazon Linux"
    platform_version: str = "2023"
    agent_version: str = LATEST_AGENT_VERSION
    private_ip: str = ""
    public_ip: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    availability_zone: str | None = None
    #: None = the default profile; ``""`` = no instance profile at all.
    instance_profile_arn: str | None = None
    #: Security groups (default: the VPC's ``default`` group).
    security_group_ids: list[str] = field(default_factory=list)
    ec2_state: str = "running"
    #: Whether the SSM agent is registered (only registered nodes appear in SSM APIs).
    registered: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    computer_name: str = ""
    instance_type: str = "t3.micro"
    image_id: str = ""
    launch_time: datetime = _EPOCH
    #: Seconds between the last agent ping and "now" (``LastPingDateTime``).
    last_ping_age: float = 40.0
    #: Hybrid nodes: the service role and activation they registered with.
    iam_role: str | None = None
    activation_id: str | None = None
    registration_date: datetime | None = None

    @property
    def resource_type(self) -> str:
        """``ManagedInstance`` for hybrid ``mi-*`` nodes, ``EC2Instance`` otherwise."""
        return "ManagedInstance" if self.is_hybrid else "EC2Instance"

    @property
    def is_hybrid(self) -> bool:
        """True for an on-premises node registered via a hybrid activation."""
        return self.instance_id.startswith("mi-")

    @property
    def is_ec2(self) -> bool:
        """True for an EC2 instance (visible through EC2 ``DescribeInstances``)."""
        return not self.is_hybrid

    @property
    def is_windows(self) -> bool:
        """True for Windows nodes."""
        return self.platform_type == "Windows"

    @property
    def is_latest_agent(self) -> bool:
        """Whether the node runs :data:`LATEST_AGENT_VERSION`."""
        return self.agent_version == LATEST_AGENT_VERSION

    @property
    def is_online(self) -> bool:
        """Registered, pinging, and (for EC2) running: a session can be started."""
        return self.registered and self.ping_status == "Online" and self.ec2_state == "running"

    @property
    def ec2_state_code(self) -> int:
        """The numeric EC2 instance state code (16 running, 80 stopped)."""
        return _EC2_STATE_CODES.get(self.ec2_state, 16)

    @property
    def instance_profile_id(self) -> str | None:
        """A stable fake ``AIPA…`` id for the instance profile, if any."""
        if not self.instance_profile_arn:
            return None
        return "AIPA" + _stable_hex(self.instance_profile_arn, length=17).upper()

    @property
    def platform_details(self) -> str:
        """EC2 ``platformDetails`` (billing platform)."""
        return "Windows" if self.is_windows else "Linux/UNIX"

    def last_ping(self, now: datetime | None = None) -> datetime:
        """``LastPingDateTime`` relative to ``now`` (default: the current time)."""
        return (now or datetime.now(UTC)) - timedelta(seconds=self.last_ping_age)


@dataclass
class SimFleet:
    """A set of simulated nodes, with the profile -> account mapping and Session preferences."""

    instances: list[SimInstance]
    #: Profile name -> AWS account id.
    accounts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACCOUNTS))
    #: Session Manager preferences by region (or ``"<account>:<region>"``), keys as in the
    #: ``SSM-SessionManagerRunShell`` document ``inputs`` (s3BucketName, kmsKeyId, ...).
    preferences: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: VPCs, subnets, route tables, endpoints, security groups (derived when not given).
    network: SimNetwork | None = None
    #: IAM declarations (``[iam]`` table: roles and instance profiles).
    iam: dict[str, Any] = field(default_factory=dict)
    #: Sessions started "elsewhere" (``[[sessions]]`` tables), seeded into a new server.
    sessions: list[dict[str, Any]] = field(default_factory=list)
    #: ``"profile/region"`` -> VPC index (the second octet of derived addresses).
    network_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.network is None:
            self.network = SimNetwork()
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the lookup indexes (call after adding/removing instances or moving one)."""
        self._by_id: dict[str, SimInstance] = {}
        self._by_scope: dict[tuple[str, str], list[SimInstance]] = {}
        for inst in self.instances:
            if inst.instance_id in self._by_id:
                raise ValueError(f"duplicate instance id {inst.instance_id}")
            self._by_id[inst.instance_id] = inst
            self._by_scope.setdefault((inst.account_id, inst.region), []).append(inst)
            self._attach(inst)
        self._profile_by_key = {demo_credentials(p)[0]: p for p in self.accounts}

    def _attach(self, inst: SimInstance) -> None:
        """Place an EC2 instance in the network model (creating its VPC/subnet if needed)."""
        if not inst.is_ec2 or not inst.vpc_id or not inst.subnet_id or self.network is None:
            return
        vpc = self.network.get(inst.vpc_id) or attach_instance(
            self.network,
            vpc_id=inst.vpc_id,
            subnet_id=inst.subnet_id,
            account_id=inst.account_id,
            region=inst.region,
            profile=inst.profile,
            index=self.network_index.get(f"{inst.profile}/{inst.region}", 0),
        )
        self.network.add_private_subnet(vpc, inst.subnet_id)
        subnet = next(s for s in vpc.subnets if s.subnet_id == inst.subnet_id)
        inst.availability_zone = subnet.availability_zone
        if not inst.security_group_ids:
            inst.security_group_ids = [vpc.default_group_id]

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self) -> Iterator[SimInstance]:
        return iter(self.instances)

    def add(self, instance: SimInstance) -> None:
        """Add an instance and update the indexes."""
        self.instances.append(instance)
        self.reindex()

    def get(self, instance_id: str) -> SimInstance | None:
        """The instance with this id, or None."""
        return self._by_id.get(instance_id)

    def by_profile(self, profile: str) -> list[SimInstance]:
        """All instances of a profile (all regions)."""
        return [i for i in self.instances if i.profile == profile]

    def by_region(self, region: str) -> list[SimInstance]:
        """All instances in a region (all profiles)."""
        return [i for i in self.instances if i.region == region]

    def in_scope(self, account_id: str, region: str) -> list[SimInstance]:
        """Instances of one account in one region (what one API caller can see)."""
        return self._by_scope.get((account_id, region), [])

    @property
    def profiles(self) -> list[str]:
        """Profile names, in definition order."""
        return list(self.accounts)

    @property
    def regions(self) -> list[str]:
        """Regions that hold at least one instance, sorted."""
        return sorted({i.region for i in self.instances})

    def account_for(self, profile: str) -> str:
        """The account id of a profile (KeyError if unknown)."""
        return self.accounts[profile]

    def profile_for_account(self, account_id: str) -> str | None:
        """The (first) profile mapped to an account id."""
        return next((p for p, a in self.accounts.items() if a == account_id), None)

    def profile_for_access_key(self, access_key_id: str) -> str | None:
        """The profile whose :func:`demo_credentials` use this access key id."""
        return self._profile_by_key.get(access_key_id)

    def credentials(self, profile: str) -> tuple[str, str]:
        """The demo ``(access_key_id, secret_access_key)`` of a profile."""
        return demo_credentials(profile)


# --------------------------------------------------------------------------- loading


def _parse_dt(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{what}: expected a date-time, got {value!r}")


def _ip_for(instance_id: str, vpc_index: int) -> str:
    h = int(_stable_hex(instance_id, "ip", length=8), 16)
    return f"10.{vpc_index}.{(h >> 8) % 64}.{(h % 250) + 4}"


def _computer_name(inst: SimInstance) -> str:
    if inst.is_windows:
        return "EC2AMAZ-" + _stable_hex(inst.instance_id, "host", length=7).upper()
    if inst.is_hybrid:
        return f"{inst.name}.corp.example.internal"
    dashed = inst.private_ip.replace(".", "-")
    if inst.region == "us-east-1":
        return f"ip-{dashed}.ec2.internal"
    return f"ip-{dashed}.{inst.region}.compute.internal"


def _fill_defaults(inst: SimInstance, networks: Mapping[str, Any]) -> SimInstance:
    """Derive unspecified network/host fields deterministically from the instance id."""
    net = networks.get(f"{inst.profile}/{inst.region}", {})
    vpc_index = int(net.get("index", 0))
    if not inst.private_ip:
        inst.private_ip = _ip_for(inst.instance_id, vpc_index)
    if inst.is_ec2:
        if inst.vpc_id is None:
            inst.vpc_id = net.get("vpc_id") or "vpc-" + _stable_hex(inst.profile, inst.region)
        subnets: list[str] = list(net.get("subnets", [])) or [
            "subnet-" + _stable_hex(inst.profile, inst.region, str(n)) for n in range(2)
        ]
        pick = int(_stable_hex(inst.instance_id, length=4), 16) % len(subnets)
        if inst.subnet_id is None and inst.public_ip:
            inst.subnet_id = net.get("public_subnet") or public_subnet_id(inst.profile, inst.region)
        if inst.subnet_id is None:
            inst.subnet_id = subnets[pick]
        if inst.availability_zone is None:
            idx = subnets.index(inst.subnet_id) if inst.subnet_id in subnets else pick
            inst.availability_zone = inst.region + "abc"[idx % 3]
        if not inst.image_id:
            inst.image_id = "ami-" + _stable_hex(inst.platform_name, inst.platform_version)
        if inst.instance_profile_arn is None:
            inst.instance_profile_arn = (
                f"arn:aws:iam::{inst.account_id}:instance-profile/SSMManagedInstanceProfile"
            )
    else:
        inst.vpc_id = inst.subnet_id = inst.availability_zone = None
        if inst.iam_role is None:
            inst.iam_role = "SSMServiceRole"
        if inst.activation_id is None:
            h = _stable_hex(inst.instance_id, "act", length=32)
            inst.activation_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if inst.registration_date is None:
            inst.registration_date = inst.launch_time
    if not inst.computer_name:
        inst.computer_name = _computer_name(inst)
    inst.tags.setdefault("Name", inst.name)
    return inst


_INSTANCE_FIELDS = set(SimInstance.__dataclass_fields__)


def _instance_from_dict(
    raw: Mapping[str, Any], accounts: Mapping[str, str], networks: Mapping[str, Any]
) -> SimInstance:
    """Build one instance from a TOML table, validating and filling defaults."""
    data = dict(raw)
    unknown = set(data) - _INSTANCE_FIELDS
    if unknown:
        raise ValueError(f"instance {data.get('instance_id')}: unknown keys {sorted(unknown)}")
    iid = str(data.get("instance_id", ""))
    if not _ID_RE.match(iid):
        raise ValueError(f"bad instance_id {iid!r} (want i-<hex> or mi-<hex>)")
    profile = str(data.get("profile", ""))
    if profile not in accounts and "account_id" not in data:
        raise ValueError(f"instance {iid}: unknown profile {profile!r}")
    data.setdefault("account_id", accounts.get(profile, ""))
    data.setdefault("name", iid)
    for key in ("launch_time", "registration_date"):
        if key in data:
            data[key] = _parse_dt(data[key], f"{iid}.{key}")
    data["tags"] = {str(k): str(v) for k, v in dict(data.get("tags", {})).items()}
    if "last_ping_age" not in data:
        data["last_ping_age"] = _default_ping_age(str(data.get("ping_status", "Online")))
    inst = SimInstance(**data)
    if inst.ping_status not in PING_STATUSES:
        raise ValueError(f"instance {iid}: bad ping_status {inst.ping_status!r}")
    if inst.platform_type not in PLATFORM_TYPES:
        raise ValueError(f"instance {iid}: bad platform_type {inst.platform_type!r}")
    if inst.ec2_state not in EC2_STATES:
        raise ValueError(f"instance {iid}: bad ec2_state {inst.ec2_state!r}")
    return _fill_defaults(inst, networks)


def fleet_from_dict(doc: Mapping[str, Any]) -> SimFleet:
    """Build a fleet from a parsed TOML document.

    Top-level tables: ``accounts`` (profile -> account id), ``networks`` (``"profile/region"`` ->
    ``{index, vpc_id, subnets, public_subnet}``), ``preferences`` (region -> Session Manager
    preferences), ``iam`` (roles, instance profiles, break-glass profiles; see
    :mod:`ssmtui.sim.iam_model`), and arrays ``vpcs`` (extra VPCs, :mod:`ssmtui.sim.network`),
    ``sessions`` (seeded sessions, :mod:`ssmtui.sim.session_seed`) and ``instances`` of
    :class:`SimInstance` fields.
    """
    accounts = {str(k): str(v) for k, v in dict(doc.get("accounts", DEFAULT_ACCOUNTS)).items()}
    networks = dict(doc.get("networks", {}))
    preferences = {str(k): dict(v) for k, v in dict(doc.get("preferences", {})).items()}
    instances = [_instance_from_dict(raw, accounts, networks) for raw in doc.get("instances", [])]
    network = declared_network(networks, doc.get("vpcs", []), accounts)
    return SimFleet(
        instances=instances,
        accounts=accounts,
        preferences=preferences,
        network=network,
        iam=dict(doc.get("iam", {})),
        sessions=[dict(s) for s in doc.get("sessions", [])],
        network_index={str(k): int(dict(v).get("index", 0)) for k, v in networks.items()},
    )


def load_fleet(path: str | Path | None = None) -> SimFleet:
    """Load a fleet from a TOML file; ``None`` loads the shipped default fleet."""
    if path is None:
        data = resources.files("ssmtui.sim").joinpath("fleets/default.toml").read_bytes()
        return fleet_from_dict(tomllib.loads(data.decode("utf-8")))
    with open(path, "rb") as fh:
        return fleet_from_dict(tomllib.load(fh))


def default_fleet() -> SimFleet:
    """The shipped demo fleet (``ssmtui/sim/fleets/default.toml``)."""
    return load_fleet(None)


# --------------------------------------------------------------------------- generation

_ROLES = ("web", "api", "worker", "db-proxy", "cache", "batch", "bastion", "etl")
_TEAMS = ("platform", "payments", "search", "data", "identity")
_LINUX = (
    ("Amazon Linux", "2023"),
    ("Amazon Linux", "2"),
    ("Ubuntu", "22.04"),
    ("Ubuntu", "24.04"),
    ("Red Hat Enterprise Linux", "9.3"),
)
_WINDOWS = (
    ("Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
    ("Microsoft Windows Server 2019 Datacenter", "10.0.17763"),
)
_OLD_AGENTS = ("2.3.1644.0", "3.0.161.0", "3.1.1732.0", "3.2.2303.0")


def generate_fleet(
    n: int,
    seed: int = 0,
    *,
    accounts: Mapping[str, str] | None = None,
    regions: Iterable[str] = ("us-east-1", "eu-west-1"),
) -> SimFleet:
    """Generate ``n`` deterministic instances spread round-robin over profiles and regions.

    About 80% are Online, 12% ConnectionLost, 8% Inactive; 15% Windows; 25% run an old agent;
    2% are hybrid ``mi-*`` nodes and 1% are stopped EC2 instances without SSM registration.
    """
    rng = random.Random(seed)
    accts = dict(accounts or DEFAULT_ACCOUNTS)
    scopes = [(p, r) for p in accts for r in regions]
    networks = {f"{p}/{r}": {"index": i} for i, (p, r) in enumerate(scopes)}
    seen: set[str] = set()
    instances: list[SimInstance] = []
    for idx in range(n):
        profile, region = scopes[idx % len(scopes)]
        roll = rng.random()
        hybrid = roll < 0.02
        unregistered = 0.02 <= roll < 0.03
        while True:
            iid = ("mi-" if hybrid else "i-") + f"{rng.getrandbits(68):017x}"
            if iid not in seen:
                seen.add(iid)
                break
        windows = rng.random() < 0.15
        plat_name, plat_version = rng.choice(_WINDOWS if windows else _LINUX)
        ping = rng.choices(PING_STATUSES, weights=(80, 12, 8))[0]
        role = rng.choice(_ROLES)
        name = f"{role}-{profile}-{idx:05d}"
        tags = {"Role": role, "Env": profile, "Team": rng.choice(_TEAMS)}
        inst = SimInstance(
            instance_id=iid,
            name=name,
            profile=profile,
            region=region,
            account_id=accts[profile],
            ping_status="ConnectionLost" if unregistered else ping,
            platform_type="Windows" if windows else "Linux",
            platform_name=plat_name,
            platform_version=plat_version,
            agent_version=rng.choice(_OLD_AGENTS) if rng.random() < 0.25 else LATEST_AGENT_VERSION,
            public_ip=(
                f"54.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                if role == "bastion" and not hybrid
                else None
            ),
            ec2_state="stopped" if unregistered else "running",
            registered=not unregistered,
            tags=tags,
            instance_type="t3.large"
            if windows
            else rng.choice(("t3.micro", "t3.small", "m6i.large")),
            launch_time=_EPOCH + timedelta(minutes=rng.randrange(400_000)),
            last_ping_age=_default_ping_age(ping) + rng.randrange(60),
        )
        instances.append(_fill_defaults(inst, networks))
    index = {k: int(v["index"]) for k, v in networks.items()}
    return SimFleet(instances=instances, accounts=accts, network_index=index)
