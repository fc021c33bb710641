"""The demo fleet's network: VPCs, subnets, route tables, VPC endpoints and security groups.

Every ``[networks."profile/region"]`` VPC of a fleet file gets the standard healthy layout: its
listed subnets are private and reach the internet through a NAT gateway via the VPC's *main*
route table (no explicit association, as in real AWS), plus one public subnet whose explicitly
associated route table sends ``0.0.0.0/0`` to an internet gateway. Extra VPCs (``[[vpcs]]``)
declare their own subnets, route tables, interface endpoints and security groups; see
``ssmtui/sim/fleets/default.toml``. VPCs that instances reference but no file declares (generated
fleets) get the standard layout too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SgRule",
    "SimNetwork",
    "SimRoute",
    "SimRouteTable",
    "SimSecurityGroup",
    "SimSubnet",
    "SimVpc",
    "SimVpcEndpoint",
    "attach_instance",
    "declared_network",
    "public_subnet_id",
    "vpc_from_dict",
]


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def public_subnet_id(profile: str, region: str) -> str:
    """The derived id of the public subnet of a profile/region's standard VPC."""
    return "subnet-" + _hex(profile, region, "public")


@dataclass(slots=True)
class SgRule:
    """One ingress permission: protocol (``tcp``, ``-1`` = all), port range, sources."""

    protocol: str = "tcp"
    from_port: int | None = None
    to_port: int | None = None
    cidrs: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SimSecurityGroup:
    """A VPC security group (only ingress rules matter to the simulation)."""

    group_id: str
    name: str
    description: str
    ingress: list[SgRule] = field(default_factory=list)


@dataclass(slots=True)
class SimSubnet:
    """A subnet; ``public`` maps public IPs on launch."""

    subnet_id: str
    cidr: str
    availability_zone: str
    public: bool = False


@dataclass(slots=True)
class SimRoute:
    """A route: destination CIDR -> ``local``, ``igw-…``, ``nat-…`` or ``vpce-…``."""

    destination: str
    target: str


@dataclass(slots=True)
class SimRouteTable:
    """A route table, the VPC's main one or explicitly associated with ``subnet_ids``."""

    route_table_id: str
    routes: list[SimRoute]
    main: bool = False
    subnet_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SimVpcEndpoint:
    """An interface VPC endpoint for ``com.amazonaws.<region>.<service>``."""

    endpoint_id: str
    service: str
    private_dns: bool = True
    group_ids: list[str] = field(default_factory=list)
    subnet_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SimVpc:
    """A VPC of one account in one region with everything in it."""

    vpc_id: str
    account_id: str
    region: str
    cidr: str
    name: str = ""
    subnets: list[SimSubnet] = field(default_factory=list)
    route_tables: list[SimRouteTable] = field(default_factory=list)
    endpoints: list[SimVpcEndpoint] = field(default_factory=list)
    security_groups: list[SimSecurityGroup] = field(default_factory=list)

    @property
    def default_group_id(self) -> str:
        """The id of the VPC's ``default`` security group."""
        return "sg-" + _hex(self.vpc_id, "default")

    def ensure_defaults(self) -> None:
        """Add the ``default`` security group, a main route table and local routes if missing."""
        if not any(g.name == "default" for g in self.security_groups):
            rule = SgRule(protocol="-1", groups=[self.default_group_id])
            default = SimSecurityGroup(
                self.default_group_id, "default", "default VPC security group", [rule]
            )
            self.security_groups.insert(0, default)
        if not any(t.main for t in self.route_tables):
            main = SimRouteTable("rtb-" + _hex(self.vpc_id, "main"), [], main=True)
            self.route_tables.insert(0, main)
        for table in self.route_tables:
            if not any(r.target == "local" for r in table.routes):
                table.routes.insert(0, SimRoute(self.cidr, "local"))


def _standard_vpc(
    vpc_id: str,
    account_id: str,
    region: str,
    index: int,
    private: Iterable[str],
    public: str,
) -> SimVpc:
    """The healthy layout: private subnets via the main table's NAT route, one public subnet."""
    cidr = f"10.{index % 256}.0.0/16"
    vpc = SimVpc(vpc_id, account_id, region, cidr)
    for n, subnet_id in enumerate(private):
        az = region + "abc"[n % 3]
        vpc.subnets.append(SimSubnet(subnet_id, f"10.{index % 256}.{16 * (n % 15)}.0/20", az))
    vpc.subnets.append(SimSubnet(public, f"10.{index % 256}.240.0/20", region + "a", public=True))
    nat = "nat-" + _hex(vpc_id, "nat")
    igw = "igw-" + _hex(vpc_id, "igw")
    vpc.route_tables = [
        SimRouteTable(
            "rtb-" + _hex(vpc_id, "main"), [SimRoute(cidr, "local"), SimRoute("0.0.0.0/0", nat)]
        ),
        SimRouteTable(
            "rtb-" + _hex(vpc_id, "public"),
            [SimRoute(cidr, "local"), SimRoute("0.0.0.0/0", igw)],
            subnet_ids=[public],
        ),
    ]
    vpc.route_tables[0].main = True
    vpc.ensure_defaults()
    return vpc


def _rule(raw: Mapping[str, Any]) -> SgRule:
    return SgRule(
        protocol=str(raw.get("protocol", "tcp")),
        from_port=int(raw["from_port"]) if "from_port" in raw else None,
        to_port=int(raw["to_port"]) if "to_port" in raw else None,
        cidrs=[str(c) for c in raw.get("cidrs", [])],
        groups=[str(g) for g in raw.get("groups", [])],
    )


def vpc_from_dict(raw: Mapping[str, Any], account_id: str) -> SimVpc:
    """An extra VPC from a ``[[vpcs]]`` table (see the default fleet file for the keys)."""
    vpc_id, region = str(raw["vpc_id"]), str(raw["region"])
    vpc = SimVpc(vpc_id, account_id, region, str(raw.get("cidr", "10.99.0.0/16")))
    vpc.name = str(raw.get("name", ""))
    for n, sub in enumerate(raw.get("subnets", [])):
        az = str(sub.get("availability_zone", region + "abc"[n % 3]))
        vpc.subnets.append(
            SimSubnet(str(sub["subnet_id"]), str(sub["cidr"]), az, bool(sub.get("public", False)))
        )
    all_subnets = [s.subnet_id for s in vpc.subnets]
    for table in raw.get("route_tables", []):
        raw_routes = table.get("routes", [])
        routes = [SimRoute(str(r["destination"]), str(r["target"])) for r in raw_routes]
        vpc.route_tables.append(
            SimRouteTable(
                str(table["route_table_id"]),
                routes,
                main=bool(table.get("main", False)),
                subnet_ids=[str(s) for s in table.get("subnets", [])],
            )
        )
    for group in raw.get("security_groups", []):
        vpc.security_groups.append(
            SimSecurityGroup(
                str(group["group_id"]),
                str(group["name"]),
                str(group.get("description", group["name"])),
                [_rule(r) for r in group.get("ingress", [])],
            )
        )
    vpc.ensure_defaults()
    for endpoint in raw.get("endpoints", []):
        vpc.endpoints.append(
            SimVpcEndpoint(
                str(endpoint["vpc_endpoint_id"]),
                str(endpoint["service"]),
                bool(endpoint.get("private_dns", True)),
                [str(g) for g in endpoint.get("security_groups", [vpc.default_group_id])],
                [str(s) for s in endpoint.get("subnets", all_subnets)],
            )
        )
    return vpc


class SimNetwork:
    """All VPCs of a fleet, looked up by account and region."""

    def __init__(self, vpcs: Iterable[SimVpc] = ()) -> None:
        self.vpcs: list[SimVpc] = list(vpcs)
        self._by_id = {v.vpc_id: v for v in self.vpcs}

    def add(self, vpc: SimVpc) -> None:
        """Add a VPC (ids are unique)."""
        if vpc.vpc_id in self._by_id:
            raise ValueError(f"duplicate vpc id {vpc.vpc_id}")
        self.vpcs.append(vpc)
        self._by_id[vpc.vpc_id] = vpc

    def get(self, vpc_id: str | None) -> SimVpc | None:
        """The VPC with this id, or None."""
        return self._by_id.get(vpc_id or "")

    def in_scope(self, account_id: str, region: str) -> list[SimVpc]:
        """VPCs of one account in one region."""
        return [v for v in self.vpcs if v.account_id == account_id and v.region == region]

    def ensure_standard(
        self,
        vpc_id: str,
        account_id: str,
        region: str,
        index: int,
        private: Iterable[str],
        public: str,
    ) -> SimVpc:
        """The VPC ``vpc_id``, created with the standard layout if unknown."""
        vpc = self._by_id.get(vpc_id)
        if vpc is None:
            vpc = _standard_vpc(vpc_id, account_id, region, index, private, public)
            self.add(vpc)
        return vpc

    def add_private_subnet(self, vpc: SimVpc, subnet_id: str) -> None:
        """Attach a private subnet (routed by the main table) to a VPC if it is not there."""
        if any(s.subnet_id == subnet_id for s in vpc.subnets):
            return
        n = len(vpc.subnets)
        base = vpc.cidr.split(".")
        az = vpc.region + "abc"[n % 3]
        vpc.subnets.append(SimSubnet(subnet_id, f"{base[0]}.{base[1]}.{16 * (n % 15)}.0/20", az))


def attach_instance(
    network: SimNetwork,
    *,
    vpc_id: str,
    subnet_id: str,
    account_id: str,
    region: str,
    profile: str,
    index: int = 0,
) -> SimVpc:
    """Make sure an instance's VPC and subnet exist (standard layout for unknown VPCs)."""
    vpc = network.ensure_standard(
        vpc_id, account_id, region, index, [], public_subnet_id(profile, region)
    )
    network.add_private_subnet(vpc, subnet_id)
    return vpc


def declared_network(
    networks: Mapping[str, Any], vpcs: Iterable[Mapping[str, Any]], accounts: Mapping[str, str]
) -> SimNetwork:
    """The ``[networks]`` VPCs (standard layout) and the extra ``[[vpcs]]`` of a fleet file."""
    network = SimNetwork()
    for key, raw in networks.items():
        profile, _, region = str(key).partition("/")
        if profile not in accounts:
            raise ValueError(f"networks.{key}: unknown profile {profile!r}")
        decl = dict(raw)
        network.ensure_standard(
            str(decl.get("vpc_id") or "vpc-" + _hex(profile, region)),
            accounts[profile],
            region,
            int(decl.get("index", 0)),
            [str(s) for s in decl.get("subnets", [])]
            or ["subnet-" + _hex(profile, region, str(n)) for n in range(2)],
            str(decl.get("public_subnet") or public_subnet_id(profile, region)),
        )
    for raw in vpcs:
        profile = str(raw.get("profile", ""))
        if profile not in accounts:
            raise ValueError(f"vpcs.{raw.get('vpc_id')}: unknown profile {profile!r}")
        network.add(vpc_from_dict(raw, accounts[profile]))
    return network
