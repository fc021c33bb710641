"""Fleet listing, target resolution and the command line, against the real demo server.

No mocks: :func:`ssmtui.aws.fleet.list_fleet` talks SigV4-signed HTTP to ``ssmtui.sim.api`` through
aiobotocore, and the CLI runs as a subprocess (``python -m ssmtui``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
import pytest_asyncio
from botocore.config import Config as BotoConfig

from ssmtui import cli
from ssmtui.aws.clients import AwsClients, demo_clients
from ssmtui.aws.fleet import list_fleet, resolve_target
from ssmtui.config import Config
from ssmtui.errors import AccessDenied, CredentialsError, TargetError, Throttled
from ssmtui.models import FleetScope
from ssmtui.sim.api import SimServer, run_server
from ssmtui.sim.fleet import SimFleet, default_fleet, demo_credentials, generate_fleet
from ssmtui.sim.state import SimState

#: In-process tests share one event loop with the module's demo server and clients.
shared_loop = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]
STOPPED_PROD = "i-0e3df693a45dd80d5"  # reporting-old: stopped, no SSM agent
HYBRID_PROD = "mi-00deac0a26c0d846d"  # onprem-db-gw: hybrid node, no EC2 record
ONLINE_DEV = "i-01d6875ee4127775f"  # web-dev-1
ID_RE = re.compile(r"\b(?:i|mi)-[0-9a-f]{8,17}\b")


def _clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus machine-wide AWS / proxy / ssmtui settings."""
    env = {
        k: v
        for k, v in (base if base is not None else os.environ).items()
        if not k.startswith(("AWS_", "SSMTUI_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    """Keep machine-wide AWS/proxy settings (AWS_PROFILE, AWS_CA_BUNDLE, HTTPS_PROXY...) out."""
    with pytest.MonkeyPatch.context() as mp:
        clean = _clean_env()
        for name in list(os.environ):
            if name not in clean:
                mp.delenv(name)
        for name, value in clean.items():
            mp.setenv(name, value)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_demo(aws_env: None) -> AsyncIterator[tuple[SimServer, AwsClients]]:
    """The shipped demo fleet on loopback, and clients (one attempt per call) aimed at it."""
    async with (
        run_server(state=SimState(default_fleet())) as server,
        demo_clients(server, Config(max_attempts=1)) as clients,
    ):
        yield server, clients


@pytest.fixture
def demo(shared_demo: tuple[SimServer, AwsClients]) -> Iterator[tuple[SimServer, AwsClients]]:
    """:func:`shared_demo`, without faults before and after the test."""
    shared_demo[0].state.clear_faults()
    yield shared_demo
    shared_demo[0].state.clear_faults()


def expected(fleet: SimFleet, scope: FleetScope) -> set[str]:
    """Ids ssmtui should list in a scope: registered nodes + every (live) EC2 instance."""
    account = fleet.account_for(scope.profile)
    return {i.instance_id for i in fleet.in_scope(account, scope.region)}


# --------------------------------------------------------------------------- list_fleet


@shared_loop
async def test_list_fleet_joins_ssm_and_ec2(demo: tuple[SimServer, AwsClients]) -> None:
    server, clients = demo
    fleet = server.state.fleet
    result = await list_fleet(clients, SCOPES)
    assert result.ok and result.scopes == tuple(SCOPES)
    assert len(result) == len(fleet) == 35  # 26 + payroll-dev + 8 broken ones (doctor demo)
    for scope in SCOPES:
        assert {i.instance_id for i in result.in_scope(scope)} == expected(fleet, scope)
    by_id = result.by_id()
    stopped = by_id[STOPPED_PROD]
    assert stopped.ping_status == "NotRegistered" and not stopped.registered
    assert stopped.state == "stopped" and stopped.name == "reporting-old"
    assert stopped.scope == FleetScope("prod", "us-east-1")
    hybrid = by_id[HYBRID_PROD]
    assert hybrid.registered and hybrid.state is None and hybrid.vpc_id is None
    assert hybrid.resource_type == "ManagedInstance" and hybrid.name == "onprem-db-gw"
    assert hybrid.account_id == "222222222222"
    web = by_id[ONLINE_DEV]
    sim = fleet.get(ONLINE_DEV)
    assert sim is not None
    assert (web.name, web.ping_status, web.state) == ("web-dev-1", "Online", "running")
    assert web.private_ip == sim.private_ip and web.vpc_id == sim.vpc_id
    assert web.subnet_id == sim.subnet_id and web.instance_profile == sim.instance_profile_arn
    assert web.tag("Role") == "web" and web.tag_map == sim.tags
    assert web.agent_version == sim.agent_version and web.computer_name == sim.computer_name
    assert web.account_id == "111111111111" and web.is_online
    assert web.last_ping is not None and web.last_ping.tzinfo is not None
    assert web.supports_mux and web.supports_remote_host
    old = by_id["i-0def4a0b021463baf"]  # legacy-batch-dev, agent 2.3.1644.0
    assert not old.supports_mux and not old.supports_remote_host
    assert old.ping_status == "Inactive" and not old.is_online


@shared_loop
async def test_one_expired_scope_does_not_hide_the_others(
    demo: tuple[SimServer, AwsClients],
) -> None:
    server, clients = demo
    fleet = server.state.fleet
    # The next SSM listing (whichever scope asks first) fails with an expired token.
    server.state.force_error("DescribeInstanceInformation", "ExpiredTokenException", times=1)
    result = await list_fleet(clients, SCOPES)
    assert len(result.errors) == 1
    ((bad, err),) = result.errors.items()
    assert isinstance(err, CredentialsError)
    assert err.code == "ExpiredTokenException" and err.request_id
    assert (err.profile, err.region, err.operation) == (
        bad.profile,
        bad.region,
        "DescribeInstanceInformation",
    )
    assert err.hint == f"run: aws sso login --profile {bad.profile}"
    assert "expired" in str(err) and "\n" not in str(err) and str(bad) in str(err)
    assert result.in_scope(bad) == []
    for scope in SCOPES:
        if scope != bad:
            assert {i.instance_id for i in result.in_scope(scope)} == expected(fleet, scope)


@shared_loop
async def test_unknown_credentials_fail_only_their_scope(
    demo: tuple[SimServer, AwsClients],
) -> None:
    _, clients = demo
    qa = FleetScope("qa", "us-east-1")  # the server knows no "qa" access key
    result = await list_fleet(clients, [*SCOPES, qa])
    assert set(result.errors) == {qa}
    assert isinstance(result.errors[qa], CredentialsError)
    assert "rejected" in str(result.errors[qa])
    assert len(result) == 35


@shared_loop
async def test_expired_credentials_never_look_like_no_instances(
    demo: tuple[SimServer, AwsClients],
) -> None:
    server, clients = demo
    server.state.expired_credentials = True
    result = await list_fleet(clients, SCOPES)
    assert len(result) == 0 and set(result.errors) == set(SCOPES)
    assert all(isinstance(e, CredentialsError) for e in result.errors.values())
    with pytest.raises(CredentialsError):
        await resolve_target(clients, SCOPES, "web-dev-1")


@shared_loop
async def test_access_denied_and_throttling_are_one_line_errors(
    demo: tuple[SimServer, AwsClients],
) -> None:
    server, clients = demo
    scope = [FleetScope("dev", "us-east-1")]
    server.state.force_error("ssm:DescribeInstanceInformation", "AccessDeniedException", times=None)
    err = (await list_fleet(clients, scope)).errors[scope[0]]
    assert isinstance(err, AccessDenied) and err.code == "AccessDeniedException"
    assert "not authorized to call ssm:DescribeInstanceInformation" in str(err)
    assert err.hint and "\n" not in str(err) and err.request_id and err.request_id in str(err)
    server.state.clear_faults()
    server.state.throttle(times=None, operation="DescribeInstanceInformation")
    err = (await list_fleet(clients, scope)).errors[scope[0]]
    assert isinstance(err, Throttled) and err.code == "ThrottlingException"
    assert "throttling" in str(err) and "\n" not in str(err)


@shared_loop
async def test_ec2_denied_still_lists_ssm_nodes(demo: tuple[SimServer, AwsClients]) -> None:
    server, clients = demo
    server.state.force_error("ec2:DescribeInstances", "UnauthorizedOperation", times=None)
    result = await list_fleet(clients, SCOPES)
    assert set(result.errors) == set(SCOPES)
    assert all(isinstance(e, AccessDenied) for e in result.errors.values())
    registered = {i.instance_id for i in server.state.fleet if i.registered}
    assert {i.instance_id for i in result.instances} == registered  # no NotRegistered rows


@shared_loop
async def test_throttling_is_retried(demo: tuple[SimServer, AwsClients]) -> None:
    server, _ = demo
    server.state.throttle(times=1, operation="DescribeInstanceInformation")
    async with demo_clients(server, Config(max_attempts=3)) as clients:
        result = await list_fleet(clients, [FleetScope("dev", "eu-west-1")])
    assert result.ok and len(result) == 5  # 4 + isolated-no-private-dns (unregistered)


@shared_loop
async def test_list_fleet_by_instance_ids(demo: tuple[SimServer, AwsClients]) -> None:
    _, clients = demo
    result = await list_fleet(clients, SCOPES, instance_ids=[STOPPED_PROD, HYBRID_PROD])
    assert sorted(i.instance_id for i in result.instances) == sorted([STOPPED_PROD, HYBRID_PROD])
    assert (await list_fleet(clients, SCOPES, instance_ids=[])).instances == ()


# --------------------------------------------------------------------------- resolve_target


@shared_loop
@pytest.mark.parametrize(
    ("target", "want"),
    [
        (ONLINE_DEV, ONLINE_DEV),
        ("web-dev-1", ONLINE_DEV),
        ("WEB-DEV-1", ONLINE_DEV),  # case-insensitive fallback
        ("onprem-db-gw", HYBRID_PROD),
        ("tag:Role=batch", "i-0def4a0b021463baf"),
        ("10.2.18.145", STOPPED_PROD),
        (HYBRID_PROD, HYBRID_PROD),
    ],
)
async def test_resolve_target(demo: tuple[SimServer, AwsClients], target: str, want: str) -> None:
    _, clients = demo
    assert (await resolve_target(clients, SCOPES, target)).instance_id == want


@shared_loop
async def test_resolve_target_unknown_and_ambiguous(demo: tuple[SimServer, AwsClients]) -> None:
    _, clients = demo
    with pytest.raises(TargetError) as unknown:
        await resolve_target(clients, SCOPES, "web-dev-9")
    assert "no instance matches 'web-dev-9'" in str(unknown.value)
    assert any(c.startswith("web-dev-1 (") for c in unknown.value.candidates)
    assert unknown.value.hint and unknown.value.hint.startswith("did you mean")
    with pytest.raises(TargetError) as ambiguous:
        await resolve_target(clients, SCOPES, "tag:Role=web")
    assert "ambiguous" in str(ambiguous.value) and len(ambiguous.value.candidates) == 8
    assert all("\n" not in line for line in ambiguous.value.lines())
    with pytest.raises(TargetError, match="no instance matches"):
        await resolve_target(clients, SCOPES, "i-0123456789abcdef0")
    with pytest.raises(TargetError, match="expected tag:Key=Value"):
        await resolve_target(clients, SCOPES, "tag:Role")


async def test_ten_thousand_instances() -> None:
    fleet = generate_fleet(10_000, seed=7)
    started = time.monotonic()
    async with run_server(fleet) as server, demo_clients(server) as clients:
        result = await list_fleet(clients, SCOPES)
    elapsed = time.monotonic() - started
    assert result.ok and len(result) == 10_000
    assert len({i.instance_id for i in result.instances}) == 10_000
    not_registered = [i for i in result.instances if i.ping_status == "NotRegistered"]
    assert len(not_registered) == sum(1 for i in fleet if not i.registered) > 0
    hybrids = [i for i in result.instances if i.is_hybrid]
    assert len(hybrids) == sum(1 for i in fleet if i.is_hybrid) > 0
    sample = fleet.instances[1234]
    got = result.by_id()[sample.instance_id]
    assert got.name == sample.name and got.tag("Team") == sample.tags["Team"]
    assert elapsed < 60, f"listing 10,000 instances took {elapsed:.1f}s"


# --------------------------------------------------------------------------- CLI (subprocess)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = _clean_env()
    env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg"))  # no user config
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ssmtui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def assert_one_error(res: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """Exactly ``ssmtui: …`` (+ optional ``hint: …``) on stderr, non-zero exit, no traceback."""
    assert res.returncode != 0, res
    if code is not None:
        assert res.returncode == code, res
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith("ssmtui: ")
    if len(lines) == 2:
        assert lines[1].startswith("hint: ")
    return lines[0]


def test_cli_demo_prints_the_listing(cli_env: dict[str, str]) -> None:
    res = run_cli(cli_env, "--demo")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "NAME", "INSTANCE"]
    assert len(lines) == 36
    for inst in default_fleet():
        assert inst.instance_id in res.stdout
    row = next(line for line in lines if STOPPED_PROD in line)
    assert "NotRegistered (stopped)" in row and "reporting-old" in row and "prod/us-east-1" in row


def test_cli_demo_list_json_and_filters(cli_env: dict[str, str]) -> None:
    res = run_cli(cli_env, "--demo", "list", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["count"] == len(doc["instances"]) == 35 and doc["errors"] == []
    assert {i["instance_id"] for i in doc["instances"]} == {i.instance_id for i in default_fleet()}
    res = run_cli(cli_env, "--demo", "list", "tag:Role=web")
    assert res.returncode == 0, res.stderr
    web = {i.instance_id for i in default_fleet() if i.tags.get("Role") == "web"}
    assert set(ID_RE.findall(res.stdout)) == web
    res = run_cli(
        cli_env,
        "--demo",
        "--profile",
        "prod",
        "--region",
        "eu-west-1",
        "list",
        "--json",
        "ping:online",
    )
    doc = json.loads(res.stdout)
    assert doc["scopes"] == ["prod/eu-west-1"] and doc["count"] == 4
    assert {i["ping_status"] for i in doc["instances"]} == {"Online"}


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["bogus"], 2, "unknown verb 'bogus'"),
        (["--demo", "list", "tag:"], 2, "bad filter"),
        (["--demo", "list", "colour:red"], 2, "unknown filter"),
        (["--demo", "list", "ping:sleepy"], 2, "unknown ping status"),
        (["--region", "nowhere", "--demo", "list"], 2, "bad --region 'nowhere'"),
        (["--demo", "--profile", "qa", "list"], 2, "unknown demo profile 'qa'"),
        (["--demo", "list", "--bogus"], 2, "unrecognized arguments"),
        (["sim", "--port", "70000"], 2, "bad --port"),
        (["sim", "--fault", "nonsense"], 2, "bad --fault"),
        (["--config", "/nonexistent/ssmtui.toml", "--demo"], 1, "no such config file"),
    ],
)
def test_cli_bad_input_is_one_line(
    cli_env: dict[str, str], args: list[str], code: int, needle: str
) -> None:
    assert needle in assert_one_error(run_cli(cli_env, *args), code)


def test_cli_bad_config_file_names_file_and_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('profiles = ["dev"]\nregions = ["us-east-1"\n')
    line = assert_one_error(run_cli(cli_env, "--config", str(bad), "--demo"))
    assert line.startswith(f"ssmtui: {bad}:") and "invalid TOML" in line
    bad.write_text('theme = "dark"\nrefresh_interval = "soon"\n')
    line = assert_one_error(run_cli(cli_env, "--config", str(bad), "--demo", "list"))
    assert (
        line == f"ssmtui: {bad}:2: refresh_interval: expected a number from 1 to 86400, got 'soon'"
    )


def test_cli_real_aws_without_region_is_one_line(cli_env: dict[str, str]) -> None:
    line = assert_one_error(run_cli(cli_env, "list"), 1)
    assert "no region" in line


def test_cli_help_and_version_are_light(cli_env: dict[str, str]) -> None:
    res = run_cli(cli_env, "--help")
    assert res.returncode == 0 and "--demo" in res.stdout and res.stderr == ""
    res = run_cli(cli_env, "--version")
    assert res.returncode == 0 and res.stdout.startswith("ssmtui ")
    code = (
        "import sys, json, ssmtui.cli\n"
        "heavy = ['asyncio', 'botocore', 'aiobotocore', 'boto3', 'aiohttp', 'textual']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, check=True
    )
    assert json.loads(out.stdout) == []


def test_main_hides_unexpected_tracebacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: object) -> int:
        raise RuntimeError("kaboom\nsecond line")

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.delenv("SSMTUI_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_cmd_list", boom)
    assert cli.main(["--demo", "list"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ssmtui: internal error: RuntimeError: kaboom second line",
        "hint: run again with SSMTUI_DEBUG=1 for the traceback, and report it",
    ]
    monkeypatch.setenv("SSMTUI_DEBUG", "1")
    assert cli.main(["--demo", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_cmd_list", interrupted)
    assert cli.main(["--demo", "list"]) == 130


def test_cli_sim_serves_until_sigint(cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssmtui", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env,
        cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        endpoint, seen = None, []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Serving until Ctrl-C.\n" not in seen:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, proc.stderr.read()
            if seen and seen[-1].startswith("endpoint: "):
                endpoint = seen[-1].split()[1]
        assert endpoint and endpoint.startswith("http://127.0.0.1:"), seen
        text = "".join(seen)
        assert f"export AWS_ENDPOINT_URL={endpoint}" in text
        access, secret = demo_credentials("dev")
        assert f"export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret}" in text
        ssm = boto3.session.Session(
            aws_access_key_id=access, aws_secret_access_key=secret, region_name="us-east-1"
        ).client("ssm", endpoint_url=endpoint, config=BotoConfig(retries={"total_max_attempts": 1}))
        page = ssm.describe_instance_information(MaxResults=50)
        assert len(page["InstanceInformationList"]) == 9  # incl. payroll-dev
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
