"""The demo fleet's loopback AWS endpoint, exercised through the real boto3 and aiobotocore clients.

No mocks: every call is signed with SigV4, sent over HTTP to ``ssmtui.sim.api`` and parsed by
botocore's own response parsers, so shapes and error codes are what the app will see.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from ssmtui.sim.api import SimServer, run_server, serve_in_thread
from ssmtui.sim.fleet import (
    LATEST_AGENT_VERSION,
    SimFleet,
    default_fleet,
    demo_credentials,
    generate_fleet,
    load_fleet,
)
from ssmtui.sim.state import SimSession
from tests.sim_harness import aws_env  # noqa: F401  (autouse: no machine-wide AWS/proxy settings)

SCOPES = [("dev", "us-east-1"), ("dev", "eu-west-1"), ("prod", "us-east-1"), ("prod", "eu-west-1")]
#: Registered (SSM-visible) nodes per profile/region in the shipped fleet.
REGISTERED = {SCOPES[0]: 9, SCOPES[1]: 4, SCOPES[2]: 8, SCOPES[3]: 5}  # incl. payroll-dev
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
AIO_NO_RETRY = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
ONLINE_DEV = "i-01d6875ee4127775f"  # web-dev-1, dev/us-east-1, Online
LOST_DEV = "i-0ed882b45e7d23de0"  # worker-dev-1, dev/us-east-1, ConnectionLost
INACTIVE_DEV = "i-0def4a0b021463baf"  # legacy-batch-dev, dev/us-east-1, Inactive, agent 2.x
BASTION_DEV = "i-03a5c1f2b33c2418a"  # bastion-dev, dev/us-east-1, Online
STOPPED_PROD = "i-0e3df693a45dd80d5"  # reporting-old, prod/us-east-1, stopped, unregistered
HYBRID_PROD = "mi-00deac0a26c0d846d"  # onprem-db-gw, prod/eu-west-1

ClientFactory = Callable[..., Any]


# --------------------------------------------------------------------------- fixtures/helpers


@pytest.fixture(scope="module")
def server(aws_env: None) -> Iterator[SimServer]:  # noqa: F811
    """The default demo fleet served from a background thread (boto3 is synchronous)."""
    with serve_in_thread(default_fleet()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_state(server: SimServer) -> Iterator[None]:
    """Each test starts without faults, sessions, forbidden keys or hooks."""
    state = server.state
    state.clear_faults()
    state.sessions.clear()
    state.kms.forbidden.clear()
    state.on_terminate = state.on_start_session = state.data_channel_handler = None
    yield
    state.clear_faults()


@pytest.fixture(scope="module")
def client(server: SimServer) -> ClientFactory:
    """``client(service, profile, region, retries=False)``: cached boto3 clients for the server."""
    cache: dict[tuple[str, str, str, bool], Any] = {}

    def make(service: str, profile: str = "dev", region: str = "us-east-1", retries: bool = False):
        key = (service, profile, region, retries)
        if key not in cache:
            access_key, secret_key = demo_credentials(profile)
            session = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
            )
            config = Config(retries={"total_max_attempts": 3, "mode": "standard"})
            cache[key] = session.client(
                service, endpoint_url=server.endpoint, config=config if retries else NO_RETRY
            )
        return cache[key]

    return make


def expected_ids(fleet: SimFleet, profile: str, region: str) -> list[str]:
    """Instance ids SSM should list for a profile/region, in fleet order."""
    account = fleet.account_for(profile)
    return [i.instance_id for i in fleet.in_scope(account, region) if i.registered]


def raises(code: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> ClientError:
    """Call and assert it fails with the AWS error ``code`` (as botocore parsed it)."""
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    assert exc.value.response["Error"]["Code"] == code, exc.value.response
    return exc.value


def flt(key: str, *values: str, name: str = "Key") -> dict[str, Any]:
    """An SSM (``Key``) or EC2 (``name="Name"``) filter."""
    return {name: key, "Values": list(values)}


def ssm_ids(ssm: Any, **kwargs: Any) -> set[str]:
    page = ssm.describe_instance_information(**kwargs)
    return {i["InstanceId"] for i in page["InstanceInformationList"]}


def ec2_ids(ec2: Any, *filters: tuple[str, str], **kwargs: Any) -> set[str]:
    if filters:
        kwargs["Filters"] = [flt(k, v, name="Name") for k, v in filters]
    page = ec2.describe_instances(**kwargs)
    return {i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]}


# --------------------------------------------------------------------------- fleet model


def test_default_fleet_contents() -> None:
    fleet = default_fleet()
    assert 30 <= len(fleet) <= 40
    assert fleet.profiles == ["dev", "prod"] and fleet.regions == ["eu-west-1", "us-east-1"]
    assert fleet.accounts == {"dev": "111111111111", "prod": "222222222222"}
    assert {i.ping_status for i in fleet} == {"Online", "ConnectionLost", "Inactive"}
    assert {i.platform_type for i in fleet} == {"Linux", "Windows"}
    assert {i.agent_version for i in fleet} >= {LATEST_AGENT_VERSION, "2.3.1644.0", "3.0.161.0"}
    hybrids = [i for i in fleet if i.is_hybrid]
    assert [i.instance_id for i in hybrids] == [HYBRID_PROD]
    assert hybrids[0].resource_type == "ManagedInstance" and hybrids[0].vpc_id is None
    unregistered = [(i.instance_id, i.ec2_state) for i in fleet if not i.registered]
    assert [u for u in unregistered if u[1] == "stopped"] == [(STOPPED_PROD, "stopped")]
    assert len(unregistered) == 9  # + the 8 broken-on-purpose running ones (doctor demo)
    for inst in fleet:
        assert {"Name", "Role", "Env", "Team"} <= inst.tags.keys()
        assert inst.tags["Env"] == inst.profile
        assert re.fullmatch(r"(i|mi)-[0-9a-f]{17}", inst.instance_id)
        assert inst.private_ip and inst.computer_name
        if inst.is_ec2:
            assert inst.vpc_id and inst.subnet_id and inst.security_group_ids
            assert inst.instance_profile_arn or inst.name == "orphan-no-profile"
    assert fleet.get(ONLINE_DEV) is not None and fleet.get("i-nope") is None
    assert len(fleet.by_profile("dev")) == 18 and len(fleet.by_region("eu-west-1")) == 11


def test_demo_credentials_and_generated_fleet() -> None:
    assert demo_credentials("dev")[0] == "AKIADEMODEVXXXXXXXXX"
    assert demo_credentials("prod")[0] == "AKIADEMOPRODXXXXXXXX"
    assert len({demo_credentials(p)[0] for p in ("dev", "prod", "x" * 30, "y" * 30)}) == 4
    assert default_fleet().profile_for_access_key(demo_credentials("prod")[0]) == "prod"
    one, two = generate_fleet(300, seed=5), generate_fleet(300, seed=5)
    assert [i.instance_id for i in one] == [i.instance_id for i in two]
    assert [i.instance_id for i in generate_fleet(300, seed=6)] != [i.instance_id for i in one]
    assert {(i.profile, i.region) for i in one} == set(SCOPES)


def test_load_fleet_from_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[accounts]\nlab = "333333333333"\n\n[[instances]]\ninstance_id = "i-0123456789abcdef0"\n'
        'name = "lab-1"\nprofile = "lab"\nregion = "ap-south-1"\nplatform_type = "Windows"\n'
    )
    (inst,) = load_fleet(path).instances
    assert inst.account_id == "333333333333" and inst.tags["Name"] == "lab-1"
    assert inst.computer_name.startswith("EC2AMAZ-")
    assert inst.availability_zone in ("ap-south-1a", "ap-south-1b")
    path.write_text('[[instances]]\ninstance_id = "bogus"\nprofile = "dev"\nregion = "x"\n')
    with pytest.raises(ValueError, match="bad instance_id"):
        load_fleet(path)


# --------------------------------------------------------------------------- SSM instances


@pytest.mark.parametrize(("profile", "region"), SCOPES)
def test_list_whole_fleet_paginated(client: ClientFactory, profile: str, region: str) -> None:
    ssm = client("ssm", profile, region)
    paginator = ssm.get_paginator("describe_instance_information")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 5}))
    items = [i for p in pages for i in p["InstanceInformationList"]]
    ids = [i["InstanceId"] for i in items]
    assert ids == expected_ids(default_fleet(), profile, region)
    assert len(ids) == REGISTERED[(profile, region)]
    assert len(pages) == -(-len(ids) // 5)
    default_page = ssm.describe_instance_information()
    assert len(default_page["InstanceInformationList"]) == min(10, len(ids))
    for item in items:
        assert item["LastPingDateTime"].year >= 2024
        assert item["IsLatestVersion"] == (item["AgentVersion"] == LATEST_AGENT_VERSION)
        assert item["ResourceType"] in ("EC2Instance", "ManagedInstance")
        assert item["IPAddress"] and item["ComputerName"] and item["PlatformName"]
        assert ("Name" in item) == item["InstanceId"].startswith("mi-")


def test_instance_information_filters(client: ClientFactory) -> None:
    ssm = client("ssm", "dev", "us-east-1")
    assert ssm_ids(ssm, Filters=[flt("PingStatus", "ConnectionLost")]) == {LOST_DEV}
    assert ssm_ids(ssm, Filters=[flt("PingStatus", "Inactive")]) == {INACTIVE_DEV}
    assert ssm_ids(ssm, Filters=[flt("PlatformTypes", "Windows")]) == {"i-0c5ef56821a540dc3"}
    web = ssm_ids(ssm, Filters=[flt("tag:Role", "web")])
    assert web == {ONLINE_DEV, "i-061ea51136a1eb39d"}
    assert ssm_ids(ssm, Filters=[flt("tag:Role", "web", "bastion")]) == web | {BASTION_DEV}
    both = {ONLINE_DEV, LOST_DEV}
    assert ssm_ids(ssm, Filters=[flt("InstanceIds", *both)]) == both
    data_online = [flt("tag:Team", "data"), flt("PingStatus", "Online")]
    assert ssm_ids(ssm, Filters=data_online) == {"i-01fc6480269f92f76"}
    assert ssm_ids(ssm, Filters=[flt("AgentVersion", "3.0.161.0")]) == {"i-0d2bfc8025ea4935a"}
    assert len(ssm_ids(ssm, Filters=[flt("ResourceType", "EC2Instance")])) == 9  # + payroll-dev
    legacy = [{"key": "PingStatus", "valueSet": ["Inactive"]}]
    assert ssm_ids(ssm, InstanceInformationFilterList=legacy) == {INACTIVE_DEV}
    hybrid = client("ssm", "prod", "eu-west-1").describe_instance_information(
        Filters=[flt("ResourceType", "ManagedInstance")]
    )["InstanceInformationList"]
    assert [(h["InstanceId"], h["Name"]) for h in hybrid] == [(HYBRID_PROD, "onprem-db-gw")]

    raises("InvalidFilterKey", ssm.describe_instance_information, Filters=[flt("Colour", "red")])
    raises("ValidationException", ssm.describe_instance_information, MaxResults=51)
    raises("InvalidNextToken", ssm.describe_instance_information, NextToken="garbage")


# --------------------------------------------------------------------------- EC2


def test_ec2_describe_instances(client: ClientFactory) -> None:
    ec2 = client("ec2", "prod", "us-east-1")
    pages = ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5})
    reservations = [r for page in pages for r in page["Reservations"]]
    instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    # 8 registered + the stopped one SSM does not know + 2 broken ones (isolated-no-path,
    # isolated-sg-blocks-443: running, never registered)
    assert len(instances) == 11
    assert all(r["OwnerId"] == "222222222222" for r in reservations)
    stopped = instances[STOPPED_PROD]
    assert stopped["State"] == {"Code": 80, "Name": "stopped"}
    tags = {t["Key"]: t["Value"] for t in stopped["Tags"]}
    assert tags == {"Name": "reporting-old", "Role": "reporting", "Env": "prod", "Team": "data"}
    bastion = instances["i-03b5e3ee450c0218b"]
    assert bastion["PublicIpAddress"] == "3.92.14.200"
    assert bastion["PrivateIpAddress"].startswith("10.2.")
    assert bastion["VpcId"] == "vpc-0beef0ffee0a10003" and bastion["SubnetId"].startswith("subnet-")
    assert bastion["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::222222222222:")
    assert bastion["LaunchTime"].year == 2024 and bastion["PlatformDetails"] == "Linux/UNIX"
    assert "Platform" not in bastion
    assert instances["i-0137ea259a73e7a71"]["Platform"] == "windows"

    assert ec2_ids(ec2, ("instance-state-name", "stopped")) == {STOPPED_PROD}
    web = {"i-0e6cd11dc3cba7b69", "i-02af50b17765dc391", "i-0a58811dd1ed40b83"}
    assert ec2_ids(ec2, ("tag:Role", "web")) == web
    assert ec2_ids(ec2, ("tag:Name", "api-prod-*")) == {
        "i-09c9faad5c6a200ed",
        "i-0c5c225d4f8bdd73e",
    }
    assert ec2_ids(ec2, ("tag:Role", "web"), ("instance-state-name", "running")) == web
    assert ec2_ids(ec2, InstanceIds=[STOPPED_PROD]) == {STOPPED_PROD}
    assert ec2_ids(ec2, ("instance-id", STOPPED_PROD)) == {STOPPED_PROD}
    # The hybrid node is SSM-only; other accounts' instances are invisible.
    assert HYBRID_PROD not in ec2_ids(client("ec2", "prod", "eu-west-1"))
    dev_ec2 = client("ec2", "dev", "us-east-1")
    raises("InvalidInstanceID.NotFound", dev_ec2.describe_instances, InstanceIds=[STOPPED_PROD])
    bogus = [flt("bogus", "x", name="Name")]
    raises("InvalidParameterValue", ec2.describe_instances, Filters=bogus)


# --------------------------------------------------------------------------- sessions

DOCUMENT_CASES: list[tuple[str | None, dict[str, list[str]], dict[str, str]]] = [
    (None, {}, {}),
    ("SSM-SessionManagerRunShell", {}, {}),
    ("AWS-StartPortForwardingSession", {"portNumber": ["8080"]}, {"portNumber": "8080"}),
    (
        "AWS-StartPortForwardingSessionToRemoteHost",
        {"host": ["db.internal"], "portNumber": ["5432"], "localPortNumber": ["15432"]},
        {"host": "db.internal", "portNumber": "5432", "localPortNumber": "15432"},
    ),
    ("AWS-StartSSHSession", {}, {"portNumber": "22"}),
    ("AWS-StartInteractiveCommand", {"command": ["top"]}, {"command": "top"}),
    ("AWS-StartNonInteractiveCommand", {"command": ["uptime"]}, {"command": "uptime"}),
]


@pytest.mark.parametrize(("document", "params", "resolved"), DOCUMENT_CASES)
def test_start_session_documents(
    client: ClientFactory,
    server: SimServer,
    document: str | None,
    params: dict[str, list[str]],
    resolved: dict[str, str],
) -> None:
    kwargs: dict[str, Any] = {"Target": ONLINE_DEV, "Reason": "testing"}
    if document:
        kwargs["DocumentName"] = document
    if params:
        kwargs["Parameters"] = params
    out = client("ssm").start_session(**kwargs)
    sid = out["SessionId"]
    assert re.fullmatch(r"demo-[0-9a-f]{17}", sid)
    assert len(out["TokenValue"]) >= 100
    base = f"ws://127.0.0.1:{server.port}/v1/data-channel/"
    assert out["StreamUrl"] == f"{base}{sid}?role=publish_subscribe"
    session = server.state.sessions[sid]
    assert session.target == ONLINE_DEV and session.status == "Connected"
    assert session.document_name == (document or "SSM-SessionManagerRunShell")
    assert session.parameters == params
    assert resolved.items() <= session.resolved_parameters.items()
    assert session.accepts_token(out["TokenValue"]) and not session.accepts_token("x")
    assert session.owner == "arn:aws:iam::111111111111:user/demo"
    assert session.account_id == "111111111111" and session.region == "us-east-1"
    assert session.reason == "testing" and session.profile == "dev"


def test_start_session_errors(client: ClientFactory) -> None:
    ssm = client("ssm")
    remote = "AWS-StartPortForwardingSessionToRemoteHost"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Target": LOST_DEV}, "TargetNotConnected"),
        ({"Target": INACTIVE_DEV}, "TargetNotConnected"),
        ({"Target": "i-0e6cd11dc3cba7b69"}, "TargetNotConnected"),  # prod's instance
        ({"Target": ONLINE_DEV, "DocumentName": "AWS-RunShellScript"}, "InvalidDocument"),
        ({"Target": ONLINE_DEV, "DocumentName": remote}, "InvalidParameters"),  # host missing
        (
            {"Target": ONLINE_DEV, "DocumentName": remote, "Parameters": {"x": ["1"]}},
            "InvalidParameters",
        ),
    ]
    for kwargs, code in cases:
        raises(code, ssm.start_session, **kwargs)
    err = raises("TargetNotConnected", ssm.start_session, Target=LOST_DEV)
    assert err.response["Error"]["Message"] == f"{LOST_DEV} is not connected."
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.response["ResponseMetadata"]["RequestId"]
    # botocore maps modelled errors to the client's exception classes
    with pytest.raises(ssm.exceptions.TargetNotConnected):
        ssm.start_session(Target=LOST_DEV)
    # the unregistered stopped instance cannot be reached either
    prod = client("ssm", "prod", "us-east-1")
    raises("TargetNotConnected", prod.start_session, Target=STOPPED_PROD)


def test_session_lifecycle(client: ClientFactory, server: SimServer) -> None:
    ssm = client("ssm")
    terminated: list[str] = []
    server.state.on_terminate = terminated.append
    first = ssm.start_session(Target=ONLINE_DEV)
    sid = first["SessionId"]
    second = ssm.start_session(Target=BASTION_DEV, DocumentName="AWS-StartSSHSession", Reason="ssh")
    resumed = ssm.resume_session(SessionId=sid)
    assert resumed["SessionId"] == sid and resumed["StreamUrl"] == first["StreamUrl"]
    assert resumed["TokenValue"] != first["TokenValue"]
    assert server.state.sessions[sid].token == resumed["TokenValue"]

    assert ssm.get_connection_status(Target=ONLINE_DEV)["Status"] == "connected"
    assert ssm.get_connection_status(Target=LOST_DEV)["Status"] == "notconnected"

    active = ssm.describe_sessions(State="Active")["Sessions"]
    assert [s["SessionId"] for s in active] == [second["SessionId"], sid]
    assert active[0]["DocumentName"] == "AWS-StartSSHSession" and active[0]["Reason"] == "ssh"
    assert active[0]["Owner"] == "arn:aws:iam::111111111111:user/demo"
    # other accounts/regions do not see them
    assert client("ssm", "prod", "us-east-1").describe_sessions(State="Active")["Sessions"] == []
    assert client("ssm", "dev", "eu-west-1").describe_sessions(State="Active")["Sessions"] == []

    assert ssm.terminate_session(SessionId=sid)["SessionId"] == sid
    assert terminated == [sid] and server.state.sessions[sid].status == "Terminated"
    ssm.terminate_session(SessionId=sid)  # idempotent, hook not re-run
    assert terminated == [sid]
    history = ssm.describe_sessions(State="History")["Sessions"]
    assert [(s["SessionId"], s["Status"]) for s in history] == [(sid, "Terminated")]
    assert history[0]["EndDate"] >= history[0]["StartDate"]
    assert "CloudWatchOutputUrl" in history[0]["OutputUrl"]
    active = ssm.describe_sessions(State="Active")["Sessions"]
    assert [s["SessionId"] for s in active] == [second["SessionId"]]

    raises("DoesNotExistException", ssm.resume_session, SessionId=sid)
    with pytest.raises(ssm.exceptions.DoesNotExistException):
        ssm.resume_session(SessionId="demo-00000000000000000")

    by_target = [{"key": "Target", "value": BASTION_DEV}]
    filtered = ssm.describe_sessions(State="Active", Filters=by_target)["Sessions"]
    assert [s["SessionId"] for s in filtered] == [second["SessionId"]]
    for _ in range(3):
        ssm.start_session(Target=ONLINE_DEV)
    paginator = ssm.get_paginator("describe_sessions")
    pages = list(paginator.paginate(State="Active", PaginationConfig={"PageSize": 2}))
    assert [len(p["Sessions"]) for p in pages] == [2, 2]
    bad = [{"key": "Colour", "value": "red"}]
    raises("InvalidFilterKey", ssm.describe_sessions, State="Active", Filters=bad)


def test_get_document(client: ClientFactory) -> None:
    us = client("ssm", "dev", "us-east-1").get_document(Name="SSM-SessionManagerRunShell")
    eu = client("ssm", "dev", "eu-west-1").get_document(Name="SSM-SessionManagerRunShell")
    assert us["DocumentType"] == "Session" and us["DocumentFormat"] == "JSON"
    us_inputs = json.loads(us["Content"])["inputs"]
    eu_inputs = json.loads(eu["Content"])["inputs"]
    keys = "s3BucketName cloudWatchLogGroupName kmsKeyId idleSessionTimeout maxSessionDuration"
    for key in [*keys.split(), "runAsEnabled", "shellProfile"]:
        assert key in us_inputs and key in eu_inputs
    assert us_inputs["kmsKeyId"] == "" and us_inputs["cloudWatchLogGroupName"]
    assert eu_inputs["kmsKeyId"] == "alias/ssm-sessions" and eu_inputs["idleSessionTimeout"] == "30"
    content = json.loads(client("ssm").get_document(Name="AWS-StartSSHSession")["Content"])
    assert content["sessionType"] == "Port"
    assert content["parameters"]["portNumber"]["default"] == "22"
    raises("InvalidDocument", client("ssm").get_document, Name="No-Such-Document")


# --------------------------------------------------------------------------- faults & auth


def test_fault_knobs(client: ClientFactory, server: SimServer) -> None:
    state, ssm = server.state, client("ssm")
    state.force_error("StartSession", "AccessDeniedException", "nope", times=1)
    err = raises("AccessDeniedException", ssm.start_session, Target=ONLINE_DEV)
    assert err.response["Error"]["Message"] == "nope"
    assert ssm.start_session(Target=ONLINE_DEV)["SessionId"]  # consumed

    state.throttle(times=2, operation="DescribeInstanceInformation")
    for _ in range(2):
        raises("ThrottlingException", ssm.describe_instance_information)
    assert ssm.describe_instance_information()["InstanceInformationList"]
    state.throttle(times=1)  # botocore's standard retry mode gets through
    retrying = client("ssm", retries=True).describe_instance_information()
    assert retrying["ResponseMetadata"]["RetryAttempts"] == 1

    state.expired_credentials = True
    raises("ExpiredTokenException", ssm.describe_sessions, State="Active")
    raises("ExpiredTokenException", client("kms").generate_data_key, KeyId="alias/k")
    raises("ExpiredToken", client("sts").get_caller_identity)
    raises("RequestExpired", client("ec2").describe_instances)
    state.expired_credentials = False

    state.apply_fault("error:ec2:DescribeInstances:UnauthorizedOperation:1")
    raises("UnauthorizedOperation", client("ec2").describe_instances)
    assert client("ec2").describe_instances()["Reservations"]
    state.apply_fault("latency:0.2")
    started = time.monotonic()
    client("sts").get_caller_identity()
    assert time.monotonic() - started >= 0.2
    with pytest.raises(ValueError):
        state.apply_fault("explode")
    assert state.calls[-1].operation == "GetCallerIdentity" and state.calls[-1].profile == "dev"


def test_bad_credentials(server: SimServer) -> None:
    good_key, _ = demo_credentials("dev")
    for key, secret, code in [
        (good_key, "wrong-secret", "InvalidSignatureException"),
        ("AKIAUNKNOWN000000000", "x", "UnrecognizedClientException"),
    ]:
        ssm = boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
        ).client("ssm", endpoint_url=server.endpoint, config=NO_RETRY)
        raises(code, ssm.describe_instance_information)


def test_sts_get_caller_identity(client: ClientFactory) -> None:
    for profile, account in [("dev", "111111111111"), ("prod", "222222222222")]:
        ident = client("sts", profile, "eu-west-1").get_caller_identity()
        assert ident["Account"] == account
        assert ident["Arn"] == f"arn:aws:iam::{account}:user/demo"
        assert ident["UserId"].startswith("AIDA")
        assert ident["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


# --------------------------------------------------------------------------- KMS


def test_kms_round_trip(client: ClientFactory, server: SimServer) -> None:
    kms = client("kms", "dev", "eu-west-1")
    context = {"aws:ssm:SessionId": "demo-1", "aws:ssm:TargetId": ONLINE_DEV}
    key = kms.generate_data_key(KeyId="alias/ssm-sessions", EncryptionContext=context)
    blob, arn = key["CiphertextBlob"], key["KeyId"]
    assert len(key["Plaintext"]) == 32
    assert re.fullmatch(r"arn:aws:kms:eu-west-1:111111111111:key/[0-9a-f-]{36}", arn)
    assert len(kms.generate_data_key(KeyId="alias/x", KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId="alias/x", NumberOfBytes=64)["Plaintext"]) == 64
    assert kms.generate_data_key(KeyId=arn)["KeyId"] == arn  # alias and ARN: the same key
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert plain["Plaintext"] == key["Plaintext"] and plain["KeyId"] == arn
    with_key = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=arn)
    assert with_key["Plaintext"] == key["Plaintext"]

    wrong_context = {**context, "aws:ssm:TargetId": "i-other"}
    raises(
        "InvalidCiphertextException",
        kms.decrypt,
        CiphertextBlob=blob,
        EncryptionContext=wrong_context,
    )
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"not a kms blob")
    raises(
        "IncorrectKeyException",
        kms.decrypt,
        CiphertextBlob=blob,
        EncryptionContext=context,
        KeyId="alias/other",
    )
    prod_kms = client("kms", "prod", "eu-west-1")  # another account cannot use dev's key
    raises(
        "AccessDeniedException", prod_kms.decrypt, CiphertextBlob=blob, EncryptionContext=context
    )

    server.state.forbidden_kms_keys.add("alias/ssm-sessions")
    raises("AccessDeniedException", kms.generate_data_key, KeyId="alias/ssm-sessions")
    raises("AccessDeniedException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=context)
    # the service side (simulated agent) is not subject to the caller's key policy
    plaintext, sealed, same = server.state.kms.generate_data_key(
        "111111111111", "eu-west-1", "alias/ssm-sessions", context
    )
    assert same == arn and len(plaintext) == 32 and sealed


# --------------------------------------------------------------------------- aiobotocore


async def test_aiobotocore_against_run_server() -> None:
    fleet = default_fleet()
    async with run_server(fleet) as server:
        assert server.endpoint == f"http://127.0.0.1:{server.port}"
        session = get_session()
        for profile, region in SCOPES:
            kwargs = server.client_kwargs(profile, region)
            async with session.create_client("ssm", config=AIO_NO_RETRY, **kwargs) as ssm:
                paginator = ssm.get_paginator("describe_instance_information")
                ids = [
                    i["InstanceId"]
                    async for page in paginator.paginate(PaginationConfig={"PageSize": 5})
                    for i in page["InstanceInformationList"]
                ]
                assert ids == expected_ids(fleet, profile, region)
        kwargs = server.client_kwargs("dev", "us-east-1")
        async with (
            session.create_client("ssm", config=AIO_NO_RETRY, **kwargs) as ssm,
            session.create_client("ec2", config=AIO_NO_RETRY, **kwargs) as ec2,
            session.create_client("sts", config=AIO_NO_RETRY, **kwargs) as sts,
            session.create_client("kms", config=AIO_NO_RETRY, **kwargs) as kms,
        ):
            out = await ssm.start_session(Target=ONLINE_DEV)
            assert out["StreamUrl"].startswith(f"ws://127.0.0.1:{server.port}/v1/data-channel/")
            with pytest.raises(ClientError) as exc:
                await ssm.start_session(Target=LOST_DEV)
            assert exc.value.response["Error"]["Code"] == "TargetNotConnected"
            # 9 registered + 4 running, unregistered broken ones (doctor demo)
            assert len((await ec2.describe_instances())["Reservations"]) == 13
            assert (await sts.get_caller_identity())["Account"] == "111111111111"
            key = await kms.generate_data_key(KeyId="alias/k", EncryptionContext={"a": "b"})
            blob = key["CiphertextBlob"]
            back = await kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})
            assert back["Plaintext"] == key["Plaintext"]


async def test_generated_fleet_paging_at_scale() -> None:
    fleet = generate_fleet(10_000, seed=7)
    started = time.monotonic()
    async with run_server(fleet) as server:
        session = get_session()

        async def list_scope(profile: str, region: str) -> list[str]:
            kwargs = server.client_kwargs(profile, region)
            async with session.create_client("ssm", config=AIO_NO_RETRY, **kwargs) as ssm:
                paginator = ssm.get_paginator("describe_instance_information")
                return [
                    i["InstanceId"]
                    async for page in paginator.paginate(PaginationConfig={"PageSize": 50})
                    for i in page["InstanceInformationList"]
                ]

        results = await asyncio.gather(*(list_scope(p, r) for p, r in SCOPES))
    for (profile, region), ids in zip(SCOPES, results, strict=True):
        assert ids == expected_ids(fleet, profile, region)
        assert len(ids) == len(set(ids))
    assert sum(map(len, results)) == sum(i.registered for i in fleet) > 9_500
    assert time.monotonic() - started < 12


async def test_data_channel_websocket_route() -> None:
    async with run_server() as server:
        state = server.state
        kwargs = server.client_kwargs("dev", "us-east-1")
        async with get_session().create_client("ssm", **kwargs) as ssm:
            out = await ssm.start_session(Target=ONLINE_DEV)
        url, sid = out["StreamUrl"], out["SessionId"]
        async with aiohttp.ClientSession() as http:
            # without an agent attached the socket is closed straight away
            async with http.ws_connect(url) as ws:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1013

            seen: list[SimSession] = []

            async def echo(request: Any, server_ws: Any, sim_session: SimSession) -> None:
                seen.append(sim_session)
                async for message in server_ws:
                    await server_ws.send_str(message.data.upper())

            state.data_channel_handler = echo
            async with http.ws_connect(url) as ws:
                await ws.send_str("hello")
                assert (await ws.receive_str()) == "HELLO"
                assert seen[0].session_id == sid and seen[0].websockets
                # TerminateSession without an on_terminate hook closes the socket itself
                await state.terminate_session(sid)
                msg = await ws.receive()
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

            for bad_url, status in [(url.replace(sid, "demo-0000"), 404), (url, 403)]:
                with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                    await http.ws_connect(bad_url)
                assert exc.value.status == status
            async with http.post(server.endpoint + "/", data=b"Action=Nope") as resp:
                assert resp.status == 400 and resp.headers["x-amzn-RequestId"]
            async with http.get(server.endpoint + "/nothing-here") as resp:
                assert resp.status == 404 and resp.headers["x-amzn-RequestId"]
