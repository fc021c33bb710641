"""A small Session Manager client for tests against the demo fleet's simulated agents.

:class:`SimClient` drives a CLIENT-role :class:`~ssmtui.protocol.channel.DataChannel` over a
``websockets`` connection: it records every frame, collects events and output, runs the resend
timer, answers KMS data-key requests through a callback, and can resume on a new websocket.
:class:`MuxClient` adds an smux client for port sessions in mux mode. :class:`RawClient` writes
frames by hand, for input that must go out before the session is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, DataChannel, Role
from ssmtui.protocol.events import (
    AgentSessionState,
    ChannelClosed,
    DataKeyNeeded,
    Event,
    FrameDropped,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolError,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import Frame, MessageType, PayloadType, decode_frame, encode_frame
from ssmtui.protocol.smux import SessionFailed, SmuxSession, StreamClosed
from ssmtui.protocol.smux import StreamData as SmuxData
from ssmtui.protocol.versions import client_port_mode

KmsCallback = Callable[[str, dict[str, str]], Awaitable[tuple[bytes, bytes]]]
TIMEOUT = 20.0


async def _connect(url: str) -> ClientConnection:
    return await connect(
        url, max_size=None, compression=None, proxy=None, ping_interval=None, open_timeout=10
    )


class SimClient:
    """A scripted Session Manager client (see the module docstring)."""

    def __init__(
        self,
        stream_url: str,
        token: str,
        session_id: str,
        target: str,
        *,
        client_version: str = "1.2.707.0",
        config: ChannelConfig | None = None,
        kms: KmsCallback | None = None,
    ) -> None:
        self.stream_url = stream_url
        self.token = token
        self.client_id = str(uuid.uuid4())
        self.client_version = client_version
        self.channel = DataChannel(
            Role.CLIENT,
            new_id=uuid.uuid4,
            random_bytes=os.urandom,
            config=config or ChannelConfig(client_version=client_version),
            session_id=session_id,
            target_id=target,
        )
        self.kms = kms
        self.ws: ClientConnection | None = None
        #: Every binary message received (with its arrival time) and sent, in order.
        self.received: list[bytes] = []
        self.arrivals: list[float] = []
        self.sent: list[bytes] = []
        self.events: list[Event] = []
        self.output = bytearray()
        self.stderr = bytearray()
        self.exit_code: int | None = None
        self.flags: list[int] = []
        self.states: list[str] = []
        self.errors: list[Event] = []
        self.dropped = 0
        self.ready: SessionReady | None = None
        self.handshake: HandshakeCompleted | None = None
        self.channel_closed: ChannelClosed | None = None
        self.close_code: int | None = None
        self.mux: MuxClient | None = None
        self.port_mode: str | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ connection

    async def connect(self, token: str | None = None, stream_url: str | None = None) -> None:
        """Open the websocket and send OpenDataChannelInput (again, to resume)."""
        if token is not None:
            self.token = token
        if stream_url is not None:
            self.stream_url = stream_url
        self.ws = ws = await _connect(self.stream_url)
        self._closed.clear()
        self.close_code = None
        opened = pl.OpenDataChannel(
            token=self.token,
            request_id=str(uuid.uuid4()),
            client_id=self.client_id,
            client_version=self.client_version,
        )
        await ws.send(opened.encode())
        self._reader = self._spawn(self._read(ws))
        if not any(t.get_name() == "timer" for t in self._tasks):
            self._spawn(self._timer()).set_name("timer")
        await self.flush()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.ws.close()

    async def __aenter__(self) -> SimClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        return not self._closed.is_set() and self.ws is not None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    continue
                self.received.append(msg)
                self.arrivals.append(time.monotonic())
                self._on_events(self.channel.receive_frame(msg, time.time()))
                await self.flush()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self._closed.set()
            self._changed.set()

    async def _timer(self) -> None:
        while True:
            due = self.channel.get_timer()
            await asyncio.sleep(0.05 if due is None else max(0.0, min(due - time.time(), 0.05)))
            due = self.channel.get_timer()
            if due is not None and due <= time.time():
                self._on_events(self.channel.handle_timer(time.time()))
                await self.flush()

    async def flush(self) -> None:
        """Write what the channel queued (in order, whoever calls)."""
        async with self._lock:
            msgs = self.channel.data_to_send()
            ws = self.ws
            for msg in msgs:
                self.sent.append(msg)
                if ws is not None and self.connected:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(msg)

    def drop_connection(self) -> None:
        """Lose the TCP connection (no close frame), as a network failure would."""
        if self.ws is not None:
            self.ws.transport.abort()

    # ------------------------------------------------------------------ events

    def _on_events(self, events: list[Event]) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, StreamData):
                self._on_data(ev)
            elif isinstance(ev, SessionReady):
                self.ready = ev
                if ev.session_type == "Port":
                    self.port_mode = client_port_mode(
                        ev.properties, ev.agent_version, self.client_version
                    )
                    if self.port_mode == "mux":
                        self.mux = MuxClient(self)
            elif isinstance(ev, HandshakeCompleted):
                self.handshake = ev
            elif isinstance(ev, DataKeyNeeded):
                self._spawn(self._data_key(ev))
            elif isinstance(ev, AgentSessionState):
                self.states.append(ev.state)
            elif isinstance(ev, ChannelClosed):
                self.channel_closed = ev
            elif isinstance(ev, FrameDropped):
                self.dropped += 1
            elif isinstance(ev, HandshakeFailed | ProtocolError):
                self.errors.append(ev)
        self._changed.set()

    def _on_data(self, ev: StreamData) -> None:
        if ev.payload_type == PayloadType.OUTPUT:
            if self.mux is not None:
                self.mux.feed(ev.data)
            else:
                self.output += ev.data
        elif ev.payload_type == PayloadType.STDERR:
            self.stderr += ev.data
        elif ev.payload_type == PayloadType.EXIT_CODE:
            self.exit_code = pl.decode_exit_code(ev.data)
        elif ev.payload_type == PayloadType.FLAG:
            self.flags.append(pl.decode_flag(ev.data))

    async def _data_key(self, ev: DataKeyNeeded) -> None:
        assert self.kms is not None, "the agent asked for KMS but the client has no KMS callback"
        plaintext, blob = await self.kms(ev.key_id, ev.encryption_context)
        self._on_events(self.channel.provide_data_key(plaintext, blob, time.time()))
        await self.flush()

    # ------------------------------------------------------------------ sending

    async def send(self, payload_type: int, data: bytes) -> None:
        self.channel.send(payload_type, data, time.time())
        await self.flush()

    async def type(self, text: str | bytes) -> None:
        await self.send(PayloadType.OUTPUT, text.encode() if isinstance(text, str) else text)

    async def send_size(self, cols: int, rows: int) -> None:
        await self.send(PayloadType.SIZE, pl.encode_size(cols, rows))

    async def send_flag(self, flag: int) -> None:
        await self.send(PayloadType.FLAG, pl.encode_flag(flag))

    # ------------------------------------------------------------------ waiting

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` holds (checked after every event)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_output(self, needle: bytes, timeout: float = TIMEOUT) -> None:
        await self.wait_for(lambda: needle in self.output, timeout)

    async def wait_ready(self, timeout: float = TIMEOUT) -> SessionReady:
        await self.wait_for(lambda: self.ready is not None, timeout)
        assert self.ready is not None
        return self.ready

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        return self.close_code

    def frames(self) -> list[Frame]:
        """The received binary messages, decoded (digests not checked)."""
        return [decode_frame(m, verify_digest=False) for m in self.received]


class MuxClient:
    """An smux client on top of a :class:`SimClient` in mux mode."""

    def __init__(self, client: SimClient) -> None:
        self.client = client
        self.smux = SmuxSession(client=True)
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        self.peer_closed: set[int] = set()
        self.failure: str | None = None

    def feed(self, data: bytes) -> None:
        for ev in self.smux.receive_data(data):
            if isinstance(ev, SmuxData):
                self.data[ev.sid] += ev.data
                self.smux.consumed(ev.sid, len(ev.data))
            elif isinstance(ev, StreamClosed):
                self.peer_closed.add(ev.sid)
            elif isinstance(ev, SessionFailed):
                self.failure = ev.reason

    async def _flush(self) -> None:
        data = self.smux.data_to_send()
        if data:
            await self.client.send(PayloadType.OUTPUT, data)

    async def open_stream(self) -> int:
        sid = self.smux.open_stream()
        await self._flush()
        return sid

    async def write(self, sid: int, data: bytes) -> None:
        self.smux.write(sid, data)
        await self._flush()

    async def close_stream(self, sid: int) -> None:
        self.smux.close_stream(sid)
        await self._flush()


class RawClient:
    """Hand-made frames: input before the session is ready, acks of every output."""

    def __init__(self, stream_url: str, token: str) -> None:
        self.stream_url = stream_url
        self.token = token
        self.ws: ClientConnection | None = None
        self.received: list[Frame] = []
        self.raw: list[bytes] = []
        self.acked: list[int] = []
        self.output = bytearray()
        #: (direction, message) of every binary message both ways, in order.
        self.timeline: list[tuple[str, bytes]] = []
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._expected = 0

    async def connect(self, client_version: str = "1.2.677.0") -> None:
        self.ws = await _connect(self.stream_url)
        opened = pl.OpenDataChannel(self.token, str(uuid.uuid4()), "raw-client", client_version)
        await self.ws.send(opened.encode())
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for msg in self.ws:
                if isinstance(msg, str):
                    continue
                frame = decode_frame(msg)
                self.raw.append(msg)
                self.timeline.append(("agent->client", msg))
                self.received.append(frame)
                if frame.message_type == MessageType.ACKNOWLEDGE:
                    self.acked.append(pl.Ack.decode(frame.payload).sequence_number)
                elif frame.message_type == MessageType.OUTPUT_STREAM_DATA:
                    ack = pl.Ack(frame.message_type, str(frame.message_id), frame.sequence_number)
                    await self.ws.send(self.frame(MessageType.ACKNOWLEDGE, 0, 0, ack.encode(), 3))
                    if frame.sequence_number == self._expected:
                        self._expected += 1
                        if frame.payload_type == PayloadType.OUTPUT:
                            self.output += frame.payload
                self._changed.set()
        self.close_code = self.ws.close_code
        self._changed.set()

    @staticmethod
    def frame(mtype: str, seq: int, ptype: int, payload: bytes, flags: int = 0) -> bytes:
        return encode_frame(
            Frame(mtype, seq, flags, uuid.uuid4(), int(time.time() * 1000), ptype, payload)
        )

    async def send_raw(self, wire: bytes) -> None:
        assert self.ws is not None
        self.timeline.append(("client->agent", wire))
        await self.ws.send(wire)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.ws.close()


# --------------------------------------------------------------------------- trace shapes


def frame_shape(messages: list[bytes], close_code: int | None) -> dict[str, Any]:
    """What must match between the real agent's frames and ours, whatever the timing.

    ``messages`` are the agent's frames as the client received them (``channel_closed`` from
    the service is left out here). Retransmissions count once.
    """
    frames = [decode_frame(m, verify_digest=False) for m in messages]
    agent = [f for f in frames if f.message_type != MessageType.CHANNEL_CLOSED]
    stream: dict[int, Frame] = {}
    for f in agent:
        if f.message_type == MessageType.OUTPUT_STREAM_DATA:
            stream.setdefault(f.sequence_number, f)
    firsts = [stream[s] for s in sorted(stream)]
    acks = [f for f in agent if f.message_type == MessageType.ACKNOWLEDGE]
    states = [f for f in agent if f.message_type == MessageType.AGENT_SESSION_STATE]

    def head(fs: list[Frame]) -> set[tuple[Any, ...]]:
        return {
            (f.sequence_number, f.flags, f.payload_type, tuple(json.loads(f.payload))) for f in fs
        }

    def json_of(ptype: int) -> Any:
        return next((json.loads(f.payload) for f in firsts if f.payload_type == ptype), None)

    request = json_of(PayloadType.HANDSHAKE_REQUEST)
    handshake = None
    if request is not None:
        handshake = (
            list(request),
            [
                (
                    a["ActionType"],
                    list(a["ActionParameters"]),
                    list(a["ActionParameters"].get("Properties") or {}),
                )
                for a in request["RequestedClientActions"]
            ],
            list(json_of(PayloadType.HANDSHAKE_COMPLETE) or {}),
        )
    encrypted = any(f.payload_type == PayloadType.ENC_CHALLENGE_REQUEST for f in firsts)
    data_types = (PayloadType.OUTPUT, PayloadType.STDERR, PayloadType.EXIT_CODE)
    return {
        "first": (agent[0].message_type, json.loads(agent[0].payload)["SessionState"]),
        "states": [json.loads(f.payload)["SessionState"] for f in states],
        "ends_with_terminating": agent[-1].message_type == MessageType.AGENT_SESSION_STATE
        and json.loads(agent[-1].payload)["SessionState"] == "Terminating",
        "state_headers": head(states),
        "ack_headers": head(acks),
        "handshake": handshake,
        "flags": (firsts[0].flags, {f.flags for f in firsts[1:]}),
        "contiguous": sorted(stream) == list(range(len(stream))),
        "payload_types": sorted({f.payload_type for f in firsts}),
        "last_type": firsts[-1].payload_type,
        "chunks_fit": all(
            len(f.payload) <= 1024 + (28 if encrypted else 0)
            for f in firsts
            if f.payload_type in data_types
        ),
        "dropped": close_code == 1006,
    }


def early_input(timeline: list[tuple[str, bytes]]) -> tuple[int, bool] | None:
    """For input seq 0 sent before the agent was ready: (acks before the client resent it,
    acked after the resend), or None if there was no early input."""
    sends, acks_before, acked_after = 0, 0, False
    for direction, raw in timeline:
        f = decode_frame(raw, verify_digest=False)
        if direction == "client->agent" and f.message_type == MessageType.INPUT_STREAM_DATA:
            sends += f.sequence_number == 0
        elif direction == "agent->client" and f.message_type == MessageType.ACKNOWLEDGE:
            ack = pl.Ack.decode(f.payload)
            if ack.message_type == MessageType.INPUT_STREAM_DATA and ack.sequence_number == 0:
                if sends == 1:
                    acks_before += 1
                elif sends > 1:
                    acked_after = True
    return (acks_before, acked_after) if sends else None
