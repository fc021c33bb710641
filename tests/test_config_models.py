"""Settings, private files, the plain models, and botocore -> ssmtui error translation."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as bce
from botocore.parsers import create_parser
from botocore.session import get_session

from ssmtui import CLIENT_VERSION
from ssmtui.aws.errors import aws_errors, translate
from ssmtui.aws.fastparse import DESCRIBE_INSTANCES_FIELDS, fast_timestamp, parse_describe_instances
from ssmtui.config import Config, TunnelPreset, default_config_path
from ssmtui.errors import (
    AccessDenied,
    AwsError,
    ConfigError,
    CredentialsError,
    NetworkError,
    SsmtuiError,
    TargetError,
    TargetNotConnected,
    Throttled,
    UsageError,
)
from ssmtui.fsutil import ensure_private_dir, write_private
from ssmtui.models import FleetScope, Instance, InstanceFilter, Target

NO_ENV: dict[str, str] = {}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- config


def test_defaults_without_a_file(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert default_config_path(env) == tmp_path / "ssmtui" / "config.toml"
    config = Config.load(env=env)
    assert config == Config()
    assert config.path is None and config.client_version == CLIENT_VERSION
    assert config.max_attempts == 3 and config.endpoints == {}
    relative = default_config_path({"XDG_CONFIG_HOME": "relative/dir"})
    assert relative == Path.home() / ".config" / "ssmtui" / "config.toml"


def test_full_config_file(tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----\n")
    path = write(
        tmp_path / "config.toml",
        f"""
profiles = ["dev", "prod"]
regions = ["us-east-1", "eu-west-1"]
refresh_interval = 15
theme = "nord"
favorites = ["web-dev-1"]
ca_bundle = "{ca}"
client_version = "1.2.707.0"
max_attempts = 5
proxies = {{ https = "http://proxy.example:3128" }}
endpoints = {{ ssm = "https://ssm.vpce.example", sts = "http://127.0.0.1:9" }}

[keymap]
refresh = "ctrl+r"

[[tunnels]]
name = "db"
target = "bastion-prod"
remote_port = 5432
local_port = 15432
remote_host = "db.internal"
region = "eu-west-1"
""",
    )
    config = Config.load(path, env=NO_ENV)
    assert config.path == path
    assert config.profiles == ("dev", "prod") and config.regions == ("us-east-1", "eu-west-1")
    assert config.refresh_interval == 15.0 and config.theme == "nord"
    assert config.favourites == ("web-dev-1",) and config.ca_bundle == str(ca)
    assert config.max_attempts == 5 and config.proxies == {"https": "http://proxy.example:3128"}
    assert config.endpoint_for("ssm") == "https://ssm.vpce.example"
    assert config.endpoint_for("ec2") is None and config.keymap == {"refresh": "ctrl+r"}
    assert config.tunnels == (
        TunnelPreset("db", "bastion-prod", 5432, 15432, "db.internal", None, "eu-west-1"),
    )


def test_env_and_overrides_take_precedence(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'profiles = ["dev"]\nregions = ["us-east-1"]\n')
    env = {"SSMTUI_PROFILES": "prod, qa", "SSMTUI_REFRESH_INTERVAL": "60"}
    config = Config.load(path, {"regions": ["eu-west-1"], "theme": None}, env=env)
    assert config.profiles == ("prod", "qa") and config.regions == ("eu-west-1",)
    assert config.refresh_interval == 60.0 and config.theme is None
    env = {"SSMTUI_CONFIG": str(path)}
    assert Config.load(env=env).profiles == ("dev",)
    regions = {"a": "us-east-1", "b": "eu-west-1"}
    scopes = Config(profiles=("a", "b", "a")).scopes(regions.get)
    assert scopes == [FleetScope("a", "us-east-1"), FleetScope("b", "eu-west-1")]
    both = Config(profiles=("a",), regions=("us-east-1", "eu-west-1")).scopes(regions.get)
    assert both == [FleetScope("a", "us-east-1"), FleetScope("a", "eu-west-1")]
    with pytest.raises(ConfigError, match="no region for profile 'b'"):
        Config(profiles=("a", "b")).scopes(lambda p: {"a": "us-east-1"}.get(p))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('profiles = ["dev"\n', ":1: invalid TOML: Unclosed array at the end of the file"),
        ("x = 1\ny = = 2\n", ":2: invalid TOML"),
        ('theme = "a"\nrefresh_interval = "soon"\n', ":2: refresh_interval: expected a number"),
        ('regions = ["us-east-1",\n  "mars-1"]\n', ":1: regions: 'mars-1' is not an AWS region"),
        ('profilez = ["a"]\n', ":1: profilez: unknown setting"),
        ('endpoints = { s3 = "https://x" }\n', ":1: endpoints.s3: unknown service"),
        ('endpoints = { ssm = "ftp://x" }\n', "expected an http(s):// URL"),
        ('client_version = "latest"\n', ":1: client_version: expected a dotted version"),
        ('ca_bundle = "/nonexistent/ca.pem"\n', ":1: ca_bundle: no such file"),
        ("max_attempts = 0\n", "max_attempts: expected a number from 1 to 20"),
        ('[[tunnels]]\nname = "x"\ntarget = "y"\n', "tunnels[0]: missing 'remote_port'"),
        (
            '[[tunnels]]\nname = "x"\ntarget = "y"\nremote_port = 99999\n',
            "tunnels[0].remote_port: expected a port 1-65535",
        ),
        ("keymap = 3\n", ":1: keymap: expected a table of strings"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as exc:
        Config.load(path, env=NO_ENV)
    message = str(exc.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message and exc.value.path == str(path)


def test_missing_or_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        Config.load(tmp_path / "nope.toml", env=NO_ENV)
    with pytest.raises(ConfigError, match="is a directory"):
        Config.load(tmp_path, env=NO_ENV)
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe =")
    with pytest.raises(ConfigError):
        Config.load(bad, env=NO_ENV)
    with pytest.raises(ConfigError, match="command line: profile: unknown setting") as exc:
        Config().with_overrides({"profile": ["x"]})
    assert exc.value.hint == "did you mean 'profiles'?"
    assert "hint" not in str(ConfigError("x", hint="y"))


# --------------------------------------------------------------------------- private files


def test_private_files_and_dirs(tmp_path: Path) -> None:
    old = os.umask(0)  # the worst case: nothing masked
    try:
        target = tmp_path / "a" / "b" / "history.json"
        write_private(target, '{"ok": true}')
        assert target.read_text() == '{"ok": true}'
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        for directory in (tmp_path / "a", tmp_path / "a" / "b"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        write_private(target, b"replaced")
        assert target.read_bytes() == b"replaced"
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert sorted(p.name for p in target.parent.iterdir()) == ["history.json"]
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        os.chmod(loose, 0o755)
        assert ensure_private_dir(loose) == loose
        assert stat.S_IMODE(loose.stat().st_mode) == 0o700
        with pytest.raises(NotADirectoryError):
            ensure_private_dir(target)
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("text", "kind", "value", "key"),
    [
        ("i-0abc12345678", "id", "i-0abc12345678", None),
        ("mi-00deac0a26c0d846d", "id", "mi-00deac0a26c0d846d", None),
        ("web-dev-1", "name", "web-dev-1", None),
        ("i-nothex", "name", "i-nothex", None),
        ("tag:Role=web", "tag", "web", "Role"),
        ("tag:Env=", "tag", "", "Env"),
        ("10.0.1.5", "ip", "10.0.1.5", None),
        (" fd00::1 ", "ip", "fd00::1", None),
    ],
)
def test_target_parse(text: str, kind: str, value: str, key: str | None) -> None:
    assert Target.parse(text) == Target(kind, value, key)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "  ", "tag:", "tag:=x", "tag:Role"])
def test_target_parse_errors(text: str) -> None:
    with pytest.raises(TargetError):
        Target.parse(text)


def make(**kw: Any) -> Instance:
    base: dict[str, Any] = {
        "instance_id": "i-0123456789abcdef0",
        "name": "web-1",
        "ping_status": "Online",
        "platform_type": "Linux",
        "platform_name": "Amazon Linux",
        "agent_version": "3.3.987.0",
        "private_ip": "10.0.0.5",
        "tags": (("Name", "web-1"), ("Role", "web")),
        "profile": "dev",
        "region": "us-east-1",
        "registered": True,
        "state": "running",
    }
    base.update(kw)
    return Instance(**base)


def test_instance_helpers() -> None:
    inst = make()
    assert inst.tag("Role") == "web" and inst.tag("Nope") is None and inst.tag("Nope", "x") == "x"
    assert inst.display_name == "web-1" and inst.is_online and not inst.is_hybrid
    assert make(name="", computer_name="host.corp").display_name == "host.corp"
    assert make(name="").display_name == "i-0123456789abcdef0"
    assert not make(state="stopped").is_online and not make(ping_status="Inactive").is_online
    cases = [
        ("3.0.196.0", False, False),
        ("3.0.222.0", True, False),
        ("3.1.1373.0", True, False),
        ("3.1.1374.0", True, True),
        ("3.3.987.0", True, True),
        ("2.3.1644.0", False, False),
        ("", False, False),
    ]
    for version, mux, remote in cases:
        got = make(agent_version=version)
        assert (got.supports_mux, got.supports_remote_host) == (mux, remote), version
    data = make(last_ping=datetime(2024, 1, 1, tzinfo=UTC)).to_json()
    assert data["tags"] == {"Name": "web-1", "Role": "web"}
    assert data["last_ping"] == "2024-01-01T00:00:00+00:00" and data["supports_mux"]


def test_instance_filters() -> None:
    inst = make()
    yes = ["web", "WEB-1", "tag:Role=web", "tag:Role", "ping:online", "ping:Online",
           "name:web", "id:i-0123", "ip:10.0.0", "profile:dev", "region:us-east", "platform:linux",
           "amazon linux", "10.0.0.5"]  # fmt: skip
    no = ["db", "tag:Role=db", "tag:Team", "ping:inactive", "profile:prod", "ip:192."]
    for text in yes:
        assert InstanceFilter.parse(text).matches(inst), text
    for text in no:
        assert not InstanceFilter.parse(text).matches(inst), text
    assert InstanceFilter.parse("ping:not-registered").value == "NotRegistered"
    assert InstanceFilter.parse("fd00::1").kind == "text"  # not a "key:" filter
    for bad in ["", "tag:", "tag:=web", "ping:sleepy", "colour:red", "name:"]:
        with pytest.raises(UsageError):
            InstanceFilter.parse(bad)


def test_regions_and_error_lines() -> None:
    for ok in ("us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4", "cn-north-1"):
        assert FleetScope.valid_region(ok), ok
    for bad in ("nowhere", "us-east", "US-EAST-1", "us_east_1", "1-us-east"):
        assert not FleetScope.valid_region(bad), bad
    err = SsmtuiError("first\nsecond   line", hint="do\nthis")
    assert str(err) == "first second line" and err.lines() == ["first second line", "hint: do this"]
    assert UsageError("x").exit_code == 2 and ConfigError("x").exit_code == 1
    assert str(ConfigError("bad", path="/c.toml", line=3)) == "/c.toml:3: bad"


# --------------------------------------------------------------------------- error translation


def client_error(code: str, status: int = 400, op: str = "DescribeInstanceInformation") -> Any:
    response = {
        "Error": {"Code": code, "Message": f"{code} happened\nsecond line"},
        "ResponseMetadata": {"RequestId": "req-123", "HTTPStatusCode": status},
    }
    return bce.ClientError(response, op)


@pytest.mark.parametrize(
    ("code", "cls", "needle"),
    [
        ("ExpiredTokenException", CredentialsError, "expired"),
        ("ExpiredToken", CredentialsError, "expired"),
        ("RequestExpired", CredentialsError, "expired"),
        ("UnrecognizedClientException", CredentialsError, "rejected"),
        ("AuthFailure", CredentialsError, "rejected"),
        ("AccessDeniedException", AccessDenied, "not authorized to call ssm:"),
        ("UnauthorizedOperation", AccessDenied, "not authorized"),
        ("ThrottlingException", Throttled, "throttling"),
        ("RequestLimitExceeded", Throttled, "throttling"),
        ("TargetNotConnected", TargetNotConnected, "TargetNotConnected happened"),
        ("InternalServerError", AwsError, "InternalServerError happened"),
    ],
)
def test_translate_client_errors(code: str, cls: type[SsmtuiError], needle: str) -> None:
    err = translate(client_error(code), profile="dev", region="us-east-1", service="ssm")
    assert type(err) is cls
    text = str(err)
    assert needle in text and "\n" not in text and text.startswith("dev/us-east-1: ")
    assert isinstance(err, AwsError)
    assert err.request_id == "req-123" and err.code == code
    assert err.operation == "DescribeInstanceInformation" and err.scope == "dev/us-east-1"
    assert "request req-123" in text


def test_translate_botocore_errors() -> None:
    where = {"profile": "sso-dev", "region": "eu-west-1"}
    cases: list[tuple[Exception, type[SsmtuiError], str]] = [
        (bce.NoCredentialsError(), CredentialsError, "no AWS credentials"),
        (bce.TokenRetrievalError(provider="sso", error_msg="expired"), CredentialsError, "SSO"),
        (bce.SSOTokenLoadError(error_msg="no token"), CredentialsError, "SSO session"),
        (bce.UnauthorizedSSOTokenError(), CredentialsError, "SSO session"),
        (bce.EndpointConnectionError(endpoint_url="https://x"), NetworkError, "cannot reach"),
        (bce.ReadTimeoutError(endpoint_url="https://x"), NetworkError, "did not answer"),
        (bce.ConnectTimeoutError(endpoint_url="https://x"), NetworkError, "did not answer"),
        (bce.SSLError(endpoint_url="https://x", error="bad cert"), NetworkError, "TLS"),
        (bce.ProfileNotFound(profile="sso-dev"), ConfigError, "unknown AWS profile"),
        (bce.NoRegionError(), ConfigError, "no valid AWS region"),
        (RuntimeError("odd"), AwsError, "unexpected RuntimeError"),
    ]
    for exc, cls, needle in cases:
        err = translate(exc, **where)
        assert type(err) is cls, exc
        assert needle in str(err) and "\n" not in str(err), str(err)
        assert err.cause is exc
    sso = translate(bce.SSOTokenLoadError(error_msg="x"), **where)
    assert sso.hint == "run: aws sso login --profile sso-dev"
    missing = translate(bce.NoCredentialsError(), **where)
    assert missing.hint and "aws configure --profile sso-dev" in missing.hint
    already = TargetError("x")
    assert translate(already) is already
    with pytest.raises(CredentialsError) as exc_info, aws_errors("p", "r", "ec2"):
        raise client_error("AuthFailure", op="DescribeInstances")
    assert exc_info.value.service == "ec2" and exc_info.value.operation == "DescribeInstances"


# --------------------------------------------------------------------------- fast EC2 parsing


def test_fast_describe_instances_matches_botocore() -> None:
    from ssmtui.sim.aws_ec2 import describe_instances
    from ssmtui.sim.aws_wire import Caller, xml_document
    from ssmtui.sim.state import RequestContext, SimState

    state = SimState()
    caller = Caller("prod", "222222222222", "us-east-1", "ec2", "AKIA")
    ctx = RequestContext(state, caller, "ec2", "DescribeInstances", "req-1", "h", False)
    body = xml_document(describe_instances(ctx, {"MaxResults": "5"}))
    model = get_session().get_service_model("ec2").operation_model("DescribeInstances")
    parser = create_parser("ec2")
    full = parser.parse({"body": body, "headers": {}, "status_code": 200}, model.output_shape)
    fast = parse_describe_instances(body)
    assert fast["NextToken"] == full["NextToken"]
    assert fast["ResponseMetadata"]["RequestId"] == "req-1"
    assert len(fast["Reservations"]) == len(full["Reservations"]) == 5
    for mine, theirs in zip(fast["Reservations"], full["Reservations"], strict=True):
        assert mine["OwnerId"] == theirs["OwnerId"] == "222222222222"
        assert mine["ReservationId"] == theirs["ReservationId"]
        (inst,) = mine["Instances"]
        (ref,) = theirs["Instances"]
        for field in DESCRIBE_INSTANCES_FIELDS:
            if field == "Placement":
                assert inst[field]["AvailabilityZone"] == ref[field]["AvailabilityZone"]
            elif field in ref or field in inst:
                assert inst.get(field) == ref.get(field), field
    with pytest.raises(ET.ParseError):
        parse_describe_instances(b"<not xml")
    with pytest.raises(ValueError, match="not a DescribeInstancesResponse"):
        parse_describe_instances(b"<Other/>")


def test_fast_timestamp() -> None:
    when = datetime(2024, 5, 2, 9, 14, tzinfo=UTC)
    assert fast_timestamp(when.timestamp()) == when
    assert fast_timestamp(str(when.timestamp())) == when
    assert fast_timestamp("2024-05-02T09:14:00.000Z") == when
    assert fast_timestamp("2024-05-02T09:14:00") == when
    assert fast_timestamp("Thu, 02 May 2024 09:14:00 GMT") == when
