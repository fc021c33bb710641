"""Sans-I/O smux v1 multiplexer (wire-compatible with github.com/xtaci/smux v1.5.x).

Session Manager port forwarding (``LocalPortForwarding``) carries one continuous smux byte stream
in each direction inside the Output payloads of the data channel. This module turns that byte
stream into events and turns stream operations into bytes; it performs no I/O and reads no clock.

Frame layout (8-byte little-endian header, then ``length`` bytes of data)::

    version u8 (=1) | cmd u8 | length u16 LE | stream id u32 LE | data

Commands: SYN 0 (open), FIN 1 (close, no half-close in v1), PSH 2 (data), NOP 3 (keepalive).
UPD 4 exists only in smux v2; here it is a protocol error like any other unknown command or a
version other than 1, and a protocol error kills the whole session.

Typical use::

    mux = SmuxSession(client=True)
    sid = mux.open_stream()
    mux.write(sid, b"GET / HTTP/1.0\\r\\n\\r\\n")
    transport.send(mux.data_to_send())
    for event in mux.receive_data(chunk):
        ...  # StreamOpened / StreamData / StreamClosed / SessionFailed
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<BBHI")
"""version, cmd, length, stream id (all little-endian)."""

SMUX_VERSION = 1
CMD_SYN = 0
CMD_FIN = 1
CMD_PSH = 2
CMD_NOP = 3
CMD_UPD = 4
MAX_DATA_LENGTH = 0xFFFF
_MAX_SID = 0xFFFFFFFF
_CMD_NAMES = {CMD_SYN: "SYN", CMD_FIN: "FIN", CMD_PSH: "PSH", CMD_NOP: "NOP", CMD_UPD: "UPD"}


class SmuxError(ValueError):
    """Protocol error (bad version, unknown command, ...) or invalid frame parameters."""


class SmuxClosedError(SmuxError):
    """Operation on a stream that is not open (closed or never opened) or on a dead session."""


@dataclass(frozen=True, slots=True)
class SmuxFrame:
    """One smux frame. ``data`` is only non-empty for PSH frames."""

    cmd: int
    sid: int
    data: bytes = b""
    version: int = SMUX_VERSION


def encode_frame(frame: SmuxFrame) -> bytes:
    """Serialize ``frame`` (header + data). Any version/cmd is encodable (useful for tests)."""
    if len(frame.data) > MAX_DATA_LENGTH:
        raise SmuxError(f"smux frame data too long: {len(frame.data)} > {MAX_DATA_LENGTH}")
    if not (0 <= frame.version <= 0xFF and 0 <= frame.cmd <= 0xFF and 0 <= frame.sid <= _MAX_SID):
        raise SmuxError(f"smux frame field out of range: {frame!r}")
    return HEADER.pack(frame.version, frame.cmd, len(frame.data), frame.sid) + frame.data


class FrameParser:
    """Incremental smux v1 frame parser: reassembles frames from arbitrarily split bytes.

    Raises :class:`SmuxError` for a version other than 1, a command other than SYN/FIN/PSH/NOP,
    or a non-zero length on SYN/FIN/NOP (the reference never sends one and does not skip such
    bytes, so its own stream would be out of sync). After an error the parser stays broken.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Number of bytes held that do not yet form a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[SmuxFrame]:
        """Add ``data`` and return every frame completed by it, in order."""
        self.add(data)
        frames: list[SmuxFrame] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def add(self, data: bytes) -> None:
        """Append ``data`` to the reassembly buffer without parsing."""
        self._buf += data

    def next_frame(self) -> SmuxFrame | None:
        """Pop the next complete frame, or return None if more bytes are needed."""
        if len(self._buf) < HEADER.size:
            return None
        version, cmd, length, sid = HEADER.unpack_from(self._buf)
        if version != SMUX_VERSION:
            raise SmuxError(f"unsupported smux version {version} (expected {SMUX_VERSION})")
        if cmd not in (CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP):
            name = _CMD_NAMES.get(cmd, "unknown")
            raise SmuxError(f"invalid smux v1 command {cmd} ({name}) for stream {sid}")
        if cmd != CMD_PSH and length:
            raise SmuxError(f"smux {_CMD_NAMES[cmd]} frame with non-zero length {length}")
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        data = bytes(self._buf[HEADER.size : end])
        del self._buf[:end]
        return SmuxFrame(cmd, sid, data)


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened stream ``sid`` (SYN for an id not currently open)."""

    sid: int


@dataclass(frozen=True, slots=True)
class StreamData:
    """Data for stream ``sid``. Call :meth:`SmuxSession.consumed` once it has been drained."""

    sid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The peer closed stream ``sid`` (FIN): EOF after the data already delivered.

    v1 has no half-close: the application should close its side with
    :meth:`SmuxSession.close_stream`, which sends our FIN and forgets the stream.
    """

    sid: int


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The whole smux session is dead (protocol error); close the transport."""

    reason: str


@dataclass(frozen=True, slots=True)
class KeepaliveTimeout(SessionFailed):
    """Nothing was received during a whole keepalive-timeout window; the session is dead."""


SmuxEvent = StreamOpened | StreamData | StreamClosed | SessionFailed


@dataclass(slots=True)
class _Stream:
    peer_closed: bool = False
    unconsumed: int = 0


class SmuxSession:
    """One smux v1 session (either end), driven by bytes in, events and bytes out.

    * ``client=True`` opens odd stream ids 3, 5, 7, ...; a server opens even ids 2, 4, ...
      Either side accepts a peer SYN for any id that is not currently open.
    * Outgoing bytes accumulate until :meth:`data_to_send` drains them.
    * Flow control (session-wide, as in v1): bytes delivered in :class:`StreamData` count as
      buffered until the application reports them with :meth:`consumed` (or closes the stream).
      :attr:`wants_data` is False while ``buffered >= max_receive_buffer``; a transport should
      stop reading then. Nothing is enforced: data fed in is always processed.
    * Keepalive (optional): a NOP every ``keepalive_interval`` seconds; every
      ``keepalive_timeout`` seconds the session fails with :class:`KeepaliveTimeout` if no byte
      arrived since the previous check (skipped while :attr:`wants_data` is False, like smux).
      Drive it with :meth:`get_timer` / :meth:`handle_timer` on any monotonic clock.
    """

    def __init__(
        self,
        *,
        client: bool,
        keepalive: bool = False,
        now: float = 0.0,
        max_frame_size: int = 32768,
        keepalive_interval: float = 10.0,
        keepalive_timeout: float = 30.0,
        max_receive_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        if not 0 < max_frame_size <= MAX_DATA_LENGTH:
            raise ValueError(f"max_frame_size must be in 1..{MAX_DATA_LENGTH}")
        if max_receive_buffer <= 0:
            raise ValueError("max_receive_buffer must be positive")
        if keepalive and not 0 < keepalive_interval <= keepalive_timeout:
            raise ValueError("need 0 < keepalive_interval <= keepalive_timeout")
        self.client = client
        self.keepalive = keepalive
        self.max_frame_size = max_frame_size
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.max_receive_buffer = max_receive_buffer
        self._next_id = 1 if client else 0
        self._streams: dict[int, _Stream] = {}
        self._parser = FrameParser()
        self._out = bytearray()
        self._buffered = 0
        self._failure: str | None = None
        self._closed = False
        self._received = False
        self._next_ping = now + keepalive_interval
        self._next_check = now + keepalive_timeout

    # ----------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        """True once the session failed or :meth:`close` was called."""
        return self._closed

    @property
    def failure(self) -> str | None:
        """Why the session failed, if it did."""
        return self._failure

    @property
    def stream_ids(self) -> frozenset[int]:
        """Ids of streams not yet closed locally (including ones the peer has closed)."""
        return frozenset(self._streams)

    def peer_closed(self, sid: int) -> bool:
        """Whether the peer sent FIN for open stream ``sid`` (KeyError if not open)."""
        return self._streams[sid].peer_closed

    @property
    def buffered(self) -> int:
        """Bytes delivered in StreamData events and not yet reported as consumed."""
        return self._buffered

    @property
    def wants_data(self) -> bool:
        """False while the receive buffer is full: the transport should pause reading."""
        return self._buffered < self.max_receive_buffer

    # -------------------------------------------------------------- sending

    def open_stream(self) -> int:
        """Open a new stream: queue its SYN and return its id."""
        self._check_alive()
        sid = self._next_id + 2
        if sid > _MAX_SID:
            raise SmuxError("smux stream ids exhausted")
        self._next_id = sid
        self._streams[sid] = _Stream()
        self._send(CMD_SYN, sid)
        return sid

    def write(self, sid: int, data: bytes) -> None:
        """Queue ``data`` for stream ``sid`` as PSH frames of at most ``max_frame_size`` bytes.

        Writing after the peer's FIN is allowed (as in smux; the peer discards it). Raises
        :class:`SmuxClosedError` if the stream was closed locally or never opened.
        """
        self._check_alive()
        if sid not in self._streams:
            raise SmuxClosedError(f"smux stream {sid} is closed or was never opened")
        view = memoryview(data)
        for start in range(0, len(view), self.max_frame_size):
            self._send(CMD_PSH, sid, view[start : start + self.max_frame_size])

    def close_stream(self, sid: int) -> None:
        """Close stream ``sid``: queue FIN once and forget the stream. Idempotent.

        Unconsumed received bytes of the stream are released from the flow-control buffer.
        A no-op for unknown ids and on a dead session.
        """
        stream = self._streams.pop(sid, None)
        if stream is None:  # already closed, never opened, or the session is dead
            return
        self._buffered -= stream.unconsumed
        self._send(CMD_FIN, sid)

    def close(self) -> None:
        """Abandon the session locally (smux sends nothing on session close)."""
        self._closed = True
        self._streams.clear()
        self._buffered = 0

    def data_to_send(self) -> bytes:
        """Return and clear the queued outgoing bytes (one continuous smux byte stream)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # ------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[SmuxEvent]:
        """Process bytes from the peer. Never raises on bad input.

        A protocol error yields :class:`SessionFailed` (after the events of the frames before it)
        and the session is dead afterwards; later input is ignored.
        """
        if self._closed:
            return []
        if data:
            self._received = True
        self._parser.add(data)
        events: list[SmuxEvent] = []
        while True:
            try:
                frame = self._parser.next_frame()
            except SmuxError as exc:
                events.append(self._fail(SessionFailed(str(exc))))
                return events
            if frame is None:
                return events
            self._handle_frame(frame, events)

    def consumed(self, sid: int, n: int) -> None:
        """Report that ``n`` bytes of stream ``sid`` were drained by the application.

        Ignored for streams that are no longer open (their bytes were released on close).
        """
        stream = self._streams.get(sid)
        if stream is None:
            return
        if not 0 <= n <= stream.unconsumed:
            raise ValueError(f"consumed {n} bytes but stream {sid} has {stream.unconsumed}")
        stream.unconsumed -= n
        self._buffered -= n

    def _handle_frame(self, frame: SmuxFrame, events: list[SmuxEvent]) -> None:
        stream = self._streams.get(frame.sid)
        if frame.cmd == CMD_SYN and stream is None:
            self._streams[frame.sid] = _Stream()
            events.append(StreamOpened(frame.sid))
        elif stream is None or stream.peer_closed:
            # NOP, or FIN/PSH for an unknown or finished stream: ignored (PSH data discarded).
            return
        elif frame.cmd == CMD_FIN:
            stream.peer_closed = True
            events.append(StreamClosed(frame.sid))
        elif frame.cmd == CMD_PSH and frame.data:
            stream.unconsumed += len(frame.data)
            self._buffered += len(frame.data)
            events.append(StreamData(frame.sid, frame.data))
        # Otherwise a duplicate SYN, an empty PSH or a NOP: nothing to do.

    # --------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """Next keepalive deadline (same units as ``now``), or None if no timer is needed."""
        if not self.keepalive or self._closed:
            return None
        return min(self._next_ping, self._next_check)

    def handle_timer(self, now: float) -> list[SmuxEvent]:
        """Run due keepalive work: queue a NOP and/or check for a dead peer."""
        if self.get_timer() is None:
            return []
        if now >= self._next_ping:
            self._send(CMD_NOP, 0)
            self._next_ping = _advance(self._next_ping, self.keepalive_interval, now)
        if now >= self._next_check:
            self._next_check = _advance(self._next_check, self.keepalive_timeout, now)
            if not self._received and self.wants_data:
                reason = f"no data received for {self.keepalive_timeout:g} s"
                return [self._fail(KeepaliveTimeout(reason))]
            self._received = False
        return []

    # -------------------------------------------------------------- helpers

    def _send(self, cmd: int, sid: int, data: bytes | memoryview = b"") -> None:
        self._out += HEADER.pack(SMUX_VERSION, cmd, len(data), sid)
        self._out += data

    def _check_alive(self) -> None:
        if self._closed:
            raise SmuxClosedError(f"smux session is closed ({self._failure or 'closed locally'})")

    def _fail(self, event: SessionFailed) -> SessionFailed:
        self.close()
        self._failure = event.reason
        return event


def _advance(deadline: float, period: float, now: float) -> float:
    """Next tick of a ticker after ``now``; missed ticks are dropped, like Go's time.Ticker."""
    while deadline <= now:
        deadline += period
    return deadline
