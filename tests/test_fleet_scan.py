"""The whole-scope fleet scan (EC2 first, SSM by id chunks in parallel) lists exactly what the
plain join of a full SSM listing with a live EC2 listing lists, and streams complete rows.

No mocks: real aiobotocore clients against ``ssmtui.sim.api`` on loopback.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from ssmtui.aws import fleet as aws_fleet
from ssmtui.aws import fleet_scan
from ssmtui.aws.clients import AwsClients, demo_clients
from ssmtui.aws.fleet import list_fleet
from ssmtui.config import Config
from ssmtui.models import FleetScope, Instance
from ssmtui.sim.api import SimServer, run_server
from ssmtui.sim.fleet import generate_fleet
from ssmtui.sim.state import SimState

shared_loop = pytest.mark.asyncio(loop_scope="module")
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    """Keep machine-wide AWS/proxy settings out of the loopback clients."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_") or name.lower() in ("http_proxy", "https_proxy"):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big(aws_env: None) -> AsyncIterator[tuple[SimServer, AwsClients]]:
    """1,200 generated instances (several EC2 pages' worth of SSM chunks per scope)."""
    fleet = generate_fleet(1_200, seed=3)
    # A registered EC2 node whose instance terminated: only SSM still knows it.
    gone = next(i for i in fleet if i.registered and i.is_ec2 and i.ping_status != "Online")
    gone.ec2_state = "terminated"
    # One terminating while its agent still says Online.
    going = next(i for i in fleet if i.registered and i.is_ec2 and i.ping_status == "Online")
    going.ec2_state = "shutting-down"
    async with (
        run_server(state=SimState(fleet)) as server,
        demo_clients(server, Config(max_attempts=3)) as clients,
    ):
        yield server, clients


def _comparable(instances: tuple[Instance, ...] | list[Instance]) -> dict[str, Instance]:
    """Instances by id, without the ping time (the simulation's clock moves between calls)."""
    return {i.instance_id: dataclasses.replace(i, last_ping=None) for i in instances}


async def _reference(clients: AwsClients, scope: FleetScope) -> list[Instance]:
    """The plain join: every SSM node (sequential pages) with every live EC2 instance."""
    ssm = await aws_fleet.describe_instance_information(clients, scope)
    ec2 = await aws_fleet.describe_instances(clients, scope)
    return fleet_scan.join(scope, ssm, ec2)


@shared_loop
async def test_scan_lists_what_the_plain_join_lists(big: tuple[SimServer, AwsClients]) -> None:
    server, clients = big
    result = await list_fleet(clients, SCOPES)
    assert result.ok
    want: list[Instance] = []
    for scope in SCOPES:
        want.extend(await _reference(clients, scope))
    got, ref = _comparable(result.instances), _comparable(want)
    assert len(result.instances) == len(got)  # no duplicates
    assert got == ref
    states = {i.instance_id: i.ec2_state for i in server.state.fleet}
    for iid, inst in got.items():
        if states.get(iid) in ("terminated", "shutting-down"):
            assert inst.registered and inst.state is None and inst.name == ""
    assert sum(states[i] in ("terminated", "shutting-down") for i in got) == 2
    assert any(i.ping_status == "NotRegistered" for i in got.values())
    assert any(i.is_hybrid for i in got.values())


@shared_loop
async def test_rows_stream_before_the_scope_is_done(big: tuple[SimServer, AwsClients]) -> None:
    _, clients = big
    streamed: dict[FleetScope, list[Instance]] = {s: [] for s in SCOPES}
    batches = [0]

    def on_rows(scope: FleetScope, rows: list[Instance]) -> None:
        streamed[scope].extend(rows)
        batches[0] += 1

    result = await list_fleet(clients, SCOPES, on_rows=on_rows)
    assert batches[0] > len(SCOPES)  # several batches per scope, not one at the end
    for scope in SCOPES:
        ids = [i.instance_id for i in streamed[scope]]
        assert len(ids) == len(set(ids))
        assert set(ids) == {i.instance_id for i in result.in_scope(scope)}


@shared_loop
async def test_ssm_calls_in_flight_stay_bounded(
    big: tuple[SimServer, AwsClients], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, clients = big
    scope = SCOPES[0]
    ssm = await clients.get("ssm", scope.profile, scope.region)
    original = ssm.describe_instance_information
    in_flight = [0, 0]  # now, most

    async def counted(**kwargs: object) -> object:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            return await original(**kwargs)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(ssm, "describe_instance_information", counted, raising=False)
    monkeypatch.setattr(fleet_scan, "SSM_CONCURRENCY", 3)
    server.state.op_latency["DescribeInstanceInformation"] = 0.02  # let calls overlap
    try:
        result = await list_fleet(clients, [scope])
    finally:
        server.state.op_latency.pop("DescribeInstanceInformation", None)
    assert result.ok and len(result) > 0
    assert 1 < in_flight[1] <= 3


@shared_loop
async def test_failing_chunk_fails_the_scope_only(big: tuple[SimServer, AwsClients]) -> None:
    server, clients = big
    server.state.force_error("DescribeInstanceInformation", "AccessDeniedException", times=1)
    try:
        result = await list_fleet(clients, SCOPES)
    finally:
        server.state.clear_faults()
    assert len(result.errors) == 1
    ((bad, _err),) = result.errors.items()
    assert result.in_scope(bad) == []
    assert all(result.in_scope(s) for s in SCOPES if s != bad)


# --------------------------------------------------------------------------- fast parsers


def _generic_and_fast(service: str, operation: str, body: bytes, headers: dict[str, str]) -> tuple:
    from aiobotocore.parsers import create_parser
    from botocore.session import get_session

    from ssmtui.aws.fastparse import FleetParserFactory

    model = get_session().get_service_model(service).operation_model(operation)
    response = {"body": body, "headers": headers, "status_code": 200}
    protocol = model.metadata["protocol"]
    generic = create_parser(protocol)
    fast = FleetParserFactory().create_parser(protocol)
    return generic, fast, response, model.output_shape


@pytest.mark.asyncio
async def test_fast_instance_information_parse_equals_botocore() -> None:
    from ssmtui.sim.aws_ssm import describe_instance_information
    from ssmtui.sim.aws_wire import Caller
    from ssmtui.sim.state import RequestContext

    state = SimState(generate_fleet(300, seed=5))
    caller = Caller("dev", "111111111111", "us-east-1", "ssm", "AKIA")
    ctx = RequestContext(state, caller, "ssm", "DescribeInstanceInformation", "req-9", "h", False)
    import json

    body = json.dumps(describe_instance_information(ctx, {"MaxResults": 50})).encode()
    headers = {"x-amzn-requestid": "req-9"}
    generic, fast, response, shape = _generic_and_fast(
        "ssm", "DescribeInstanceInformation", body, headers
    )
    want = await generic.parse(dict(response), shape)
    got = await fast.parse(dict(response), shape)
    assert got == want
    assert got["NextToken"] and len(got["InstanceInformationList"]) == 50
    assert got["InstanceInformationList"][0]["LastPingDateTime"].tzinfo is not None


@pytest.mark.asyncio
async def test_fast_describe_instances_parse_off_the_loop_equals_botocore() -> None:
    from ssmtui.aws.fastparse import DESCRIBE_INSTANCES_FIELDS, OFF_LOOP_BYTES
    from ssmtui.sim.aws_ec2 import describe_instances
    from ssmtui.sim.aws_wire import Caller, xml_document
    from ssmtui.sim.state import RequestContext

    state = SimState(generate_fleet(800, seed=5))
    caller = Caller("dev", "111111111111", "us-east-1", "ec2", "AKIA")
    ctx = RequestContext(state, caller, "ec2", "DescribeInstances", "req-7", "h", False)
    body = xml_document(describe_instances(ctx, {"MaxResults": "1000"}))
    assert len(body) >= OFF_LOOP_BYTES  # the worker-thread path
    generic, fast, response, shape = _generic_and_fast("ec2", "DescribeInstances", body, {})
    want = await generic.parse(dict(response), shape)
    got = await fast.parse(dict(response), shape)
    assert got["ResponseMetadata"]["RequestId"] == "req-7"
    assert len(got["Reservations"]) == len(want["Reservations"]) > 150
    for mine, theirs in zip(got["Reservations"], want["Reservations"], strict=True):
        assert mine["OwnerId"] == theirs["OwnerId"]
        (inst,) = mine["Instances"]
        (ref,) = theirs["Instances"]
        for field in DESCRIBE_INSTANCES_FIELDS:
            if field == "Placement":
                assert inst[field]["AvailabilityZone"] == ref[field]["AvailabilityZone"]
            elif field in ref or field in inst:
                assert inst.get(field) == ref.get(field), field
    # A namespaced document the fast path does not read goes to botocore's parser.
    odd = body.replace(b"<instanceId>", b'<instanceId xmlns:x="urn:x">', 1)
    again = await fast.parse({"body": odd, "headers": {}, "status_code": 200}, shape)
    assert (
        again["Reservations"][0]["Instances"][0]["InstanceId"]
        == (want["Reservations"][0]["Instances"][0]["InstanceId"])
    )


@shared_loop
async def test_aws_fleet_source_reports_partial_rows_then_the_result(
    big: tuple[SimServer, AwsClients],
) -> None:
    from ssmtui.models import FleetResult
    from ssmtui.ui.source import AwsFleetSource

    _, clients = big
    calls: dict[FleetScope, list[FleetResult]] = {s: [] for s in SCOPES}
    source = AwsFleetSource(clients, SCOPES, partial_interval=0.0)
    result = await source.list_fleet(lambda scope, res: calls[scope].append(res))
    assert result.ok and result.scopes == tuple(SCOPES)
    for scope in SCOPES:
        seen = calls[scope]
        assert len(seen) >= 2  # rows so far, ..., then the scope's result
        sizes = [len(r) for r in seen[:-1]]
        assert sizes == sorted(sizes) and sizes[0] > 0
        assert _comparable(seen[-1].instances) == _comparable(result.in_scope(scope))
