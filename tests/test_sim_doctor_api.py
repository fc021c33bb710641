"""What a "why can't I connect?" doctor reads from the demo fleet, through real boto3 clients.

EC2 network reads (subnets, route tables incl. the main-table subtlety, VPC endpoints, security
groups), IAM (instance profile -> role -> policies, the caller's policies, the policy simulator),
StartSession authorization, Session Manager preferences and sessions seeded "from elsewhere".
Also unit tests of the IAM policy evaluator (:mod:`ssmtui.sim.iam_policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ssmtui.sim.api import SimServer, serve_in_thread
from ssmtui.sim.fleet import default_fleet, demo_credentials, fleet_from_dict, generate_fleet
from ssmtui.sim.iam_model import break_glass_expiry
from ssmtui.sim.iam_policy import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    PolicySource,
    evaluate,
    wildcard_match,
)
from ssmtui.sim.state import SimState
from tests.sim_harness import aws_env  # noqa: F401  (autouse: no machine-wide AWS settings)

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
DEV, PROD = "111111111111", "222222222222"
DEV_VPC = "vpc-0dec0ffee0a100001"
DEV_PRIVATE = "subnet-0dec0ffee0a10000a"
DEV_PUBLIC = "subnet-0dec0ffee0a10000f"
WEB_DEV_1 = "i-01d6875ee4127775f"
WEB_PROD_1 = "i-0e6cd11dc3cba7b69"
PAYROLL = "i-0e490deb3cedd2dd4"
NAMES = {
    "orphan-no-profile": "i-03871c354f49ca42e",
    "orphan-no-policy": "i-0d37dd81a3f5c32a6",
    "orphan-public-no-ip": "i-07d98f6a0c50e9209",
    "agent-stopped": "i-08b94e50030e2a6f8",
    "isolated-no-path": "i-01bb68704e8c10635",
    "isolated-sg-blocks-443": "i-0badbb5f262a263eb",
    "isolated-missing-ssmmessages": "i-05bce025cb7ac5429",
    "isolated-no-private-dns": "i-0489b5f624188f33f",
}
ClientFactory = Callable[..., Any]
#: A fleet file with one instance and nothing else (no preferences, no sessions).
BARE = {
    "instances": [{"instance_id": "i-0123456789abcdef0", "profile": "dev", "region": "us-east-1"}]
}


@pytest.fixture(scope="module")
def server(aws_env: None) -> Iterator[SimServer]:  # noqa: F811
    with serve_in_thread(default_fleet()) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: SimServer) -> ClientFactory:
    cache: dict[tuple[str, str, str], Any] = {}

    def make(service: str, profile: str = "dev", region: str = "us-east-1") -> Any:
        key = (service, profile, region)
        if key not in cache:
            access_key, secret_key = demo_credentials(profile)
            session = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
            )
            cache[key] = session.client(service, endpoint_url=server.endpoint, config=NO_RETRY)
        return cache[key]

    return make


def code_of(call: Callable[..., Any], **kwargs: Any) -> tuple[str, dict[str, Any]]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"], exc.value.response


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    out = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(out[0]["Instances"][0])


def route_table_for(ec2: Any, subnet_id: str, vpc_id: str) -> dict[str, Any]:
    """What a doctor must do: the explicit association, else the VPC's main table."""
    flt = [{"Name": "association.subnet-id", "Values": [subnet_id]}]
    tables = ec2.describe_route_tables(Filters=flt)["RouteTables"]
    if tables:
        return dict(tables[0])
    main = [
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "association.main", "Values": ["true"]},
    ]
    tables = ec2.describe_route_tables(Filters=main)["RouteTables"]
    assert len(tables) == 1
    return dict(tables[0])


def default_route(table: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in table["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0"), None)


# --------------------------------------------------------------------------- EC2


def test_instances_profiles_groups_and_public_ips(client: ClientFactory) -> None:
    ec2 = client("ec2")
    no_profile = instance(ec2, NAMES["orphan-no-profile"])
    assert "IamInstanceProfile" not in no_profile
    assert no_profile["SecurityGroups"] == [
        {"GroupId": no_profile["SecurityGroups"][0]["GroupId"], "GroupName": "default"}
    ]
    no_policy = instance(ec2, NAMES["orphan-no-policy"])
    assert no_policy["IamInstanceProfile"]["Arn"] == (
        f"arn:aws:iam::{DEV}:instance-profile/app-server-profile"
    )
    assert no_policy["IamInstanceProfile"]["Id"].startswith("AIPA")
    public = instance(ec2, NAMES["orphan-public-no-ip"])
    assert public["SubnetId"] == DEV_PUBLIC and public["VpcId"] == DEV_VPC
    assert "PublicIpAddress" not in public
    bastion = instance(ec2, "i-03a5c1f2b33c2418a")
    assert bastion["SubnetId"] == DEV_PUBLIC and bastion["PublicIpAddress"] == "54.210.10.21"
    web = instance(ec2, WEB_DEV_1)
    assert web["IamInstanceProfile"]["Arn"].endswith(":instance-profile/SSMManagedInstanceProfile")
    assert web["State"]["Name"] == "running" and web["SubnetId"] != DEV_PUBLIC
    # unregistered broken instances are in EC2, not in SSM
    ssm_ids = {
        i["InstanceId"]
        for page in client("ssm").get_paginator("describe_instance_information").paginate()
        for i in page["InstanceInformationList"]
    }
    assert PAYROLL in ssm_ids and not ssm_ids & set(NAMES.values())
    group_id = web["SecurityGroups"][0]["GroupId"]
    flt = [{"Name": "instance.group-id", "Values": [group_id]}]
    assert len(ec2.describe_instances(Filters=flt)["Reservations"]) >= 10


def test_subnets(client: ClientFactory) -> None:
    ec2 = client("ec2")
    flt = [{"Name": "vpc-id", "Values": [DEV_VPC]}]
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(Filters=flt)["Subnets"]}
    assert set(subnets) == {DEV_PRIVATE, "subnet-0dec0ffee0a10000b", DEV_PUBLIC}
    assert subnets[DEV_PUBLIC]["MapPublicIpOnLaunch"] is True
    assert subnets[DEV_PRIVATE]["MapPublicIpOnLaunch"] is False
    assert subnets[DEV_PRIVATE]["State"] == "available" and subnets[DEV_PRIVATE]["OwnerId"] == DEV
    one = ec2.describe_subnets(SubnetIds=[DEV_PRIVATE])["Subnets"]
    assert [s["SubnetId"] for s in one] == [DEV_PRIVATE]
    by_id = [{"Name": "subnet-id", "Values": [DEV_PUBLIC]}]
    assert [s["SubnetId"] for s in ec2.describe_subnets(Filters=by_id)["Subnets"]] == [DEV_PUBLIC]
    code, _ = code_of(ec2.describe_subnets, SubnetIds=["subnet-00000000000000000"])
    assert code == "InvalidSubnetID.NotFound"
    # another account's subnets are invisible
    code, _ = code_of(client("ec2", "prod").describe_subnets, SubnetIds=[DEV_PRIVATE])
    assert code == "InvalidSubnetID.NotFound"


def test_route_tables_main_table_subtlety(client: ClientFactory) -> None:
    ec2 = client("ec2")
    # healthy private subnets have no explicit association: they use the MAIN table (NAT)
    flt = [{"Name": "association.subnet-id", "Values": [DEV_PRIVATE]}]
    assert ec2.describe_route_tables(Filters=flt)["RouteTables"] == []
    main = route_table_for(ec2, DEV_PRIVATE, DEV_VPC)
    assert any(a.get("Main") is True for a in main["Associations"])
    assert "SubnetId" not in main["Associations"][0]
    nat = default_route(main)
    assert nat is not None and nat["NatGatewayId"].startswith("nat-") and "GatewayId" not in nat
    assert nat["State"] == "active" and nat["Origin"] == "CreateRoute"
    local = main["Routes"][0]
    assert local == {
        "DestinationCidrBlock": "10.0.0.0/16",
        "GatewayId": "local",
        "Origin": "CreateRouteTable",
        "State": "active",
    }
    # the public subnet is explicitly associated with an igw table
    public = route_table_for(ec2, DEV_PUBLIC, DEV_VPC)
    assoc = public["Associations"][0]
    assert assoc["Main"] is False and assoc["SubnetId"] == DEV_PUBLIC
    assert assoc["AssociationState"] == {"State": "associated"}
    igw = default_route(public)
    assert igw is not None and igw["GatewayId"].startswith("igw-")
    # isolated: only the local route
    prod = client("ec2", "prod")
    iso = instance(prod, NAMES["isolated-no-path"])
    table = route_table_for(prod, iso["SubnetId"], iso["VpcId"])
    assert default_route(table) is None and [r["GatewayId"] for r in table["Routes"]] == ["local"]
    all_vpc = prod.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [iso["VpcId"]]}])
    assert len(all_vpc["RouteTables"]) == 1
    # prod/eu-west-1's isolated subnet has an explicit local-only table
    eu = client("ec2", "prod", "eu-west-1")
    inst = instance(eu, NAMES["isolated-missing-ssmmessages"])
    flt = [{"Name": "association.subnet-id", "Values": [inst["SubnetId"]]}]
    (explicit,) = eu.describe_route_tables(Filters=flt)["RouteTables"]
    assert default_route(explicit) is None
    code, _ = code_of(ec2.describe_route_tables, RouteTableIds=["rtb-0000"])
    assert code == "InvalidRouteTableID.NotFound"


def endpoints(ec2: Any, vpc_id: str) -> dict[str, dict[str, Any]]:
    flt = [{"Name": "vpc-id", "Values": [vpc_id]}]
    found = ec2.describe_vpc_endpoints(Filters=flt)["VpcEndpoints"]
    return {e["ServiceName"].rsplit(".", 1)[-1]: e for e in found}


def test_vpc_endpoints_and_security_groups(client: ClientFactory) -> None:
    eu = client("ec2", "prod", "eu-west-1")
    inst = instance(eu, NAMES["isolated-missing-ssmmessages"])
    eps = endpoints(eu, inst["VpcId"])
    assert set(eps) == {"ssm", "ec2messages"}
    ssm_ep = eps["ssm"]
    assert ssm_ep["ServiceName"] == "com.amazonaws.eu-west-1.ssm"
    assert ssm_ep["VpcEndpointType"] == "Interface" and ssm_ep["State"] == "available"
    assert ssm_ep["PrivateDnsEnabled"] is True and ssm_ep["SubnetIds"] == [inst["SubnetId"]]
    (group,) = ssm_ep["Groups"]
    sgs = eu.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    (perm,) = sgs[0]["IpPermissions"]
    assert (perm["IpProtocol"], perm["FromPort"], perm["ToPort"]) == ("tcp", 443, 443)
    assert perm["IpRanges"] == [{"CidrIp": "10.21.0.0/16"}]
    by_service = [
        {"Name": "service-name", "Values": ["com.amazonaws.eu-west-1.ssmmessages"]},
        {"Name": "vpc-endpoint-type", "Values": ["Interface"]},
    ]
    assert eu.describe_vpc_endpoints(Filters=by_service)["VpcEndpoints"] == []

    dev_eu = client("ec2", "dev", "eu-west-1")
    inst = instance(dev_eu, NAMES["isolated-no-private-dns"])
    eps = endpoints(dev_eu, inst["VpcId"])
    assert set(eps) == {"ssm", "ssmmessages", "ec2messages"}
    assert all(e["PrivateDnsEnabled"] is False for e in eps.values())

    prod = client("ec2", "prod")
    inst = instance(prod, NAMES["isolated-sg-blocks-443"])
    eps = endpoints(prod, inst["VpcId"])
    assert set(eps) == {"ssm", "ssmmessages", "ec2messages"}
    assert all(e["PrivateDnsEnabled"] for e in eps.values())
    group_id = eps["ssmmessages"]["Groups"][0]["GroupId"]
    flt = [{"Name": "group-id", "Values": [group_id]}]
    (sg,) = prod.describe_security_groups(Filters=flt)["SecurityGroups"]
    assert [(p["FromPort"], p["ToPort"]) for p in sg["IpPermissions"]] == [(80, 80)]
    assert sg["VpcId"] == inst["VpcId"] and sg["GroupName"] == "vpce-http-only"
    assert endpoints(prod, instance(prod, NAMES["isolated-no-path"])["VpcId"]) == {}
    # the default group references itself
    default_id = inst["SecurityGroups"][0]["GroupId"]
    (default,) = prod.describe_security_groups(GroupIds=[default_id])["SecurityGroups"]
    assert default["GroupName"] == "default"
    assert default["IpPermissions"][0]["IpProtocol"] == "-1"
    assert default["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == default_id
    code, _ = code_of(prod.describe_security_groups, GroupIds=["sg-000"])
    assert code == "InvalidGroup.NotFound"


def test_generated_fleet_has_a_network() -> None:
    fleet = generate_fleet(200, seed=3)
    assert fleet.network is not None
    for inst in fleet:
        if not inst.is_ec2:
            continue
        vpc = fleet.network.get(inst.vpc_id)
        assert vpc is not None and inst.security_group_ids == [vpc.default_group_id]
        subnet = next(s for s in vpc.subnets if s.subnet_id == inst.subnet_id)
        assert subnet.public == bool(inst.public_ip)
        assert subnet.availability_zone == inst.availability_zone
    custom = fleet_from_dict(
        {"instances": [{"instance_id": "i-0123456789abcdef0", "profile": "dev", "region": "x-1"}]}
    )
    assert custom.network is not None and len(custom.network.vpcs) == 1


# --------------------------------------------------------------------------- IAM


def test_iam_instance_profile_to_policy_documents(client: ClientFactory) -> None:
    iam = client("iam")
    profile = iam.get_instance_profile(InstanceProfileName="app-server-profile")["InstanceProfile"]
    assert profile["Arn"] == f"arn:aws:iam::{DEV}:instance-profile/app-server-profile"
    ec2_id = instance(client("ec2"), NAMES["orphan-no-policy"])["IamInstanceProfile"]["Id"]
    assert profile["InstanceProfileId"] == ec2_id
    (role,) = profile["Roles"]
    assert role["RoleName"] == "AppServerRole"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    attached = iam.list_attached_role_policies(RoleName="AppServerRole")["AttachedPolicies"]
    assert attached == [
        {
            "PolicyName": "AmazonS3ReadOnlyAccess",
            "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        }
    ]
    assert iam.list_role_policies(RoleName="AppServerRole")["PolicyNames"] == []

    core = iam.get_instance_profile(InstanceProfileName="SSMManagedInstanceProfile")
    role_name = core["InstanceProfile"]["Roles"][0]["RoleName"]
    assert role_name == "SSMManagedInstanceRole"
    (policy,) = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    meta = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]
    assert meta["PolicyName"] == "AmazonSSMManagedInstanceCore" and meta["DefaultVersionId"]
    version = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId="v1")
    doc = version["PolicyVersion"]["Document"]  # botocore URL-decodes and parses it
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel"} <= actions
    assert "ec2messages:GetMessages" in actions

    legacy = iam.get_instance_profile(InstanceProfileName="legacy-batch-profile")
    legacy_role = legacy["InstanceProfile"]["Roles"][0]["RoleName"]
    (old,) = iam.list_attached_role_policies(RoleName=legacy_role)["AttachedPolicies"]
    assert old["PolicyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM"
    ec2 = client("ec2")
    assert instance(ec2, "i-0def4a0b021463baf")["IamInstanceProfile"]["Arn"].endswith(
        "/legacy-batch-profile"
    )
    for call, kwargs in [
        (iam.get_instance_profile, {"InstanceProfileName": "nope"}),
        (iam.get_role, {"RoleName": "nope"}),
        (iam.get_policy, {"PolicyArn": "arn:aws:iam::aws:policy/Nope"}),
        (iam.get_role_policy, {"RoleName": "AppServerRole", "PolicyName": "x"}),
    ]:
        code, resp = code_of(call, **kwargs)
        assert code == "NoSuchEntity" and resp["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_iam_raw_policy_document_is_url_encoded(client: ClientFactory) -> None:
    iam = client("iam")
    raw: list[bytes] = []

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        raw.append(response_dict["body"])

    iam.meta.events.register("before-parse.iam.GetPolicyVersion", keep)
    arn = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    iam.get_policy_version(PolicyArn=arn, VersionId="v1")
    iam.meta.events.unregister("before-parse.iam.GetPolicyVersion", keep)
    assert b"<Document>%7B" in raw[0]


def test_iam_caller_user_and_policies(client: ClientFactory) -> None:
    for profile, account in (("dev", DEV), ("prod", PROD)):
        iam = client("iam", profile)
        user = iam.get_user()["User"]
        assert user["Arn"] == f"arn:aws:iam::{account}:user/demo"
        sts_arn = client("sts", profile).get_caller_identity()["Arn"]
        assert sts_arn == user["Arn"]
        attached = iam.list_attached_user_policies(UserName="demo")["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == ["SsmtuiDemoOperator"]
        assert iam.list_user_policies(UserName="demo")["PolicyNames"] == []
        doc = iam.get_policy_version(PolicyArn=attached[0]["PolicyArn"], VersionId="v1")
        statements = doc["PolicyVersion"]["Document"]["Statement"]
        deny = [s for s in statements if s["Effect"] == "Deny"]
        assert deny[0]["Condition"] == {"StringEquals": {"ssm:resourceTag/Team": "hr"}}
        expiring = [s for s in statements if "DateLessThan" in s.get("Condition", {})]
        assert bool(expiring) == (profile == "prod")
    code, _ = code_of(client("iam").get_user, UserName="mallory")
    assert code == "NoSuchEntity"


def simulate(iam: Any, source: str, resource: str, **context: str) -> dict[str, Any]:
    entries = [
        {"ContextKeyName": k.replace("__", "/").replace("_", ":"), "ContextKeyValues": [v]}
        for k, v in context.items()
    ]
    for entry in entries:
        entry["ContextKeyType"] = "date" if "Time" in entry["ContextKeyName"] else "string"
    out = iam.simulate_principal_policy(
        PolicySourceArn=source,
        ActionNames=["ssm:StartSession"],
        ResourceArns=[resource],
        ContextEntries=entries,
    )
    (result,) = out["EvaluationResults"]
    assert result["EvalActionName"] == "ssm:StartSession" and result["EvalResourceName"] == resource
    return dict(result)


def test_simulate_principal_policy(client: ClientFactory, server: SimServer) -> None:
    iam = client("iam")
    user = f"arn:aws:iam::{DEV}:user/demo"
    web = f"arn:aws:ec2:us-east-1:{DEV}:instance/{WEB_DEV_1}"
    payroll = f"arn:aws:ec2:us-east-1:{DEV}:instance/{PAYROLL}"
    ok = simulate(iam, user, web, ssm_resourceTag__Team="platform")
    assert ok["EvalDecision"] == "allowed" and ok["MissingContextValues"] == []
    assert ok["MatchedStatements"] == [
        {"SourcePolicyId": "SsmtuiDemoOperator", "SourcePolicyType": "user-managed"}
    ]
    denied = simulate(iam, user, payroll, ssm_resourceTag__Team="hr")
    assert denied["EvalDecision"] == "explicitDeny"
    assert denied["MatchedStatements"][0]["SourcePolicyId"] == "SsmtuiDemoOperator"
    blind = simulate(iam, user, payroll)
    assert blind["EvalDecision"] == "allowed"
    assert blind["MissingContextValues"] == ["ssm:resourceTag/Team"]

    prod_iam = client("iam", "prod")
    prod_user = f"arn:aws:iam::{PROD}:user/demo"
    prod_web = f"arn:aws:ec2:us-east-1:{PROD}:instance/{WEB_PROD_1}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    allowed = simulate(
        prod_iam, prod_user, prod_web, aws_CurrentTime=now, ssm_resourceTag__Team="x"
    )
    assert allowed["EvalDecision"] == "allowed"
    later = (server.state.iam.expires + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = simulate(prod_iam, prod_user, prod_web, aws_CurrentTime=later)
    assert expired["EvalDecision"] == "implicitDeny" and expired["MatchedStatements"] == []
    no_time = simulate(prod_iam, prod_user, prod_web, ssm_resourceTag__Team="x")
    assert no_time["EvalDecision"] == "implicitDeny"
    assert no_time["MissingContextValues"] == ["aws:CurrentTime"]

    # the instance role: what the agent needs
    role = f"arn:aws:iam::{DEV}:role/AppServerRole"
    out = iam.simulate_principal_policy(
        PolicySourceArn=role,
        ActionNames=["ssm:UpdateInstanceInformation", "s3:GetObject"],
    )
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in out["EvaluationResults"]}
    assert decisions == {"ssm:UpdateInstanceInformation": "implicitDeny", "s3:GetObject": "allowed"}
    assert out["EvaluationResults"][1]["MatchedStatements"][0]["SourcePolicyType"] == "aws-managed"
    code, _ = code_of(
        iam.simulate_principal_policy,
        PolicySourceArn=f"arn:aws:iam::{DEV}:role/Nope",
        ActionNames=["ssm:StartSession"],
    )
    assert code == "NoSuchEntity"


def test_break_glass_expiry_rounds_up() -> None:
    start = datetime(2025, 1, 1, 10, 15, tzinfo=UTC)
    assert break_glass_expiry(start) == datetime(2025, 1, 1, 19, 0, tzinfo=UTC)
    exact = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert break_glass_expiry(exact) == datetime(2025, 1, 1, 18, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- SSM


def test_start_session_enforces_identity_policies(client: ClientFactory) -> None:
    ssm = client("ssm")
    code, resp = code_of(ssm.start_session, Target=PAYROLL)
    assert code == "AccessDeniedException"
    assert resp["Error"]["Message"] == (
        f"User: arn:aws:iam::{DEV}:user/demo is not authorized to perform: ssm:StartSession on "
        f"resource: arn:aws:ec2:us-east-1:{DEV}:instance/{PAYROLL} with an explicit deny in an "
        "identity-based policy"
    )
    out = ssm.start_session(Target=WEB_DEV_1)
    ssm.terminate_session(SessionId=out["SessionId"])


def test_start_session_after_break_glass_expiry(aws_env: None) -> None:  # noqa: F811
    state = SimState(default_fleet())
    with serve_in_thread(state=state) as srv:
        access_key, secret_key = demo_credentials("prod")
        ssm = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=srv.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=NO_RETRY,
        )
        ssm.terminate_session(SessionId=ssm.start_session(Target=WEB_PROD_1)["SessionId"])
        later = state.iam.expires + timedelta(seconds=1)
        state.clock = lambda: later
        code, resp = code_of(ssm.start_session, Target=WEB_PROD_1)
        assert code == "AccessDeniedException"
        assert resp["Error"]["Message"].endswith(
            f"instance/{WEB_PROD_1} because no identity-based policy allows the "
            "ssm:StartSession action"
        )


def test_session_preferences_document(client: ClientFactory, aws_env: None) -> None:  # noqa: F811
    def inputs(profile: str, region: str) -> dict[str, Any]:
        got = client("ssm", profile, region).get_document(Name="SSM-SessionManagerRunShell")
        content = json.loads(got["Content"])
        assert content["schemaVersion"] == "1.0" and content["sessionType"] == "Standard_Stream"
        assert content["description"]
        return dict(content["inputs"])

    keys = {
        "s3BucketName",
        "s3KeyPrefix",
        "s3EncryptionEnabled",
        "cloudWatchLogGroupName",
        "cloudWatchEncryptionEnabled",
        "cloudWatchStreamingEnabled",
        "kmsKeyId",
        "runAsEnabled",
        "runAsDefaultUser",
        "idleSessionTimeout",
        "maxSessionDuration",
        "shellProfile",
    }
    prod_us = inputs("prod", "us-east-1")
    assert set(prod_us) == keys and prod_us["shellProfile"] == {"windows": "", "linux": ""}
    assert prod_us["s3BucketName"] == "" and prod_us["cloudWatchLogGroupName"] == ""
    assert prod_us["runAsEnabled"] is True and prod_us["runAsDefaultUser"] == "ops"
    dev_us = inputs("dev", "us-east-1")
    assert dev_us["cloudWatchLogGroupName"] == "/ssm/session-logs" and dev_us["kmsKeyId"] == ""
    assert dev_us["runAsEnabled"] is False
    assert inputs("dev", "eu-west-1")["kmsKeyId"] == "alias/ssm-sessions"
    assert inputs("prod", "eu-west-1")["kmsKeyId"] == "alias/ssm-sessions"

    # never configured: no such document (sessions still work)
    bare = fleet_from_dict(BARE)
    with serve_in_thread(bare) as srv:
        access_key, secret_key = demo_credentials("dev")
        ssm = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=srv.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=NO_RETRY,
        )
        code, _ = code_of(ssm.get_document, Name="SSM-SessionManagerRunShell")
        assert code == "InvalidDocument"
        assert ssm.start_session(Target="i-0123456789abcdef0")["SessionId"]
        assert ssm.describe_sessions(State="History")["Sessions"] == []


def test_seeded_sessions(client: ClientFactory, server: SimServer) -> None:
    prod = client("ssm", "prod")
    active = prod.describe_sessions(State="Active")["Sessions"]
    by_target = {s["Target"]: s for s in active}
    assert set(by_target) == {WEB_PROD_1, "i-07943dfabe1a8c2a8"}
    alice = by_target[WEB_PROD_1]
    assert alice["Owner"] == (
        f"arn:aws:sts::{PROD}:assumed-role/AWSReservedSSO_AdministratorAccess_5f3e2a1b9c7d4e60/"
        "alice@example.com"
    )
    assert alice["SessionId"].startswith("alice@example.com-")
    assert len(alice["SessionId"].rsplit("-", 1)[1]) == 17
    assert alice["Status"] == "Connected" and "EndDate" not in alice
    assert alice["DocumentName"] == "SSM-SessionManagerRunShell"
    age = datetime.now(UTC) - alice["StartDate"]
    assert timedelta(minutes=30) < age < timedelta(hours=2)
    bob = by_target["i-07943dfabe1a8c2a8"]
    assert bob["DocumentName"] == "AWS-StartPortForwardingSessionToRemoteHost"
    assert bob["SessionId"].startswith("bob@example.com-")
    history = prod.describe_sessions(State="History")["Sessions"]
    statuses = {s["Status"] for s in history}
    assert statuses == {"Terminated", "Failed"}
    assert all(s["EndDate"] >= s["StartDate"] for s in history)
    failed = next(s for s in history if s["Status"] == "Failed")
    assert failed["Details"]
    # dev: alice on web-dev-2 is active; carol's history has the CloudWatch output URL
    dev = client("ssm")
    dev_active = dev.describe_sessions(
        State="Active", Filters=[{"key": "Target", "value": "i-061ea51136a1eb39d"}]
    )["Sessions"]
    assert [s["SessionId"].split("-")[0] for s in dev_active] == ["alice@example.com"]
    dev_history = dev.describe_sessions(State="History")["Sessions"]
    carol = next(s for s in dev_history if s["Owner"].endswith(":user/carol"))
    assert "CloudWatchOutputUrl" in carol["OutputUrl"]
    # terminating a seeded session moves it to history
    prod.terminate_session(SessionId=alice["SessionId"])
    after = prod.describe_sessions(State="History")["Sessions"]
    moved = next(s for s in after if s["SessionId"] == alice["SessionId"])
    assert moved["Status"] == "Terminated"
    ids = [s["SessionId"] for s in prod.describe_sessions(State="Active")["Sessions"]]
    assert alice["SessionId"] not in ids
    # a custom fleet seeds nothing
    bare = fleet_from_dict(BARE)
    assert SimState(bare).sessions == {}


# --------------------------------------------------------------------------- evaluator


def _src(*statements: dict[str, Any], name: str = "p") -> PolicySource:
    return PolicySource(name, "user", {"Version": "2012-10-17", "Statement": list(statements)})


def test_wildcards() -> None:
    assert wildcard_match("ssm:Describe*", "ssm:DescribeSessions")
    assert wildcard_match("SSM:start?ession", "ssm:StartSession", ignore_case=True)
    assert not wildcard_match("SSM:StartSession", "ssm:StartSession")
    assert not wildcard_match("ssm:Get?", "ssm:GetDocument")
    assert wildcard_match("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:us-east-1:1:instance/i-1")
    assert not wildcard_match("a.c", "abc")  # no regex leaking
    policy = _src({"Effect": "Allow", "Action": "ssm:describe*", "Resource": "*"})
    assert evaluate([policy], "ssm:DescribeSessions").decision == ALLOWED
    assert evaluate([policy], "ssm:StartSession").decision == IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    policy = _src(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::public/*"},
    )
    assert evaluate([policy], "ssm:StartSession").decision == ALLOWED
    assert evaluate([policy], "iam:GetUser").decision == IMPLICIT_DENY
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::public/x").decision == ALLOWED
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::secret/x").decision == EXPLICIT_DENY


def test_deny_wins_and_matched_sources() -> None:
    allow = _src({"Effect": "Allow", "Action": "*", "Resource": "*"}, name="allow")
    deny = _src({"Effect": "Deny", "Action": "ssm:StartSession", "Resource": "*"}, name="deny")
    out = evaluate([allow, deny], "ssm:StartSession")
    assert out.decision == EXPLICIT_DENY and [m.policy_id for m in out.matched] == ["deny"]
    out = evaluate([allow, deny], "ssm:TerminateSession")
    assert out.decision == ALLOWED and [m.policy_id for m in out.matched] == ["allow"]
    assert evaluate([], "ssm:StartSession").decision == IMPLICIT_DENY


def test_conditions() -> None:
    def allow_if(condition: dict[str, Any]) -> PolicySource:
        return _src({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition})

    eq = allow_if({"StringEquals": {"ssm:resourceTag/Team": ["hr", "ops"]}})
    assert evaluate([eq], "x:Y", context={"ssm:resourceTag/Team": ["ops"]}).decision == ALLOWED
    assert evaluate([eq], "x:Y", context={"ssm:resourcetag/team": ["ops"]}).decision == ALLOWED
    out = evaluate([eq], "x:Y", context={"ssm:resourceTag/Team": ["dev"]})
    assert out.decision == IMPLICIT_DENY and out.missing == []
    out = evaluate([eq], "x:Y")
    assert out.decision == IMPLICIT_DENY and out.missing == ["ssm:resourceTag/Team"]
    neq = allow_if({"StringNotEquals": {"aws:username": "mallory"}})
    assert evaluate([neq], "x:Y", context={"aws:username": ["bob"]}).decision == ALLOWED
    assert evaluate([neq], "x:Y", context={"aws:username": ["mallory"]}).decision == IMPLICIT_DENY
    like = allow_if({"StringLike": {"aws:userid": "AIDA*:alice?"}})
    assert evaluate([like], "x:Y", context={"aws:userid": ["AIDA1:alice1"]}).decision == ALLOWED
    assert evaluate([like], "x:Y", context={"aws:userid": ["AIDA1:bob"]}).decision == IMPLICIT_DENY
    before = allow_if({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})
    after = allow_if({"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})
    early = {"aws:CurrentTime": ["2029-12-31T23:59:59Z"]}
    late = {"aws:CurrentTime": ["2030-01-01T00:00:01Z"]}
    assert evaluate([before], "x:Y", context=early).decision == ALLOWED
    assert evaluate([before], "x:Y", context=late).decision == IMPLICIT_DENY
    assert evaluate([after], "x:Y", context=late).decision == ALLOWED
    mfa = allow_if({"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    assert evaluate([mfa], "x:Y", context={"aws:MultiFactorAuthPresent": ["True"]}).decision == (
        ALLOWED
    )
    assert evaluate([mfa], "x:Y", context={"aws:MultiFactorAuthPresent": ["false"]}).decision == (
        IMPLICIT_DENY
    )
    if_exists = allow_if({"StringEqualsIfExists": {"ssm:resourceTag/Team": "ops"}})
    out = evaluate([if_exists], "x:Y")
    assert out.decision == ALLOWED and out.missing == []
    both = allow_if(
        {"StringEquals": {"ssm:resourceTag/Team": "ops"}, "Bool": {"aws:SecureTransport": "true"}}
    )
    out = evaluate([both], "x:Y", context={"ssm:resourceTag/Team": ["ops"]})
    assert out.decision == IMPLICIT_DENY and out.missing == ["aws:SecureTransport"]
    # a deny whose condition key is missing does not apply, but the key is reported
    deny = _src(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"ssm:resourceTag/Team": "hr"}},
        },
    )
    out = evaluate([deny], "ssm:StartSession")
    assert out.decision == ALLOWED and out.missing == ["ssm:resourceTag/Team"]
    single = _src({"Effect": "Allow", "Action": ["a:B"], "Resource": ["*"]})
    single_doc = {"Statement": {"Effect": "Allow", "Action": "a:B", "Resource": "*"}}
    assert evaluate([single], "a:b").decision == ALLOWED
    assert evaluate([PolicySource("s", "user", single_doc)], "a:B").decision == ALLOWED
