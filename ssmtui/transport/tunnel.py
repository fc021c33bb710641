"""Port-forwarding tunnels: a local TCP listener carried over Session Manager port sessions.

Many concurrent TCP connections share one session through smux (agents above 3.0.196.0), or
go one at a time in basic mode for older agents, exactly as each side decides (PROTOCOL.md §7).
The listener outlives sessions: when a session drops, the tunnel opens a new one with backoff
and new connections wait for it, so clients only notice the connections that were cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ssmtui.protocol import payloads as pl
from ssmtui.protocol import smux
from ssmtui.protocol.events import SessionReady, StreamData
from ssmtui.protocol.frames import Flag, PayloadType
from ssmtui.protocol.versions import (
    agent_supports_terminate_flag,
    client_port_mode,
    client_smux_keepalive,
)
from ssmtui.transport.websocket import DataChannelConnection, TransportError

__all__ = ["SessionOpener", "Tunnel", "TunnelSpec", "TunnelStats"]

log = logging.getLogger(__name__)

SessionOpener = Callable[[], Awaitable[DataChannelConnection]]
READY_TIMEOUT = 20.0
_FLUSH_HIGH_WATER = 256 * 1024  # smux bytes queued before local readers pause
_READ_CHUNK = 32 * 1024


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    """``[BIND:]LOCAL:REMOTE`` to a target, optionally through it to ``remote_host``."""

    target: str
    local_port: int
    remote_port: int
    remote_host: str | None = None
    bind_host: str = "127.0.0.1"

    def describe(self) -> str:
        where = f"{self.remote_host}:{self.remote_port}" if self.remote_host else self.remote_port
        return f"{self.bind_host}:{self.local_port} → {self.target} → {where}"


@dataclass
class TunnelStats:
    state: str = "starting"  # starting, connecting, up, reconnecting, stopped, failed
    mode: str = ""
    local_port: int = 0
    connections_active: int = 0
    connections_total: int = 0
    bytes_in: int = 0  # from the remote side to local clients
    bytes_out: int = 0  # from local clients to the remote side
    reconnects: int = 0
    error: str = ""
    session_id: str = ""
    history: list[tuple[float, int, int]] = field(default_factory=list)


class Tunnel:
    """A listener plus supervisors that keep ``pool`` port sessions open behind it.

    With a pool, each new TCP connection goes to the least loaded live session: the agent paces
    every session on its own (≈1 KiB per ms), so N sessions carry about N times as much.
    """

    def __init__(
        self,
        spec: TunnelSpec,
        opener: SessionOpener,
        *,
        on_change: Callable[[TunnelStats], None] | None = None,
        max_backoff: float = 10.0,
        pool: int = 1,
    ) -> None:
        if not 1 <= pool <= 32:
            raise ValueError("a tunnel's session pool holds 1 to 32 sessions")
        self.spec = spec
        self.stats = TunnelStats()
        self.pool = pool
        self._opener = opener
        self._on_change = on_change
        self._max_backoff = max_backoff
        self._server: asyncio.Server | None = None
        self._supervisors: list[asyncio.Task[None]] = []
        self._slots: list[_PortSession | None] = [None] * pool
        self._ready = asyncio.Event()
        self._stopping = False
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the listener (errors here are the user's: port in use, bad address) and start."""
        try:
            self._server = await asyncio.start_server(
                self._accept, self.spec.bind_host, self.spec.local_port, reuse_address=True
            )
        except OSError as exc:
            # asyncio words it "error while attempting to bind on address (...): ..."
            why = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
            raise TransportError(
                f"cannot listen on {self.spec.bind_host}:{self.spec.local_port}: {why}"
            ) from exc
        sock = self._server.sockets[0]
        self.stats.local_port = sock.getsockname()[1]
        self._supervisors = [
            asyncio.create_task(self._supervise(i), name=f"tunnel-supervisor-{i}")
            for i in range(self.pool)
        ]

    @property
    def _session(self) -> _PortSession | None:
        """The first live session (the only one without a pool)."""
        return next((s for s in self._slots if s is not None), None)

    @property
    def sessions_up(self) -> int:
        return sum(s is not None for s in self._slots)

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        await asyncio.gather(
            *(s.terminate() for s in self._slots if s is not None), return_exceptions=True
        )
        for task in [*self._supervisors, *self._handlers]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._set(state="stopped")

    async def wait_up(self, timeout: float = READY_TIMEOUT) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    def _set(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.stats, key, value)
        if self._on_change is not None:
            self._on_change(self.stats)

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self, slot: int) -> None:
        backoff = 0.5
        while not self._stopping:
            self._set(state="connecting" if not self.stats.reconnects else "reconnecting")
            try:
                conn = await self._opener()
                session = await _PortSession.establish(conn, self.stats)
            except (TransportError, OSError, TimeoutError) as exc:
                self._set(state="reconnecting", error=str(exc))
            except Exception as exc:  # AWS errors: shown on the tunnel, retried
                self._set(state="reconnecting", error=str(exc))
            else:
                backoff = 0.5
                self._slots[slot] = session
                self._set(state="up", mode=session.mode, error="", session_id=conn.session_id)
                self._ready.set()
                reason = await session.run()
                self._slots[slot] = None
                if not self.sessions_up:
                    self._ready.clear()
                if self._stopping:
                    return
                self._set(state="reconnecting", error=reason)
            self.stats.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.connections_total += 1
        self._set(connections_active=self.stats.connections_active + 1)
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
            live = [s for s in self._slots if s is not None and not s.conn.closed]
            session = min(live, key=lambda s: s.load) if live else None
            if session is not None:
                await session.serve(reader, writer)
        except (TimeoutError, ConnectionError, TransportError) as exc:
            log.debug("tunnel connection ended: %s", exc)
        finally:
            writer.close()
            self._handlers.discard(task)
            self._set(connections_active=self.stats.connections_active - 1)


class _PortSession:
    """One port session in mux or basic mode."""

    def __init__(self, conn: DataChannelConnection, ready: SessionReady, stats: TunnelStats):
        self.conn = conn
        self.stats = stats
        self.agent_version = ready.agent_version
        cv = conn.channel.config.client_version
        self.mode = client_port_mode(ready.properties, ready.agent_version, cv)
        self.smux: smux.SmuxSession | None = None
        self.streams: dict[int, asyncio.StreamWriter] = {}
        self._kick = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._unflushed = 0
        self._basic_lock = asyncio.Lock()
        self._basic_writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if self.mode == "mux":
            self.smux = smux.SmuxSession(
                client=True,
                keepalive=client_smux_keepalive(ready.agent_version),
                now=time.monotonic(),
            )

    @property
    def load(self) -> int:
        """Connections this session carries (basic mode: 1 while its one connection runs)."""
        return len(self.streams) + int(self._basic_lock.locked())

    @classmethod
    async def establish(cls, conn: DataChannelConnection, stats: TunnelStats) -> _PortSession:
        async with asyncio.timeout(READY_TIMEOUT):
            async for ev in conn.events():
                if isinstance(ev, SessionReady):
                    return cls(conn, ev, stats)
        raise TransportError(conn.end_reason or "session ended before it was ready")

    async def run(self) -> str:
        """Dispatch channel events until the session ends; returns why it ended."""
        if self.smux is not None:
            self._tasks = [
                asyncio.create_task(self._flusher()),
                asyncio.create_task(self._keepalive()),
            ]
        try:
            async for ev in self.conn.events():
                if not isinstance(ev, StreamData):
                    continue
                if ev.payload_type == PayloadType.FLAG:
                    if pl.decode_flag(ev.data) == Flag.CONNECT_TO_PORT_ERROR:
                        self.stats.error = "the instance could not connect to the remote port"
                    continue
                if ev.payload_type != PayloadType.OUTPUT:
                    continue
                self.stats.bytes_in += len(ev.data)
                if self.smux is None:
                    if self._basic_writer is not None:
                        self._basic_writer.write(ev.data)
                    continue
                self._on_smux_bytes(ev.data)
        finally:
            for task in self._tasks:
                task.cancel()
            for writer in self.streams.values():
                writer.close()
            await self.conn.close()
        return self.conn.end_reason or "session ended"

    def _on_smux_bytes(self, data: bytes) -> None:
        assert self.smux is not None
        for sev in self.smux.receive_data(data):
            if isinstance(sev, smux.StreamData):
                writer = self.streams.get(sev.sid)
                if writer is not None:
                    writer.write(sev.data)
                self.smux.consumed(sev.sid, len(sev.data))
            elif isinstance(sev, smux.StreamClosed):
                writer = self.streams.pop(sev.sid, None)
                if writer is not None:
                    writer.close()
                self.smux.close_stream(sev.sid)
            elif isinstance(sev, smux.SessionFailed):
                self.stats.error = f"multiplexer failed: {sev.reason}"
                self.conn.channel.close()
        self._kick.set()

    async def _flusher(self) -> None:
        """The only writer of smux bytes into the channel, so they stay in order."""
        assert self.smux is not None
        while True:
            await self._kick.wait()
            self._kick.clear()
            data = self.smux.data_to_send()
            self._unflushed = 0
            self._room.set()
            if data:
                await self.conn.send(PayloadType.OUTPUT, data)

    async def _keepalive(self) -> None:
        assert self.smux is not None
        while True:
            when = self.smux.get_timer()
            if when is None:
                return
            await asyncio.sleep(max(0.0, when - time.monotonic()))
            for sev in self.smux.handle_timer(time.monotonic()):
                if isinstance(sev, smux.SessionFailed):
                    self.conn.channel.close()
            self._kick.set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.smux is None:
            await self._serve_basic(reader, writer)
            return
        sid = self.smux.open_stream()
        self.streams[sid] = writer
        self._kick.set()
        try:
            while not self.conn.closed:
                data = await reader.read(_READ_CHUNK)
                if not data or sid not in self.streams:
                    break
                self.stats.bytes_out += len(data)
                self.smux.write(sid, data)
                self._unflushed += len(data)
                self._kick.set()
                if self._unflushed > _FLUSH_HIGH_WATER:
                    self._room.clear()
                    await self._room.wait()
        finally:
            self.streams.pop(sid, None)
            if not self.smux.closed:
                self.smux.close_stream(sid)
                self._kick.set()

    async def _serve_basic(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        async with self._basic_lock:  # basic mode carries one connection at a time
            self._basic_writer = writer
            try:
                while not self.conn.closed:
                    data = await reader.read(1024)
                    if not data:
                        break
                    self.stats.bytes_out += len(data)
                    await self.conn.send(PayloadType.OUTPUT, data)
            finally:
                self._basic_writer = None
                if not self.conn.closed:
                    self.conn.send_nowait(PayloadType.FLAG, pl.encode_flag(Flag.DISCONNECT_TO_PORT))

    async def terminate(self) -> None:
        """End the session the way the reference client does: Flag TerminateSession."""
        if not self.conn.closed and (
            self.mode == "mux" or agent_supports_terminate_flag(self.agent_version)
        ):
            with contextlib.suppress(TransportError):
                self.conn.send_nowait(PayloadType.FLAG, pl.encode_flag(Flag.TERMINATE_SESSION))
                await asyncio.sleep(0.05)  # let the flag reach the socket
        await self.conn.close()
