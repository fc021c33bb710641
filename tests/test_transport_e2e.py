"""The client transport end to end against the demo fleet: StartSession through aiobotocore,
the signed websocket, real PTY shells, real TCP through tunnels, KMS, resume and faults."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ssmtui.aws.clients import demo_clients
from ssmtui.aws.fleet import resolve_target
from ssmtui.models import FleetScope, Instance
from ssmtui.protocol import payloads as pl
from ssmtui.protocol.events import ChannelClosed, HandshakeCompleted, SessionReady, StreamData
from ssmtui.protocol.frames import PayloadType
from ssmtui.services import SessionKind, SessionService
from ssmtui.sim.faults import FaultPlan
from ssmtui.transport.proxy import run_command
from ssmtui.transport.tunnel import TunnelSpec
from ssmtui.transport.websocket import ConnectionLost, DataChannelConnection
from tests.sim_harness import (
    OLD_AGENT,
    WEB_DEV,
    WEB_EU,
    Sim,
    aws_env,  # noqa: F401  (autouse)
    running_sim,
    tcp_server,
)

pytestmark = pytest.mark.timeout(90)
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]


@asynccontextmanager
async def service(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[Sim, SessionService]]:
    async with running_sim(tmp_path, **kw) as sim:
        clients = demo_clients(sim.server)
        try:
            yield sim, SessionService(clients, stall_timeout=kw.pop("stall", 30.0))
        finally:
            await clients.aclose()


async def instance(svc: SessionService, target: str) -> Instance:
    return await resolve_target(svc.clients, SCOPES, target)


async def collect_until(conn: DataChannelConnection, needle: bytes, timeout: float = 20) -> bytes:
    out = b""
    async with asyncio.timeout(timeout):
        async for ev in conn.events():
            if isinstance(ev, StreamData) and ev.payload_type == PayloadType.OUTPUT:
                out += ev.data
                if needle in out:
                    return out
    raise AssertionError(f"{needle!r} never arrived; got {out[-200:]!r}")


async def test_shell_through_the_transport(tmp_path: Path) -> None:
    async with service(tmp_path) as (_sim, svc):
        inst = await instance(svc, "web-dev-1")
        conn = await svc.open(inst)
        assert conn.endpoint.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")
        conn.send_nowait(PayloadType.SIZE, pl.encode_size(100, 30))
        conn.send_nowait(PayloadType.OUTPUT, b"echo $((6*7)); stty size\r")
        out = await collect_until(conn, b"30 100")
        assert b"42" in out
        conn.send_nowait(PayloadType.OUTPUT, b"exit\r")
        async with asyncio.timeout(20):
            evs = [ev async for ev in conn.events()]
        assert any(isinstance(e, ChannelClosed) for e in evs)
        await conn.close()


async def test_kms_shell(tmp_path: Path) -> None:
    async with service(tmp_path) as (_sim, svc):
        conn = await svc.open(await instance(svc, WEB_EU))
        conn.send_nowait(PayloadType.OUTPUT, b"echo kms-$((40+2))\r")
        async with asyncio.timeout(20):
            done = None
            async for ev in conn.events():
                if isinstance(ev, HandshakeCompleted):
                    done = ev
                if isinstance(ev, SessionReady):
                    break
        assert done is not None and done.encrypted
        assert b"kms-42" in await collect_until(conn, b"kms-42")
        assert conn.channel.encrypted
        await conn.close()


async def test_exec_exit_code_and_streams(tmp_path: Path) -> None:
    async with service(tmp_path) as (_sim, svc):
        conn = await svc.open(
            await instance(svc, WEB_DEV), SessionKind.command("echo out; echo err >&2; exit 3")
        )
        out: list[bytes] = []
        err: list[bytes] = []
        code = await run_command(conn, out.append, err.append)
        assert (code, b"".join(out), b"".join(err)) == (3, b"out\n", b"err\n")


async def _echo_through(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    writer.close()
    return got


@pytest.mark.parametrize(("target", "mode"), [(WEB_DEV, "mux"), (OLD_AGENT, "basic")])
async def test_tunnel_many_connections(tmp_path: Path, target: str, mode: str) -> None:
    async with service(tmp_path) as (_sim, svc), tcp_server() as echo_port:
        tunnel = svc.tunnel(await instance(svc, target), TunnelSpec(target, 0, echo_port))
        await tunnel.start()
        try:
            await tunnel.wait_up()
            assert tunnel.stats.mode == mode
            n = 12 if mode == "mux" else 3
            blobs = [os.urandom(50_000 + i * 1000) for i in range(n)]
            if mode == "mux":
                got = await asyncio.gather(
                    *(_echo_through(tunnel.stats.local_port, b) for b in blobs)
                )
            else:
                got = [await _echo_through(tunnel.stats.local_port, b) for b in blobs]
            assert got == blobs
            assert tunnel.stats.connections_total == n
        finally:
            await tunnel.stop()


async def test_remote_host_tunnel(tmp_path: Path) -> None:
    host_map = {"db.cluster-demo.us-east-1.rds.amazonaws.com": "127.0.0.1"}
    async with service(tmp_path, host_map=host_map) as (_sim, svc), tcp_server() as port:
        spec = TunnelSpec(WEB_DEV, 0, port, remote_host=next(iter(host_map)))
        tunnel = svc.tunnel(await instance(svc, WEB_DEV), spec)
        await tunnel.start()
        try:
            await tunnel.wait_up()
            assert await _echo_through(tunnel.stats.local_port, b"SELECT 1") == b"SELECT 1"
        finally:
            await tunnel.stop()


async def test_websocket_drop_is_resumed_without_loss(tmp_path: Path) -> None:
    async with service(tmp_path) as (_sim, svc), tcp_server() as port:
        tunnel = svc.tunnel(await instance(svc, WEB_DEV), TunnelSpec(WEB_DEV, 0, port))
        await tunnel.start()
        try:
            await tunnel.wait_up()
            payload = os.urandom(3_000_000)
            reader, writer = await asyncio.open_connection("127.0.0.1", tunnel.stats.local_port)
            writer.write(payload)

            async def cut() -> None:
                while tunnel.stats.bytes_out < len(payload) // 4:  # mid-transfer, however fast
                    await asyncio.sleep(0.005)
                session = tunnel._session
                assert session is not None and session.conn._ws is not None
                session.conn._ws.transport.abort()  # the network goes away mid-transfer

            cutter = asyncio.create_task(cut())
            got = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
            await cutter
            writer.close()
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            assert tunnel._session is not None and tunnel._session.conn.resumes >= 1
            assert tunnel.stats.reconnects == 0  # the same session, resumed
        finally:
            await tunnel.stop()


async def test_tunnel_survives_terminated_session(tmp_path: Path) -> None:
    async with service(tmp_path) as (sim, svc), tcp_server() as port:
        tunnel = svc.tunnel(await instance(svc, WEB_DEV), TunnelSpec(WEB_DEV, 0, port))
        await tunnel.start()
        try:
            await tunnel.wait_up()
            first = tunnel.stats.session_id
            await sim.call("ssm", "terminate_session", SessionId=first)
            async with asyncio.timeout(20):
                while tunnel.stats.session_id == first or tunnel.stats.state != "up":
                    await asyncio.sleep(0.05)
            assert tunnel.stats.reconnects >= 1
            assert await _echo_through(tunnel.stats.local_port, b"again") == b"again"
        finally:
            await tunnel.stop()


async def test_silent_agent_is_reported_not_hung(tmp_path: Path) -> None:
    plan = FaultPlan(stop_acking=True, direction="out")
    async with running_sim(tmp_path, faults=[plan]) as sim:
        clients = demo_clients(sim.server)
        svc = SessionService(clients, stall_timeout=2.0)
        try:
            conn = await svc.open(await resolve_target(clients, SCOPES, WEB_DEV))
            conn.send_nowait(PayloadType.OUTPUT, b"echo hi\r")
            async with asyncio.timeout(20):
                evs = [ev async for ev in conn.events()]
            lost = [e for e in evs if isinstance(e, ConnectionLost)]
            assert lost and "no answer" in lost[0].reason
            await conn.close()
        finally:
            await clients.aclose()


async def test_session_pool_spreads_connections(tmp_path: Path) -> None:
    async with service(tmp_path) as (sim, svc), tcp_server() as port:
        tunnel = svc.tunnel(await instance(svc, WEB_DEV), TunnelSpec(WEB_DEV, 0, port), pool=3)
        await tunnel.start()
        try:
            async with asyncio.timeout(20):
                while tunnel.sessions_up < 3:
                    await asyncio.sleep(0.05)
            blobs = [os.urandom(30_000) for _ in range(6)]
            got = await asyncio.gather(*(_echo_through(tunnel.stats.local_port, b) for b in blobs))
            assert got == blobs
            ids = {s.conn.session_id for s in tunnel._slots if s is not None}
            assert len(ids) == 3
            live = [s for s in sim.state.sessions.values() if not s.terminated]
            assert len(live) >= 3
        finally:
            await tunnel.stop()
