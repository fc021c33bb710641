"""Harness for tests/test_sim_agent.py: a demo server with agents, local TCP servers, helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from ssmtui.sim.agent import AgentHub, attach_agents
from ssmtui.sim.agent_pty import MARKER_ENV
from ssmtui.sim.agent_session import SimAgentSession
from ssmtui.sim.api import SimServer, run_server
from ssmtui.sim.fleet import default_fleet
from ssmtui.sim.state import SimState
from tests.sim_client import SimClient

WEB_DEV = "i-01d6875ee4127775f"  # web-dev-1, dev/us-east-1, latest agent
OLD_AGENT = "i-0d2bfc8025ea4935a"  # api-dev-1, dev/us-east-1, agent 3.0.161.0 (no smux)
DB_PROXY = "i-01fc6480269f92f76"  # db-proxy-dev, dev/us-east-1
WEB_EU = "i-0dccfa5fe7bf8555a"  # web-dev-eu-1, dev/eu-west-1: preferences set kmsKeyId
PORT_DOC = "AWS-StartPortForwardingSession"
REMOTE_DOC = "AWS-StartPortForwardingSessionToRemoteHost"
NONINTERACTIVE = "AWS-StartNonInteractiveCommand"
INTERACTIVE = "AWS-StartInteractiveCommand"
NO_RETRY = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
_AIO: list[AioSession] = []


@dataclass
class Sim:
    server: SimServer
    state: SimState
    hub: AgentHub

    async def call(
        self, service: str, op: str, profile: str = "dev", region: str = "us-east-1", **params: Any
    ) -> dict[str, Any]:
        if not _AIO:
            _AIO.append(get_session())
        kwargs = self.server.client_kwargs(profile, region)
        async with _AIO[0].create_client(service, config=NO_RETRY, **kwargs) as client:
            result: dict[str, Any] = await getattr(client, op)(**params)
            return result

    async def start(
        self,
        target: str = WEB_DEV,
        document: str | None = None,
        region: str = "us-east-1",
        *,
        connect: bool = True,
        **kw: Any,
    ) -> SimClient:
        """StartSession (``kw`` other than client_version/config are its Parameters), connect."""
        params = {k: [str(v)] for k, v in kw.items() if k[0].islower() and k not in _CLIENT_KW}
        request: dict[str, Any] = {"Target": target}
        if document:
            request["DocumentName"] = document
        if params:
            request["Parameters"] = params
        resp = await self.call("ssm", "start_session", region=region, **request)
        client = SimClient(
            resp["StreamUrl"],
            resp["TokenValue"],
            resp["SessionId"],
            target,
            kms=self.kms(region),
            **{k: v for k, v in kw.items() if k in _CLIENT_KW},
        )
        if connect:
            await client.connect()
        return client

    def kms(self, region: str) -> Any:
        async def data_key(key_id: str, context: dict[str, str]) -> tuple[bytes, bytes]:
            out = await self.call(
                "kms",
                "generate_data_key",
                region=region,
                KeyId=key_id,
                NumberOfBytes=64,
                EncryptionContext=context,
            )
            return out["Plaintext"], out["CiphertextBlob"]

        return data_key

    def agent(self, client: SimClient) -> SimAgentSession:
        return next(a for a in self.hub.history if a.session_id == client.channel.session_id)


_CLIENT_KW = ("client_version", "config")


@asynccontextmanager
async def running_sim(tmp_path: Path, **kw: Any) -> AsyncIterator[Sim]:
    state = SimState(default_fleet())
    async with run_server(state=state) as server:
        kw.setdefault("first_read_delay", 0.05)
        hub = attach_agents(state, scratch_root=tmp_path / "scratch", **kw)
        yield Sim(server, state, hub)


@pytest.fixture(name="sim")
async def sim_fixture(tmp_path: Path) -> AsyncIterator[Sim]:
    """A demo server with agents (shell output after 0.05 s instead of 1 s)."""
    async with running_sim(tmp_path) as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    """Keep machine-wide AWS/proxy settings out (as tests/test_sim_api.py does)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_") or name.lower() in (
                "http_proxy",
                "https_proxy",
                "all_proxy",
            ):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", "/dev/null")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@asynccontextmanager
async def tcp_server(http: bool = False) -> AsyncIterator[int]:
    """A local echo server (or an HTTP/1.0 server that answers once and closes)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if http:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split()[1].decode()
                body = (f"hello from local http server, path={path}\n" * 300).encode()
                head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                writer.write(head + body)
            else:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def finish(client: SimClient) -> int | None:
    """Wait for the end of the connection: its close code (1006: dropped, no close frame)."""
    code = await client.wait_closed()
    await client.aclose()
    return code


async def echo_streams(c: SimClient, count: int, size: int) -> None:
    assert c.mux is not None
    blobs = {}
    for _ in range(count):
        sid = await c.mux.open_stream()
        blobs[sid] = os.urandom(size)
    await asyncio.gather(*(c.mux.write(sid, blob) for sid, blob in blobs.items()))
    await c.wait_for(lambda: all(len(c.mux.data[s]) >= size for s in blobs))  # type: ignore[union-attr]
    assert {sid: bytes(c.mux.data[sid]) for sid in blobs} == blobs
    for sid in blobs:
        await c.mux.close_stream(sid)


def leftovers(session_ids: Iterable[str] = ()) -> tuple[list[int], int, list[int]]:
    """(processes of these sessions, open pty masters, zombie children of this process)."""
    markers = [f"{MARKER_ENV}={sid}\0".encode() for sid in session_ids]
    marked, zombies = [], []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(entry.path, "environ").read_bytes()
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        if any(marker in env for marker in markers):
            marked.append(int(entry.name))
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] == b"Z" and int(fields[1]) == os.getpid():
            zombies.append(int(entry.name))
    ptmx = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            ptmx += "ptmx" in os.readlink(f"/proc/self/fd/{fd}")
    return marked, ptmx, zombies


def counts(c: SimClient) -> tuple[list[int], int]:
    """Output seqs in arrival order, and how many arrived more than once."""
    seqs = [f.sequence_number for f in c.frames() if f.message_type == "output_stream_data"]
    return seqs, len(seqs) - len(set(seqs))


SEQ = "".join(f"{i}\n" for i in range(1, 3001)).encode()
