"""The simulated agent's Port plugin: basic (raw bytes) and multiplexed (smux v1) forwarding.

The destination is real TCP on this machine: ``host`` (default ``localhost``) and ``portNumber``
from the document, a name first looked up in the hub's ``host_map`` and then in DNS. Only
loopback addresses are ever dialled.

Mode, as the real agent decides it (PROTOCOL.md §7.2-§7.4): smux when the document's ``type`` is
``LocalPortForwarding``, the client's handshake reported ClientVersion ≥ 1.1.70, and the
instance's agent is newer than 3.0.196.0 (older agents have no smux at all); basic otherwise.
A port session never sends ``agent_session_state`` Terminating.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.frames import Flag, PayloadType
from ssmtui.protocol.smux import (
    SessionFailed,
    SmuxClosedError,
    SmuxSession,
    StreamClosed,
    StreamData,
    StreamOpened,
)
from ssmtui.protocol.versions import (
    MUX_ABOVE_AGENT,
    agent_uses_mux,
    agent_wants_keepalive,
    plugin_version_gt,
)
from ssmtui.sim.agent_base import AgentPlugin, Ending
from ssmtui.sim.agent_session import SimAgentSession
from ssmtui.sim.documents import SESSION_DOCUMENTS
from ssmtui.sim.state import SimSession

__all__ = ["PortPlugin", "dial", "port_properties"]

log = logging.getLogger("ssmtui.sim.agent")

_READ_SIZE = 1024
_MUX_READ_SIZE = 32768
#: smux bytes waiting for the channel beyond which destinations are not read.
_MUX_BACKLOG = 256 * 1024
#: Bytes buffered towards a destination beyond which the websocket is not read (basic mode).
_DEST_BACKLOG = 1024 * 1024
_TEMPLATE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


def port_properties(session: SimSession) -> dict[str, str]:
    """The HandshakeRequest Properties: the document's ``properties`` with parameters filled in.

    ``localPortNumber`` only appears when StartSession gave it (as in the recorded traces).
    """
    template = SESSION_DOCUMENTS.get(session.document_name, {}).get("properties", {})
    props: dict[str, str] = {}
    for key, raw in template.items():
        match = _TEMPLATE.match(raw) if isinstance(raw, str) else None
        value = session.param(match.group(1)) if match else raw
        if key == "localPortNumber" and "localPortNumber" not in session.parameters:
            continue
        if value is not None:
            props[key] = str(value)
    return props


async def dial(
    host_map: Mapping[str, str], host: str, port: int, timeout: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port`` on this machine (loopback addresses only)."""
    name = host or "localhost"
    target = host_map.get(name, name)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(target, port, type=socket.SOCK_STREAM)
    addrs: list[str] = []
    for *_, sockaddr in infos:
        ip = str(sockaddr[0])
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback and ip not in addrs:
            addrs.append(ip)
    if not addrs:
        raise ConnectionRefusedError(
            f"{name} does not resolve to this machine (the demo fleet only reaches loopback)"
        )
    error: OSError | None = None
    for addr in addrs:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(addr, port)
        except TimeoutError:
            error = TimeoutError(f"connecting to {name}:{port} timed out")
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _close_writer(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


class PortPlugin(AgentPlugin):
    """Port sessions: always a handshake, never encrypted; basic or mux after the handshake."""

    handshake = True
    encryptable = False

    def __init__(self, host: SimAgentSession) -> None:
        super().__init__(host)
        self._props = port_properties(host.session)
        self.mode: _Basic | _Mux | None = None

    @property
    def properties(self) -> dict[str, str]:
        return self._props

    async def run(self) -> Ending:
        host, props = self.host, self._props
        try:
            port = int(props.get("portNumber", ""))
        except ValueError:
            return Ending.failed(f"Invalid portNumber {props.get('portNumber')!r}")
        dest = props.get("host") or "localhost"
        mux = agent_uses_mux(props, host.client_version) and plugin_version_gt(
            host.agent_version, MUX_ABOVE_AGENT
        )
        if mux:
            self.mode = _Mux(host, dest, port)
        else:
            lpf = props.get("type") == "LocalPortForwarding"
            self.mode = _Basic(host, dest, port, local_forwarding=lpf)
        return await self.mode.run()

    def on_input(self, payload_type: int, data: bytes) -> None:
        if self.mode is not None:
            self.mode.on_input(payload_type, data)

    def get_timer(self) -> float | None:
        return self.mode.get_timer() if isinstance(self.mode, _Mux) else None

    def handle_timer(self, now: float) -> None:
        if isinstance(self.mode, _Mux):
            self.mode.handle_timer(now)

    async def wait_accepting(self) -> None:
        if self.mode is not None:
            await self.mode.wait_accepting()

    def accepting(self) -> bool:
        return self.mode is None or self.mode.accepting()

    async def close(self) -> None:
        if self.mode is not None:
            await self.mode.close()


def _flag(data: bytes) -> int | None:
    try:
        return pl.decode_flag(data)
    except pl.PayloadError:
        return None


class _Basic:
    """One destination connection at a time, raw bytes in Output payloads (port_basic.go)."""

    def __init__(self, host: SimAgentSession, dest: str, port: int, *, local_forwarding: bool):
        self.host = host
        self.dest, self.port = dest, port
        self.lpf = local_forwarding
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._pending: list[bytes] = []
        self._wanted = asyncio.Event()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await dial(self.host.config.host_map, self.dest, self.port)

    async def run(self) -> Ending:
        host = self.host
        try:
            self.conn = await self._dial()
        except OSError as exc:
            return Ending.failed(f"Unable to connect to {self.dest}:{self.port}: {exc}")
        host.set_ready(True)
        while True:
            conn = self.conn
            if conn is None:  # LocalPortForwarding after a disconnect: re-dial on the next input
                while not self._pending:
                    self._wanted.clear()
                    await self._wanted.wait()
                try:
                    self.conn = conn = await self._dial()
                except OSError as exc:
                    return Ending.failed(f"Unable to connect to {self.dest}:{self.port}: {exc}")
                pending, self._pending = self._pending, []
                for data in pending:
                    conn[1].write(data)
                continue
            await host.wait_window()
            try:
                data = await conn[0].read(_READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self._disconnect(conn)
                if not self.lpf:  # SSH-style sessions end with their destination
                    return Ending.port_closed("the destination closed the connection")
                continue
            await host.send_paced(PayloadType.OUTPUT, data)

    def _disconnect(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        if self.conn is conn:
            self.conn = None
        _close_writer(conn[1])

    def on_input(self, payload_type: int, data: bytes) -> None:
        if payload_type == PayloadType.OUTPUT:
            if self.conn is not None:
                self.conn[1].write(data)
            else:
                self._pending.append(data)
                self._wanted.set()
        elif payload_type == PayloadType.FLAG:
            flag = _flag(data)
            if flag == Flag.DISCONNECT_TO_PORT and self.conn is not None:
                self._disconnect(self.conn)
            elif flag == Flag.TERMINATE_SESSION:
                self.host.end(Ending.port_closed("the client terminated the session"))

    def accepting(self) -> bool:
        conn = self.conn
        return conn is None or conn[1].transport.get_write_buffer_size() <= _DEST_BACKLOG

    async def wait_accepting(self) -> None:
        conn = self.conn
        if conn is not None and conn[1].transport.get_write_buffer_size() > _DEST_BACKLOG:
            with contextlib.suppress(OSError):
                await conn[1].drain()

    async def close(self) -> None:
        if self.conn is not None:
            self._disconnect(self.conn)


@dataclass(eq=False)
class _Stream:
    sid: int
    queue: deque[bytes] = field(default_factory=deque)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    peer_closed: bool = False
    closed: bool = False
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None


class _Mux:
    """An smux v1 server over the Output byte stream; one destination connection per stream."""

    def __init__(self, host: SimAgentSession, dest: str, port: int) -> None:
        self.host = host
        self.dest, self.port = dest, port
        self.smux = SmuxSession(
            client=False, keepalive=agent_wants_keepalive(host.client_version), now=time.time()
        )
        self.streams: dict[int, _Stream] = {}
        self._backlog = bytearray()
        self._out = asyncio.Event()
        self._room = asyncio.Event()
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._closed = False

    async def run(self) -> Ending:
        host = self.host
        step = host.channel.config.max_payload
        host.set_ready(True)
        while True:
            self._backlog += self.smux.data_to_send()
            if not self._backlog:
                if self.smux.closed:
                    return Ending.failed(f"smux session failed: {self.smux.failure}")
                self._out.clear()
                await self._out.wait()
                continue
            await host.wait_window()
            chunk = bytes(self._backlog[:step])
            del self._backlog[:step]
            self._room.set()
            host.send(PayloadType.OUTPUT, chunk)
            if host.config.pace:
                await asyncio.sleep(0.001)

    def _notify(self) -> None:
        self._out.set()

    def on_input(self, payload_type: int, data: bytes) -> None:
        if payload_type == PayloadType.FLAG:
            if _flag(data) == Flag.TERMINATE_SESSION:
                self.host.end(Ending.port_closed("the client terminated the session"))
            return  # DisconnectToPort means nothing in mux mode
        if payload_type != PayloadType.OUTPUT:
            return
        for ev in self.smux.receive_data(data):
            if isinstance(ev, StreamOpened):
                st = _Stream(ev.sid)
                self.streams[ev.sid] = st
                st.task = self.host.spawn(self._serve(st))
            elif isinstance(ev, StreamData):
                target = self.streams.get(ev.sid)
                if target is None or target.closed:
                    self.smux.consumed(ev.sid, len(ev.data))
                else:
                    target.queue.append(ev.data)
                    target.event.set()
            elif isinstance(ev, StreamClosed):
                target = self.streams.get(ev.sid)
                if target is not None:
                    target.peer_closed = True
                    target.event.set()
            elif isinstance(ev, SessionFailed):
                self.host.end(Ending.failed(f"smux session failed: {ev.reason}"))
        if not self.smux.wants_data:
            self._accepting.clear()
        self._notify()

    async def _serve(self, st: _Stream) -> None:
        try:
            reader, writer = await dial(self.host.config.host_map, self.dest, self.port)
        except OSError as exc:
            log.info("stream %d: cannot reach %s:%d: %s", st.sid, self.dest, self.port, exc)
            self.host.send(PayloadType.FLAG, pl.encode_flag(Flag.CONNECT_TO_PORT_ERROR))
            self._close_stream(st)
            return
        st.writer = writer
        up = asyncio.create_task(self._mux_to_dest(st, writer))
        down = asyncio.create_task(self._dest_to_mux(st, reader))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            down.cancel()
            await asyncio.wait({up, down})
            self._close_stream(st)

    async def _mux_to_dest(self, st: _Stream, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while True:
                while st.queue:
                    data = st.queue.popleft()
                    writer.write(data)
                    await writer.drain()
                    self.smux.consumed(st.sid, len(data))
                    self._on_consumed()
                if st.peer_closed:
                    return
                st.event.clear()
                await st.event.wait()

    async def _dest_to_mux(self, st: _Stream, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, SmuxClosedError):
            while True:
                await self.host.wait_window()
                while len(self._backlog) > _MUX_BACKLOG:
                    self._room.clear()
                    await self._room.wait()
                data = await reader.read(_MUX_READ_SIZE)
                if not data or st.closed:
                    return
                self.smux.write(st.sid, data)
                self._notify()

    def _close_stream(self, st: _Stream) -> None:
        """FIN the stream (once) and close its destination (smux v1 has no half-close)."""
        if st.closed:
            return
        st.closed = True
        self.streams.pop(st.sid, None)
        self.smux.close_stream(st.sid)
        _close_writer(st.writer)
        self._on_consumed()
        self._notify()

    def _on_consumed(self) -> None:
        if self.smux.wants_data:
            self._accepting.set()

    def accepting(self) -> bool:
        return self.smux.wants_data or self._closed

    async def wait_accepting(self) -> None:
        while not (self.smux.wants_data or self._closed):
            self._accepting.clear()
            await self._accepting.wait()

    def get_timer(self) -> float | None:
        return self.smux.get_timer()

    def handle_timer(self, now: float) -> None:
        for ev in self.smux.handle_timer(now):
            if isinstance(ev, SessionFailed):
                self.host.end(Ending.failed(f"smux session failed: {ev.reason}"))
        self._notify()

    async def close(self) -> None:
        self._closed = True
        self._accepting.set()
        tasks = [st.task for st in self.streams.values() if st.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for st in list(self.streams.values()):
            self._close_stream(st)
        self.smux.close()
