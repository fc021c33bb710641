"""Secrets stay out of everything ssmtui writes; private files; loopback-only tunnels; wss-only
stream URLs; verified payload digests.

Already covered elsewhere: secrets in history parameters (tests/test_store.py), bad CLI input
(tests/test_cli_sessions.py), garbage and bad digests from the network (tests/test_fuzz.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from ssmtui.aws.clients import demo_clients
from ssmtui.aws.fleet import resolve_target
from ssmtui.models import FleetScope
from ssmtui.protocol.channel import DataChannel, Role
from ssmtui.protocol.events import FrameDropped, ProtocolError, StreamData
from ssmtui.protocol.frames import Frame, MessageType, PayloadType, encode_frame
from ssmtui.services import SessionKind, SessionService
from ssmtui.sim.fleet import demo_credentials
from ssmtui.store.history import History, default_history_path
from ssmtui.transport.proxy import run_command
from ssmtui.transport.tunnel import TunnelSpec
from ssmtui.transport.websocket import (
    DataChannelConnection,
    StreamEndpoint,
    TransportError,
    validate_stream_url,
)
from tests.cli_helpers import SSMTUI, assert_one_error, clean_env, run_cli
from tests.sim_harness import (
    WEB_DEV,
    WEB_EU,
    aws_env,  # noqa: F401  (autouse)
    running_sim,
    tcp_server,
)

pytestmark = pytest.mark.timeout(90)
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]


def report(text: str) -> str:
    print(f"\n[figure] {text}")
    return text


def _forms(secret: bytes) -> list[bytes]:
    """The raw bytes and their hex and base64 spellings."""
    out = [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)]
    out.append(base64.urlsafe_b64encode(secret).rstrip(b"="))
    return [f for f in out if len(f) >= 8]


async def _until(conn: DataChannelConnection, needle: bytes) -> None:
    out = b""
    async with asyncio.timeout(20):
        async for ev in conn.events():
            if isinstance(ev, StreamData) and ev.payload_type == PayloadType.OUTPUT:
                out += ev.data
                if needle in out:
                    return
    raise AssertionError(f"{needle!r} never arrived")


async def test_no_secret_reaches_any_file_or_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SSMTUI_DATA_DIR", str(data))
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    data_keys: list[bytes] = []
    try:
        async with running_sim(tmp_path) as sim, tcp_server() as echo_port:
            real = sim.state.kms.generate_data_key

            def recording(*a: Any, **kw: Any) -> Any:
                result = real(*a, **kw)
                data_keys.append(result[0])
                return result

            sim.state.kms.generate_data_key = recording  # type: ignore[method-assign]
            clients = demo_clients(sim.server)
            history = History(default_history_path())
            svc = SessionService(clients, history=history, transcripts=True)
            try:
                web = await resolve_target(clients, SCOPES, WEB_DEV)
                eu = await resolve_target(clients, SCOPES, WEB_EU)
                conn = await svc.open(web)  # shell
                conn.send_nowait(PayloadType.OUTPUT, b"echo shell-$((6*7)); exit\r")
                await _until(conn, b"shell-42")
                await conn.close()
                conn = await svc.open(eu)  # KMS-encrypted shell
                conn.send_nowait(PayloadType.OUTPUT, b"echo kms-$((6*7)); exit\r")
                await _until(conn, b"kms-42")
                assert conn.channel.encrypted
                await conn.close()
                conn = await svc.open(web, SessionKind.command("echo exec-ok"))  # exec
                out: list[bytes] = []
                assert await run_command(conn, out.append, out.append) == 0
                await conn.close()
                tunnel = svc.tunnel(web, TunnelSpec(WEB_DEV, 0, echo_port))  # tunnel
                await tunnel.start()
                try:
                    await tunnel.wait_up()
                    assert tunnel._server is not None
                    binds = {s.getsockname()[0] for s in tunnel._server.sockets}
                    assert binds == {"127.0.0.1"}, binds  # loopback by default
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", tunnel.stats.local_port
                    )
                    writer.write(b"ping")
                    assert await reader.readexactly(4) == b"ping"
                    writer.close()
                finally:
                    await tunnel.stop()
            finally:
                await clients.aclose()
            tokens = [t for s in sim.state.sessions.values() for t in s.tokens]
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)

    secrets: dict[str, list[bytes]] = {}
    for i, token in enumerate(tokens):
        secrets[f"session token {i}"] = [token.encode()]
    for profile in ("dev", "prod"):
        secrets[f"{profile} secret key"] = [demo_credentials(profile)[1].encode()]
    for i, key in enumerate(data_keys):
        secrets[f"KMS data key {i}"] = _forms(key) + _forms(key[:32]) + _forms(key[32:])
    assert tokens and data_keys, (tokens, data_keys)

    files = [p for p in data.rglob("*") if p.is_file()] + [log_file]
    hits = []
    for path in files:
        blob = path.read_bytes()
        for name, forms in secrets.items():
            if any(form in blob for form in forms):
                hits.append(f"{name} in {path.relative_to(tmp_path)}")
                if path == log_file:
                    loggers = {
                        line.split(b" ", 1)[0]
                        for line in blob.splitlines()
                        if any(form in line for form in forms)
                    }
                    hits[-1] += f" (loggers {sorted(x.decode() for x in loggers)})"
    transcripts = list((data / "transcripts").glob("*.cast"))
    figure = report(
        f"secrets scan: {len(secrets)} secrets ({len(tokens)} tokens, {len(data_keys)} data "
        f"keys) x {len(files)} files ({sum(p.stat().st_size for p in files)} bytes, "
        f"{len(transcripts)} transcripts, log {log_file.stat().st_size} bytes): {len(hits)} hits"
    )
    assert transcripts and log_file.stat().st_size > 0, figure
    assert not hits, figure + ": " + "; ".join(hits)

    modes = []
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            modes.append(f"{path.relative_to(tmp_path)} is {mode:o}, want {want:o}")
    assert not modes, "; ".join(modes)


def test_stream_urls_must_be_wss_unless_loopback() -> None:
    for ok in ("wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s", "ws://127.0.0.1:1/x"):
        validate_stream_url(ok)
        DataChannelConnection(StreamEndpoint(ok, "t"), session_id="s", target_id="i")
    for bad in (
        "ws://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s",
        "http://127.0.0.1/x",
        "ws://10.0.0.1/x",
        "wss:///nohost",
        "ftp://x",
    ):
        with pytest.raises(TransportError, match="only wss:// is allowed"):
            validate_stream_url(bad)
        with pytest.raises(TransportError, match="only wss:// is allowed"):
            DataChannelConnection(StreamEndpoint(bad, "t"), session_id="s", target_id="i")


async def test_resume_to_a_plain_url_is_refused() -> None:
    """ResumeSession handing back a ws:// URL off loopback: the resume is refused."""
    conn = DataChannelConnection(
        StreamEndpoint("ws://127.0.0.1:9/x", "t"), session_id="s", target_id="i"
    )

    async def resume() -> StreamEndpoint:
        return StreamEndpoint("ws://example.com/v1/data-channel/s", "t")

    conn._resume = resume
    conn._max_resume = 1
    assert not await conn._reconnect("connection lost")
    assert conn.end_reason and "only wss:// is allowed" in conn.end_reason, conn.end_reason
    await conn.close()


def test_bad_digests_are_dropped_unacked_then_end_the_channel() -> None:
    ch = DataChannel(Role.CLIENT, new_id=uuid.uuid4, random_bytes=os.urandom)
    good = encode_frame(
        Frame(
            message_type=MessageType.OUTPUT_STREAM_DATA,
            sequence_number=0,
            flags=0,
            message_id=uuid.uuid4(),
            created_date=1,
            payload_type=PayloadType.OUTPUT,
            payload=b"hello",
        )
    )
    bad = good[:-1] + b"X"
    limit = ch.config.max_bad_frames
    for _ in range(limit):
        assert [type(e) for e in ch.receive_frame(bad, 1.0)] == [FrameDropped]
        assert ch.data_to_send() == []  # no ack: the agent resends it
    events = ch.receive_frame(bad, 1.0)
    assert isinstance(events[0], ProtocolError) and "too many corrupted frames" in events[0].reason
    assert ch.closed
    report(f"bad digests: {limit} dropped unacked, then: {events[0].reason}")


def test_forward_elsewhere_than_loopback_needs_the_flag_and_warns() -> None:
    line = assert_one_error(run_cli("--demo", "forward", "web-dev-1", "0.0.0.0:0:22"), 2)
    assert "refusing to listen on 0.0.0.0:0" in line, line
    proc = subprocess.Popen(
        [*SSMTUI, "--demo", "forward", "web-dev-1", "0.0.0.0:0:22", "--bind-any-ok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("Forwarding 0.0.0.0:"), first
        warning = proc.stderr.readline().decode()
        report(f"--bind-any-ok: {warning.strip()}")
        assert warning.startswith("ssmtui: warning: listening on 0.0.0.0:"), warning
        assert "other machines" in warning, warning
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- AWS errors

AWS_ERRORS = [
    (
        [
            "--demo",
            "--profile",
            "prod",
            "--demo-fault",
            "expired",
            "exec",
            "web-prod-1",
            "--",
            "true",
        ],
        ["prod/", "the AWS credentials have expired"],
        "hint: run: aws sso login --profile prod",
    ),
    (
        ["--demo", "--region", "ap-south-2", "connect", "web-dev-1"],
        ["ap-south-2", "no instance matches 'web-dev-1'"],
        None,
    ),
    (
        [
            "--demo",
            "--demo-fault",
            "error:StartSession:AccessDeniedException:0",
            "exec",
            "web-dev-1",
            "--",
            "true",
        ],
        ["dev/us-east-1", "not authorized to call ssm:StartSession"],
        None,
    ),
]


def test_aws_errors_name_the_profile_and_region() -> None:
    for args, needles, hint in AWS_ERRORS:
        res = run_cli(*args)
        line = assert_one_error(res)
        for needle in needles:
            assert needle in line, (args, line)
        if hint is not None:
            assert hint in res.stderr, (args, res.stderr)
        report(f"{' '.join(args[1:])}: {res.stderr.strip()}")


def test_debug_logs_of_the_sdk_and_websockets_are_scrubbed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Request headers (session token, signature), canonical requests and response bodies
    never reach a DEBUG log whole, whichever of the SDK's or websockets' loggers writes them."""
    import ssmtui.services  # noqa: F401  (installs the filters)

    token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDdemoTOKEN0123456789"
    sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    lines = {
        "botocore.endpoint": "Making request: {'headers': {'X-Amz-Security-Token': '%s'}}",
        "botocore.auth": "CanonicalRequest:\nPOST\n/\n\nx-amz-security-token:%s\n",
        "websockets.client": "> Authorization: AWS4-HMAC-SHA256 Credential=x, Signature=%s",
        "aiobotocore.parsers": 'Response body:\nb\'{"TokenValue": "%s"}\'',
    }
    with caplog.at_level(logging.DEBUG):
        for name, fmt in lines.items():
            secret = sig if "Signature" in fmt else token
            logging.getLogger(name).debug(fmt, secret)
    text = caplog.text
    assert token not in text and sig not in text, text
    assert "x-amz-security-token:[redacted]" in text  # the line itself stays useful
    assert len(caplog.records) == len(lines)
