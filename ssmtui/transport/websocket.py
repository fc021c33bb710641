"""Runs a client-role :class:`~ssmtui.protocol.channel.DataChannel` over a websocket.

One connection object per session: it dials the stream URL, sends the OpenDataChannel text
frame, feeds every binary message to the channel, keeps exactly one timer armed from
``channel.get_timer()``, writes ``data_to_send()`` in order through a single writer, answers the
KMS data-key request through an injected callback, and, if the socket drops without the service
closing the channel, resumes it (ResumeSession through an injected callback) with the same
sequence numbers, so no byte is lost or repeated. Session layers (shell, tunnel, proxy, exec)
read :meth:`events` and call :meth:`send`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, DataChannel, Role
from ssmtui.protocol.events import (
    ChannelClosed,
    DataKeyNeeded,
    Event,
    HandshakeFailed,
    ProtocolError,
    ResendTimedOut,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import PayloadType
from ssmtui.transport.ids import new_message_id
from ssmtui.transport.wsframes import queue_binary_batch

__all__ = [
    "ConnectionLost",
    "DataChannelConnection",
    "StreamEndpoint",
    "TransportError",
    "validate_stream_url",
]

log = logging.getLogger(__name__)

#: Frames in flight before :meth:`DataChannelConnection.send` waits for acks. The reference
#: client sends one 1 KiB frame per millisecond; a window is what lets upload go faster
#: (PROTOCOL.md §12: 100 in flight ≈ 8–9 MB/s on loopback) while bounding memory.
DEFAULT_WINDOW = 256

#: Seconds of frame handling after which the reader lets the rest of the loop run. A socket read
#: brings up to 256 KiB (~250 frames) that websockets hands over without ever waiting; handled in
#: one go they would stall a UI on the same loop for tens of milliseconds.
READ_SLICE = 0.003

#: Frames written to the socket at most at once by the writer.
_MAX_BATCH = 512

_SHOWN = frozenset({PayloadType.OUTPUT, PayloadType.STDERR})
#: ResumeSession errors that no retry can fix (the session ended, or it is not ours).
_FINAL_RESUME_ERRORS = frozenset({"DoesNotExistException", "AccessDeniedException"})

DataKeyProvider = Callable[[str, dict[str, str]], Awaitable[tuple[bytes, bytes]]]


class TransportError(Exception):
    """The data channel could not be opened or kept (one clear line in ``str()``)."""


@dataclass(frozen=True, slots=True)
class StreamEndpoint:
    """Where and how to open the data channel: from StartSession or ResumeSession."""

    url: str
    token: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionLost(Event):
    """The websocket is gone and could not be resumed; the session is over."""

    reason: str


ResumeProvider = Callable[[], Awaitable[StreamEndpoint]]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_stream_url(url: str) -> None:
    """Refuse anything but ``wss://`` (plain ``ws://`` only on loopback, for the demo fleet)."""
    parts = urlsplit(url)
    if parts.scheme == "wss" and parts.hostname:
        return
    if parts.scheme == "ws" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise TransportError(
        f"refusing stream URL {parts.scheme}://{parts.hostname or '?'}/…: "
        "only wss:// is allowed (ws:// only on loopback)"
    )


def _ssl_context(url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss:"):
        return None
    ctx = ssl.create_default_context()
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle:
        ctx.load_verify_locations(cafile=bundle)
    return ctx


class DataChannelConnection:
    """A client data channel on a websocket. Use ``async with`` or :meth:`open` / :meth:`close`."""

    def __init__(
        self,
        endpoint: StreamEndpoint,
        *,
        session_id: str,
        target_id: str,
        config: ChannelConfig | None = None,
        data_key: DataKeyProvider | None = None,
        resume: ResumeProvider | None = None,
        client_id: str | None = None,
        window: int = DEFAULT_WINDOW,
        open_timeout: float = 45.0,
        ping_interval: float | None = 20.0,
        max_resume_attempts: int = 5,
        stall_timeout: float = 30.0,
        ready_timeout: float | None = 60.0,
    ) -> None:
        validate_stream_url(endpoint.url)
        self.endpoint = endpoint
        self.session_id = session_id
        self.channel = DataChannel(
            Role.CLIENT,
            new_id=new_message_id,
            random_bytes=os.urandom,
            config=config,
            session_id=session_id,
            target_id=target_id,
        )
        self.client_id = client_id or str(uuid.uuid4())
        self._data_key = data_key
        self._resume = resume
        self._window = window
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._max_resume = max_resume_attempts
        self._stall_timeout = stall_timeout
        self._ready_timeout = ready_timeout
        self._last_rx = time.time()
        self._opened_at = time.time()
        self._ws: ClientConnection | None = None
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._pushed_back: list[Event] = []
        self._outgoing: list[bytes] = []  # written in order by _writer
        self._has_output = asyncio.Event()
        self._acked = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._done = asyncio.Event()
        self.end_reason: str | None = None
        self.resumes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        #: The remote exit code, once an ExitCode payload arrived (command sessions).
        self.exit_code: int | None = None
        #: Awaited once each, in order, by the first :meth:`close` (e.g. to record the session's
        #: end in the history); exceptions are logged, never raised.
        self.close_hooks: list[Callable[[DataChannelConnection], Awaitable[None]]] = []
        #: Called with every Output / StdErr payload received (transcripts).
        self.output_hooks: list[Callable[[bytes], None]] = []
        self._hooks_task: asyncio.Future[None] | None = None
        #: When unacknowledged data last made progress (an ack, or the first frame after idle).
        self._last_progress = time.time()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DataChannelConnection:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Dial the stream URL and start the reader, writer and timer."""
        self._ws = await self._dial(self.endpoint)
        self._opened_at = time.time()
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"ssm-read-{self.session_id}"),
            asyncio.create_task(self._writer(), name=f"ssm-write-{self.session_id}"),
            asyncio.create_task(self._watchdog(), name=f"ssm-watch-{self.session_id}"),
        ]

    async def _dial(self, endpoint: StreamEndpoint) -> ClientConnection:
        host = urlsplit(endpoint.url).hostname or ""
        try:
            ws = await connect(
                endpoint.url,
                additional_headers=dict(endpoint.headers),
                compression=None,
                max_size=None,
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_interval,
                proxy=None if _is_loopback(host) else True,
                ssl=_ssl_context(endpoint.url),
                user_agent_header=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise TransportError(f"cannot open the data channel to {host}: {exc}") from exc
        opening = pl.OpenDataChannel(
            token=endpoint.token,
            request_id=str(uuid.uuid4()),  # new on every (re)open
            client_id=self.client_id,  # the same for the whole session
            client_version=self.channel.config.client_version,
        )
        await ws.send(opening.encode())
        return ws

    async def close(self) -> None:
        """Close the websocket and stop every task (idempotent)."""
        self.channel.close()
        self._finish(self.end_reason or "closed")
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 2)
            except Exception:  # a peer that does not finish the close handshake: drop the TCP
                with contextlib.suppress(Exception):
                    self._ws.transport.abort()
        if self._hooks_task is None:
            hooks, self.close_hooks = self.close_hooks, []
            self._hooks_task = asyncio.ensure_future(self._run_close_hooks(hooks))
        # shielded: a close() that is itself cancelled (an app exiting) must not cut the
        # history write short; a later close() waits for the same run.
        await asyncio.shield(self._hooks_task)

    async def _run_close_hooks(
        self, hooks: list[Callable[[DataChannelConnection], Awaitable[None]]]
    ) -> None:
        for hook in hooks:
            try:
                await hook(self)
            except Exception:  # a hook (history, logging) must never break closing
                log.warning("close hook failed", exc_info=True)

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    def _finish(self, reason: str, event: Event | None = None) -> None:
        if self._done.is_set():
            return
        self.end_reason = reason
        if event is not None:
            self._events.put_nowait(event)
        self._events.put_nowait(None)
        self._done.set()
        self._acked.set()

    # ------------------------------------------------------------------ events out

    async def events(self) -> AsyncIterator[Event]:
        """Channel events for the session layer, until the channel ends."""
        while True:
            if self._pushed_back:
                yield self._pushed_back.pop(0)
                continue
            ev = await self._events.get()
            if ev is None:
                self._events.put_nowait(None)  # let other readers end too
                return
            yield ev

    async def next_event(self, timeout: float | None = None) -> Event | None:
        if self._pushed_back:
            return self._pushed_back.pop(0)
        ev = await asyncio.wait_for(self._events.get(), timeout)
        if ev is None:
            self._events.put_nowait(None)
        return ev

    def push_back(self, *events: Event) -> None:
        """Hand events a caller has peeked at back: the next reader gets them first, in order
        (the session-manager-plugin path looks at SessionReady before choosing a session layer)."""
        self._pushed_back[:0] = events

    # ------------------------------------------------------------------ sending

    async def send(self, payload_type: int, data: bytes) -> None:
        """Queue session data; waits while the send window is full (backpressure)."""
        while self.channel.in_flight >= self._window and not self.closed:
            self._acked.clear()
            await self._acked.wait()
        if self.closed:
            raise TransportError(f"session ended: {self.end_reason}")
        now = time.time()
        if not self.channel.in_flight:
            self._last_progress = now  # the stall clock starts with the first unacked frame
        self.channel.send(payload_type, data, now)
        self._pump()

    def send_nowait(self, payload_type: int, data: bytes) -> None:
        """Queue small control data (Size, Flag, keystrokes) without waiting for the window."""
        if self.closed:
            raise TransportError(f"session ended: {self.end_reason}")
        now = time.time()
        if not self.channel.in_flight:
            self._last_progress = now  # the stall clock starts with the first unacked frame
        self.channel.send(payload_type, data, now)
        self._pump()

    def _pump(self) -> None:
        msgs = self.channel.data_to_send()
        if msgs:
            self.bytes_out += sum(map(len, msgs))
            self._outgoing += msgs
            self._has_output.set()
        self._arm_timer()

    async def _writer(self) -> None:
        """The only writer: frames go out in the order the channel produced them, batched into
        one socket write per wake-up (one ack per frame received makes per-frame writes the
        transport's main cost)."""
        while True:
            await self._has_output.wait()
            batch = self._outgoing[:_MAX_BATCH]
            del self._outgoing[:_MAX_BATCH]
            if not self._outgoing:
                self._has_output.clear()
            ws = self._ws
            if ws is None:
                continue
            try:
                await _send_batch(ws, batch)
            except ConnectionClosed:
                # the frames stay in the channel's outgoing buffer and are resent after resume
                continue

    async def _watchdog(self) -> None:
        """A peer that takes data but never answers is dead, and a session that never becomes
        ready (no handshake, no first output) is stuck: say so instead of hanging."""
        ready_timeout = self._ready_timeout
        period = min(1.0, self._stall_timeout / 4, (ready_timeout or 4.0) / 4)
        while not self.closed:
            await asyncio.sleep(period)
            now = time.time()
            silent = now - self._last_progress
            msg = None
            if self.channel.in_flight and silent > self._stall_timeout:
                msg = f"no answer from the instance for {silent:.0f} s"
            elif (
                ready_timeout is not None
                and not self.channel.ready
                and not self.channel.closed
                and now - self._opened_at > ready_timeout
            ):
                msg = f"the instance did not answer the session handshake in {ready_timeout:g} s"
            if msg is not None:
                self.channel.close()
                self._finish(msg, ConnectionLost(msg))
                if self._ws is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._ws.close(), 1)

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        """Keep one loop timer no later than the channel's deadline. A later deadline (the usual
        case after an ack) leaves the armed timer alone; it re-checks when it fires."""
        when = self.channel.get_timer()
        if when is None or (self._timer_at is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, when - time.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = time.time()
        when = self.channel.get_timer()
        if when is not None and when <= now:
            self._handle(self.channel.handle_timer(now))
        self._pump()

    # ------------------------------------------------------------------ receiving

    def _handle(self, events: list[Event]) -> None:
        before = self.channel.in_flight
        for ev in events:
            if isinstance(ev, DataKeyNeeded):
                self._tasks.append(asyncio.create_task(self._provide_key(ev)))
                continue
            if isinstance(ev, ChannelClosed):
                reason = ev.output or "the service closed the session"
                self._finish(reason, ev)
                return
            if isinstance(ev, ProtocolError | HandshakeFailed | ResendTimedOut):
                self._events.put_nowait(ev)
                self._finish(getattr(ev, "reason", None) or "resend timed out")
                return
            if isinstance(ev, StreamData):
                if ev.payload_type == PayloadType.EXIT_CODE:
                    with contextlib.suppress(pl.PayloadError):
                        self.exit_code = pl.decode_exit_code(ev.data)
                elif self.output_hooks and ev.payload_type in _SHOWN:
                    for hook in self.output_hooks:
                        try:
                            hook(ev.data)
                        except Exception as exc:  # an observer never breaks the session
                            log.debug("output hook failed: %s", exc)
            self._events.put_nowait(ev)
        if self.channel.in_flight < before or self.channel.in_flight < self._window:
            self._acked.set()

    async def _provide_key(self, ev: DataKeyNeeded) -> None:
        now = time.time()
        if self._data_key is None:
            self._handle(self.channel.reject_data_key("no KMS access configured", now))
        else:
            try:
                plaintext, blob = await self._data_key(ev.key_id, ev.encryption_context)
            except Exception as exc:  # KMS errors are reported to the agent, then to the user
                self._handle(self.channel.reject_data_key(str(exc), time.time()))
            else:
                self._handle(self.channel.provide_data_key(plaintext, blob, time.time()))
        self._pump()

    async def _reader(self) -> None:
        slice_end = time.perf_counter() + READ_SLICE
        while not self.closed:
            ws = self._ws
            assert ws is not None
            try:
                async for msg in ws:
                    if isinstance(msg, str):
                        continue  # the service sends no text frames to clients
                    self.bytes_in += len(msg)
                    now = time.time()
                    self._last_rx = now
                    waiting = self.channel.in_flight
                    events = self.channel.receive_frame(msg, now)
                    if self.channel.in_flight < waiting or any(
                        isinstance(ev, SessionReady) for ev in events
                    ):  # an ack (the peer reads), or held input just went out at ready
                        self._last_progress = now
                    self._handle(events)
                    self._pump()
                    if self.closed:
                        return
                    if time.perf_counter() >= slice_end:
                        # Buffered frames never make ``async for`` wait: take turns with the
                        # rest of the loop (the writer sends the acks queued so far meanwhile).
                        await asyncio.sleep(0)
                        slice_end = time.perf_counter() + READ_SLICE
                reason = "the service closed the connection"
            except ConnectionClosed as exc:
                reason = f"connection lost ({exc})"
            if self.channel.closed or self.closed:
                self._finish(self.end_reason or reason)
                return
            if not await self._reconnect(reason):
                return

    async def _reconnect(self, reason: str) -> bool:
        if self._resume is None:
            self._finish(reason, ConnectionLost(reason))
            return False
        delay = 0.1 + 0.1 * (os.urandom(1)[0] / 255)
        last = reason
        for _attempt in range(self._max_resume):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                endpoint = await self._resume()
                validate_stream_url(endpoint.url)
                self._ws = await self._dial(endpoint)
            except Exception as exc:  # resume failures are retried, then reported
                last = str(exc)
                log.debug("resume failed: %s", exc)
                if getattr(exc, "code", None) in _FINAL_RESUME_ERRORS:
                    break  # the session is gone (or not ours): retrying cannot help
                continue
            self.endpoint = endpoint
            self.resumes += 1
            self._last_progress = time.time()  # give the resumed channel a full stall window
            self._handle(self.channel.handle_timer(time.time()))
            self._pump()
            return True
        msg = f"{reason}; could not resume the session: {last}"
        self._finish(msg, ConnectionLost(msg))
        return False


async def _send_batch(ws: ClientConnection, batch: list[bytes]) -> None:
    """Write several binary messages with one flush when websockets exposes its sans-I/O
    protocol (it does since version 13), else one ``send`` each."""
    send_context = getattr(ws, "send_context", None)
    protocol = getattr(ws, "protocol", None)
    if send_context is None or protocol is None:
        for msg in batch:
            await ws.send(msg)
        return
    async with send_context():
        if queue_binary_batch(protocol, batch):
            return  # the whole batch framed at once (see wsframes), one write
        for msg in batch:
            protocol.send_binary(msg)
        # One socket write for the whole batch (websockets writes each frame on its own, and
        # asyncio makes that a system call per frame: per ack, when receiving).
        writes = getattr(protocol, "writes", None)
        if isinstance(writes, list) and len(writes) > 1 and all(writes):
            protocol.writes = [b"".join(writes)]
