"""The minimal Session Manager client the benchmarks measure ssmtui's client against.

It does only what the protocol requires and nothing a product needs: StartSession, a plain
websocket, a CLIENT-role :class:`~ssmtui.protocol.channel.DataChannel` (which acks every frame
and answers the handshake), a lazy resend timer and, for port sessions, an smux client whose
data is counted and dropped instead of being written to a local socket. What the agent delivers
to this client in a run is the honest cap for ssmtui's client in the same run.

Output frames are handled on arrival, inside the websocket read loop, with their arrival time
(``perf_counter``) recorded before anything else happens. Outgoing frames (acks included) are
written to the socket together: all the channel queued since the last write, in one write, once
the frames already received have been handled (one system call per batch, not per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import HEADER, MB
from ssmtui.aws import sessions as aws_sessions
from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, DataChannel, Role
from ssmtui.protocol.events import (
    ChannelClosed,
    DataKeyNeeded,
    Event,
    HandshakeFailed,
    ProtocolError,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import Flag, PayloadType
from ssmtui.protocol.smux import SmuxSession
from ssmtui.protocol.smux import StreamData as SmuxData
from ssmtui.protocol.versions import client_port_mode

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients
    from ssmtui.models import Instance

#: Frames in flight before sending waits: the same window as ssmtui's transport.
WINDOW = 256
_CHUNK = 32 * 1024


class MinClient:
    """One session (shell or port) driven with the least work the protocol allows."""

    def __init__(
        self,
        clients: AwsClients,
        instance: Instance,
        ws: ClientConnection,
        session_id: str,
        client_version: str,
        window: int,
    ) -> None:
        self.clients = clients
        self.instance = instance
        self.ws = ws
        self.session_id = session_id
        self.window = window
        self.channel = DataChannel(
            Role.CLIENT,
            new_id=uuid.uuid4,
            random_bytes=os.urandom,
            config=ChannelConfig(client_version=client_version),
            session_id=session_id,
            target_id=instance.instance_id,
        )
        self.ready: SessionReady | None = None
        self.smux: SmuxSession | None = None
        self.error: str | None = None
        #: Called with (arrival perf_counter, data) for every Output payload of a shell session.
        self.on_output: Callable[[float, bytes], None] | None = None
        #: smux stream id -> [bytes received, an Event set whenever that count grows].
        self._streams: dict[int, list[Any]] = {}
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._write_pending = False
        self._closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        clients: AwsClients,
        instance: Instance,
        *,
        remote_port: int | None = None,
        window: int = WINDOW,
    ) -> MinClient:
        """StartSession (a shell, or port forwarding to ``remote_port``) and connect."""
        document = aws_sessions.DOCUMENTS["port"] if remote_port is not None else None
        params = aws_sessions.port_parameters(remote_port) if remote_port is not None else None
        async with clients.client("ssm", instance.profile, instance.region) as ssm:
            started = await aws_sessions.start_session(
                ssm, instance.instance_id, document=document, parameters=params
            )
        ws = await connect(
            started.stream_url,
            max_size=None,
            compression=None,
            proxy=None,
            ping_interval=None,
            open_timeout=20,
        )
        version = clients.config.client_version
        opened = pl.OpenDataChannel(started.token, str(uuid.uuid4()), str(uuid.uuid4()), version)
        await ws.send(opened.encode())
        client = cls(clients, instance, ws, started.session_id, version, window)
        loop = asyncio.get_running_loop()
        client._tasks = [loop.create_task(client._read()), loop.create_task(client._timer())]
        return client

    async def wait_ready(self, timeout: float = 30.0) -> SessionReady:
        """Until the session is ready (handshake done); raises if it failed."""
        async with asyncio.timeout(timeout):
            waiter = asyncio.ensure_future(self._ready.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait([waiter, closed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                closed.cancel()
        if self.ready is None:
            raise RuntimeError(f"minimal client: session not ready: {self.error}")
        return self.ready

    async def aclose(self) -> None:
        """Ask the agent to end the session, TerminateSession, close the websocket."""
        with contextlib.suppress(Exception):
            if self.ready is not None and not self.channel.closed:
                self.channel.send(
                    PayloadType.FLAG, pl.encode_flag(Flag.TERMINATE_SESSION), time.time()
                )
                await self.flush()
        with contextlib.suppress(Exception):
            inst = self.instance
            async with self.clients.client("ssm", inst.profile, inst.region) as ssm:
                await asyncio.wait_for(aws_sessions.terminate_session(ssm, self.session_id), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)

    # ------------------------------------------------------------------ the loops

    def _write(self) -> None:
        """Write everything the channel queued, in order, in one socket write."""
        self._write_pending = False
        msgs = self.channel.data_to_send()
        if not msgs:
            return
        protocol = self.ws.protocol
        try:
            for msg in msgs:
                protocol.send_binary(msg)
            self.ws.transport.writelines([d for d in protocol.data_to_send() if d])
        except Exception as exc:  # the connection is closing: nothing more can be sent
            self.error = self.error or f"cannot send: {exc}"

    def _write_soon(self) -> None:
        """Write once the frames already received are handled (one write per batch)."""
        if not self._write_pending:
            self._write_pending = True
            asyncio.get_running_loop().call_soon(self._write)

    async def flush(self) -> None:
        """Write what the channel queued now; wait while the socket's buffer is full."""
        self._write()
        await self.ws.drain()

    async def _read(self) -> None:
        channel = self.channel
        try:
            async for msg in self.ws:
                if isinstance(msg, str):
                    continue
                arrived = time.perf_counter()
                self._on_events(arrived, channel.receive_frame(msg, time.time()))
                if channel.in_flight < self.window:
                    self._room.set()
                self._write_soon()
        except ConnectionClosed:
            pass
        finally:
            self.error = self.error or "the websocket closed"
            self._closed.set()
            self._room.set()

    async def _timer(self) -> None:
        while True:
            due = self.channel.get_timer()
            await asyncio.sleep(0.05 if due is None else min(0.05, max(0.0, due - time.time())))
            due = self.channel.get_timer()
            if due is not None and due <= time.time():
                self._on_events(time.perf_counter(), self.channel.handle_timer(time.time()))
                await self.flush()

    def _on_events(self, arrived: float, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, StreamData):
                if ev.payload_type != PayloadType.OUTPUT:
                    continue
                if self.smux is not None:
                    self._on_smux(ev.data)
                elif self.on_output is not None:
                    self.on_output(arrived, ev.data)
            elif isinstance(ev, SessionReady):
                self.ready = ev
                if ev.session_type == "Port":
                    mode = client_port_mode(
                        ev.properties, ev.agent_version, self.channel.config.client_version
                    )
                    if mode != "mux":
                        self.error = f"port mode {mode!r} is not supported by the minimal client"
                        self.channel.close()
                        self._closed.set()
                        return
                    self.smux = SmuxSession(client=True)
                self._ready.set()
            elif isinstance(ev, DataKeyNeeded):
                self.error = "the minimal client does not do KMS (use a us-east-1 instance)"
                self.channel.close()
                self._closed.set()
            elif isinstance(ev, ChannelClosed | HandshakeFailed | ProtocolError):
                self.error = str(ev)
                self._closed.set()

    def _on_smux(self, data: bytes) -> None:
        smux = self.smux
        assert smux is not None
        for sev in smux.receive_data(data):
            if isinstance(sev, SmuxData):
                smux.consumed(sev.sid, len(sev.data))
                entry = self._streams.get(sev.sid)
                if entry is not None:
                    entry[0] += len(sev.data)
                    entry[1].set()

    # ------------------------------------------------------------------ sending

    async def send(self, payload_type: int, data: bytes) -> None:
        """Queue session data (waits while ``window`` frames are unacknowledged) and write it."""
        while self.channel.in_flight >= self.window and not self._closed.is_set():
            self._room.clear()
            await self._room.wait()
        if self._closed.is_set():
            raise RuntimeError(f"minimal client: session ended: {self.error}")
        self.channel.send(payload_type, data, time.time())
        await self.flush()

    # ------------------------------------------------------------------ port sessions

    def _open_stream(self) -> tuple[int, list[Any]]:
        assert self.smux is not None, "not a port session (or not ready yet)"
        sid = self.smux.open_stream()
        entry: list[Any] = [0, asyncio.Event()]
        self._streams[sid] = entry
        return sid, entry

    async def _until(self, entry: list[Any], size: int, timeout: float = 600.0) -> None:
        async with asyncio.timeout(timeout):
            while entry[0] < size:
                if self._closed.is_set():
                    raise RuntimeError(f"minimal client: session ended: {self.error}")
                entry[1].clear()
                await entry[1].wait()

    def _close_stream(self, sid: int) -> None:
        assert self.smux is not None
        self._streams.pop(sid, None)
        self.smux.close_stream(sid)
        with contextlib.suppress(Exception):
            self.channel.send(PayloadType.OUTPUT, self.smux.data_to_send(), time.time())

    async def download(self, size: int) -> float:
        """MB/s of ``size`` bytes from the simserver's source (a new smux stream)."""
        assert self.smux is not None
        sid, entry = self._open_stream()
        t0 = time.perf_counter()
        self.smux.write(sid, HEADER.pack(size))
        await self.send(PayloadType.OUTPUT, self.smux.data_to_send())
        await self._until(entry, size)
        rate = size / (time.perf_counter() - t0) / MB
        self._close_stream(sid)
        await self.flush()
        return rate

    async def upload(self, size: int) -> float:
        """MB/s of ``size`` bytes to the simserver's sink, until its ``K`` came back."""
        smux = self.smux
        assert smux is not None
        sid, entry = self._open_stream()
        block = b"u" * _CHUNK
        t0 = time.perf_counter()
        smux.write(sid, HEADER.pack(size))
        left = size
        while left > 0:
            smux.write(sid, block[: min(_CHUNK, left)])
            left -= _CHUNK
            await self.send(PayloadType.OUTPUT, smux.data_to_send())
        await self._until(entry, 1)
        rate = size / (time.perf_counter() - t0) / MB
        self._close_stream(sid)
        await self.flush()
        return rate
