"""``session-manager-plugin`` compatibility: the AWS CLI's argv contract (PROTOCOL.md §1.3) against
the demo fleet. The test calls StartSession itself, as the AWS CLI does, then runs
``python -m ssmtui.plugin RESPONSE REGION StartSession PROFILE REQUEST ENDPOINT``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ssmtui import CLIENT_VERSION
from ssmtui.errors import UsageError
from ssmtui.plugin import RESPONSE_ENV, parse_argv
from ssmtui.sim.fleet import demo_credentials
from tests.cli_helpers import PY, SSMTUI, assert_one_error, clean_env, pty_session
from tests.sim_harness import (
    WEB_DEV,
    WEB_EU,
    Sim,
    aws_env,  # noqa: F401  (autouse)
    running_sim,
    tcp_server,
)

pytestmark = pytest.mark.timeout(90)
PLUGIN = [PY, "-m", "ssmtui.plugin"]
#: Starts the plugin the way the AWS CLI does: with SIGINT ignored (inherited across exec).
SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'ssmtui.plugin', *sys.argv[1:]])"
)


def plugin_env(**extra: str) -> dict[str, str]:
    access, secret = demo_credentials("dev")
    return clean_env(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, **extra)


async def start(sim: Sim, target: str, region: str = "us-east-1", **params: Any) -> dict[str, Any]:
    """StartSession as the AWS CLI calls it; returns the response the plugin gets."""
    request: dict[str, Any] = {"Target": target}
    if "document" in params:
        request["DocumentName"] = params.pop("document")
    if params:
        request["Parameters"] = {k: [str(v)] for k, v in params.items()}
    resp = await sim.call("ssm", "start_session", region=region, **request)
    return {k: resp[k] for k in ("SessionId", "TokenValue", "StreamUrl")}


def argv(sim: Sim, response: str, target: str, region: str = "us-east-1") -> list[str]:
    return [
        response,
        region,
        "StartSession",
        "dev",
        json.dumps({"Target": target}),
        sim.server.endpoint,
    ]


# --------------------------------------------------------------------------- argv contract


def test_version_no_args_and_unknown_operation() -> None:
    res = subprocess.run([*PLUGIN, "--version"], capture_output=True, text=True, timeout=30)
    version = "".join(res.stdout.split())
    assert res.returncode == 0 and re.fullmatch(r"\d+(\.\d+){0,3}", version)
    padded = [int(p) for p in version.split(".")] + [0] * (4 - version.count(".") - 1)
    assert padded > [1, 2, 497, 0] and version == CLIENT_VERSION
    res = subprocess.run([*SSMTUI, "plugin", "--version"], capture_output=True, text=True)
    assert res.stdout.strip() == CLIENT_VERSION
    res = subprocess.run(PLUGIN, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "installed successfully" in res.stdout
    res = subprocess.run([*PLUGIN, "{}", "us-east-1"], capture_output=True, text=True)
    assert "Unknown operation" in assert_one_error(res)


def test_parse_argv_reads_and_removes_the_env_var() -> None:
    response = {"SessionId": "s-1", "TokenValue": "tok", "StreamUrl": "wss://x/y"}
    env = {RESPONSE_ENV: json.dumps(response), "OTHER": "1"}
    args = ["p", RESPONSE_ENV, "eu-west-1", "StartSession", "", '{"Target": "i-1"}', "https://e"]
    req = parse_argv(args, env)
    assert env == {"OTHER": "1"}
    assert (req.session_id, req.token, req.stream_url) == ("s-1", "tok", "wss://x/y")
    assert (req.region, req.profile, req.target, req.endpoint) == (
        "eu-west-1",
        None,
        "i-1",
        "https://e",
    )
    legacy = parse_argv(["p", json.dumps(response), "us-east-1", "StartSession"], {})
    assert (legacy.profile, legacy.target, legacy.endpoint) == (None, "", None)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{bad", "us-east-1", "StartSession"], "not JSON"),
        (["[]", "us-east-1", "StartSession"], "expected a JSON object"),
        (['{"StreamUrl": "wss://x"}', "us-east-1", "StartSession"], "no SessionId"),
        ([RESPONSE_ENV, "us-east-1", "StartSession"], f"{RESPONSE_ENV} is not set"),
        (['{"SessionId":"s","StreamUrl":"wss://x"}', "r", "Resume"], "Invalid Operation"),
        (['{"SessionId":"s","StreamUrl":"wss://x"}', "r", "StartSession", "", "{"], "argument 5"),
        (
            ['{"SessionId":"s","StreamUrl":"wss://x"}', "r", "StartSession", "", "{}", "ftp://e"],
            "bad SSM endpoint",
        ),
    ],
)
def test_parse_argv_errors(args: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)):
        parse_argv(["p", *args], {})


def test_malformed_json_is_one_line() -> None:
    args = ["{bad", "us-east-1", "StartSession", "dev", "{}", "http://127.0.0.1:9"]
    res = subprocess.run([*PLUGIN, *args], capture_output=True, text=True, env=plugin_env())
    assert "bad StartSession response (argument 1): not JSON" in assert_one_error(res)
    res = subprocess.run([*PLUGIN, "{}", "us-east-1", "Bogus"], capture_output=True, text=True)
    assert "Invalid Operation 'Bogus'" in assert_one_error(res)


# --------------------------------------------------------------------------- sessions


def _shell_round_trip(args: list[str], env: dict[str, str], session_id: str) -> bytes:
    with pty_session([*PLUGIN, *args], env) as term:
        term.expect(f"Starting session with SessionId: {session_id}".encode())
        term.send(b"echo plugin-$((40+2))\r")
        term.expect(b"plugin-42")
        term.send(b"exit\r")
        assert term.wait() == 0
        term.expect(f"Exiting session with sessionId: {session_id}.".encode())
        return term.output


async def test_shell_with_the_response_in_the_environment(tmp_path: Path) -> None:
    async with running_sim(tmp_path) as sim:
        resp = await start(sim, WEB_DEV)
        env = plugin_env(**{RESPONSE_ENV: json.dumps(resp)})
        out = await asyncio.to_thread(
            _shell_round_trip, argv(sim, RESPONSE_ENV, WEB_DEV), env, resp["SessionId"]
        )
        assert b"ssmtui:" not in out


async def test_kms_shell_with_the_response_as_an_argument(tmp_path: Path) -> None:
    """web-dev-eu-1's Session Manager preferences turn on KMS: GenerateDataKey goes to the
    endpoint the environment names for kms, with the same credentials and region."""
    async with running_sim(tmp_path) as sim:
        resp = await start(sim, WEB_EU, "eu-west-1")
        env = plugin_env(AWS_ENDPOINT_URL_KMS=sim.server.endpoint)
        args = argv(sim, json.dumps(resp), WEB_EU, "eu-west-1")
        await asyncio.to_thread(_shell_round_trip, args, env, resp["SessionId"])
        keys = [c for c in sim.state.calls if c.operation == "GenerateDataKey"]
        assert keys and all(c.error_code is None for c in keys)
        assert (keys[-1].profile, keys[-1].region) == ("dev", "eu-west-1")


async def test_port_forwarding_session(tmp_path: Path) -> None:
    async with running_sim(tmp_path) as sim, tcp_server() as echo_port:
        resp = await start(
            sim,
            WEB_DEV,
            document="AWS-StartPortForwardingSession",
            portNumber=echo_port,
            localPortNumber=0,
        )
        proc = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            SIGINT_IGNORED,
            *argv(sim, json.dumps(resp), WEB_DEV),
            env=plugin_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        head = b""
        async with asyncio.timeout(30):
            while b"Waiting for connections...\n" not in head:
                chunk = await proc.stdout.read(4096)
                assert chunk, head
                head += chunk
        sid = resp["SessionId"]
        match = re.search(rf"Port (\d+) opened for sessionId {sid}\.\n".encode(), head)
        assert match and head.startswith(f"\nStarting session with SessionId: {sid}\n".encode())
        port = int(match.group(1))
        assert port != 0
        for payload in (b"first", b"second" * 1000):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
        proc.send_signal(signal.SIGINT)  # ignored by the parent, handled by the plugin
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert f"Connection accepted for session [{sid}]".encode() in out
        assert f"Exiting session with sessionId: {sid}.".encode() in out
        assert err == b""
        async with asyncio.timeout(10):
            while not sim.state.sessions[sid].terminated:
                await asyncio.sleep(0.05)


async def test_ssh_style_stdio_session(tmp_path: Path) -> None:
    """``Port`` without ``type`` (AWS-StartSSHSession): stdin/stdout carry the bytes."""
    async with running_sim(tmp_path) as sim, tcp_server() as echo_port:
        resp = await start(sim, WEB_DEV, document="AWS-StartSSHSession", portNumber=echo_port)
        proc = await asyncio.create_subprocess_exec(
            *PLUGIN,
            *argv(sim, json.dumps(resp), WEB_DEV),
            env=plugin_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"through the pipe\n")
        await proc.stdin.drain()
        got = b""
        async with asyncio.timeout(30):
            while b"through the pipe\n" not in got:
                chunk = await proc.stdout.read(4096)
                assert chunk, got
                got += chunk
        proc.stdin.close()
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert err == b""
        sid = resp["SessionId"]
        # the reference plugin prints these on stdout in this mode too (ssh skips lines
        # before the server's version banner)
        assert got + out == (
            f"\nStarting session with SessionId: {sid}\n".encode()
            + b"through the pipe\n"
            + f"\n\nExiting session with sessionId: {sid}.\n\n".encode()
        )
