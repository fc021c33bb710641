"""The data channel's core, shared by both roles: configuration, sequence numbers, acks, the
reorder buffer, resend (through :class:`~.reliability.SendBuffer`), pause/start publication,
timers, close and the dispatch of in-order frames to the role. The roles' handshakes are in
:mod:`.handshake`; :class:`~.channel.DataChannel` puts the pieces together."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import payloads as pl
from .crypto import SessionCipher
from .events import (
    AgentSessionState,
    ChannelClosed,
    Event,
    FrameDropped,
    HandshakeFailed,
    ProtocolError,
    PublicationPaused,
    PublicationResumed,
    ResendTimedOut,
)
from .frames import (
    DigestMismatch,
    Frame,
    FrameError,
    MessageType,
    PayloadType,
    decode_frame,
    encode_message,
)
from .reliability import SendBuffer

__all__ = ["ChannelConfig", "ChannelCore", "ChannelStateError", "Role"]

DEFAULT_CLIENT_VERSION = "1.2.764.0"
DEFAULT_AGENT_VERSION = "3.3.987.0"
SESSION_TYPES = frozenset(
    {"Standard_Stream", "InteractiveCommands", "NonInteractiveCommands", "Port"}
)
REQUIRE_CHALLENGE_ERROR = "client does not support required encryption context random challenge"

_ACK_FLAGS = 3
_SYN_FLAG = 1
_HANDSHAKE_TYPES = frozenset(
    {
        PayloadType.HANDSHAKE_REQUEST,
        PayloadType.HANDSHAKE_RESPONSE,
        PayloadType.HANDSHAKE_COMPLETE,
        PayloadType.ENC_CHALLENGE_REQUEST,
        PayloadType.ENC_CHALLENGE_RESPONSE,
    }
)
# What each side encrypts when KMS is on (PROTOCOL.md §6.3).
_CLIENT_ENCRYPTS = frozenset({PayloadType.OUTPUT})
_AGENT_ENCRYPTS = frozenset({PayloadType.OUTPUT, PayloadType.STDERR, PayloadType.EXIT_CODE})


class Role(Enum):
    CLIENT = "client"
    AGENT = "agent"


class ChannelStateError(RuntimeError):
    """An API call that the channel's current state does not allow (e.g. send after close)."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Constants of the reliability layer; the defaults are the reference ones (PROTOCOL.md §4)."""

    client_version: str = DEFAULT_CLIENT_VERSION
    agent_version: str = DEFAULT_AGENT_VERSION
    max_payload: int = 1024
    rtt_initial: float = 0.1
    rto_initial: float = 0.2
    clock_granularity: float = 0.01
    rto_max: float = 1.0
    resend_interval: float = 0.1
    #: Expired frames resent per timer run. The reference resends only the oldest frame per
    #: 100 ms tick, which recovers from scattered loss one frame per tick; a small burst keeps
    #: recovery fast without flooding a stalled peer.
    resend_burst: int = 16
    #: Resends of one frame before giving up (the reference client: 3000; the agent never).
    max_resends: int | None = 3000
    #: Out-of-order frames kept; beyond it new ones are dropped without an ack.
    in_capacity: int = 10_000
    #: Frames with a bad digest tolerated (dropped unacked, for the peer to resend) before the
    #: channel gives up with a ProtocolError.
    max_bad_frames: int = 32
    #: Agent: seconds to wait for the HandshakeResponse and for the challenge response.
    handshake_timeout: float = 15.0
    #: Client: answer the agent's random KMS challenge (ChallengeAcknowledgement).
    acknowledge_challenge: bool = True
    #: Agent: refuse clients that do not acknowledge the challenge.
    require_challenge: bool = False

    @classmethod
    def for_agent(cls, **kw: Any) -> ChannelConfig:
        kw.setdefault("max_resends", None)
        kw.setdefault("in_capacity", 100_000)
        return cls(**kw)


class _State(Enum):
    AWAITING = "awaiting"  # client: session type not yet known; agent: nothing started
    HANDSHAKING = "handshaking"
    READY = "ready"
    CLOSED = "closed"


class ChannelCore:
    """What both roles share; see the module docstring. Not used on its own."""

    """One side of a data channel. See the module docstring."""

    def __init__(
        self,
        role: Role,
        *,
        new_id: Callable[[], uuid.UUID],
        random_bytes: Callable[[int], bytes],
        config: ChannelConfig | None = None,
        session_id: str = "",
        target_id: str = "",
    ) -> None:
        self.role = role
        self.config = config or (
            ChannelConfig() if role is Role.CLIENT else ChannelConfig.for_agent()
        )
        self.session_id = session_id
        self.target_id = target_id
        self._new_id = new_id
        self._random = random_bytes
        self._client = role is Role.CLIENT
        self._send_type = (
            MessageType.INPUT_STREAM_DATA if self._client else MessageType.OUTPUT_STREAM_DATA
        )
        self._recv_type = (
            MessageType.OUTPUT_STREAM_DATA if self._client else MessageType.INPUT_STREAM_DATA
        )
        self._encrypts = _CLIENT_ENCRYPTS if self._client else _AGENT_ENCRYPTS
        self._state = _State.AWAITING
        # agent: the plugin accepts input (pty started, port connected); see set_ready()
        self._plugin_ready = True
        self._handshake_wanted = False  # agent started a handshake (so data is held until done)

        self._sender = SendBuffer(self.config)
        self._held: deque[tuple[int, bytes]] = deque()  # not yet numbered (before ready)
        self._expected = 0
        self._incoming: dict[int, Frame] = {}
        self._deferred_ack: Frame | None = None
        self._out: list[bytes] = []
        self._bad_frames = 0

        self._cipher: SessionCipher | None = None
        self.session_type = ""
        self.properties: Any = None
        self.agent_version = ""
        self.client_version = ""
        self._kms: pl.KMSAction | None = None
        self._unknown_actions: tuple[str, ...] = ()
        self._kms_context: dict[str, str] = {}
        self._challenge_ack = False
        self._challenge: bytes = b""
        self._handshake_started = 0.0
        self._handshake_deadline: float | None = None
        self._customer_message = ""
        self.frames_received = 0

    # ------------------------------------------------------------------ properties

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def ready(self) -> bool:
        """Session data flows (handshake done or skipped)."""
        return self._state is _State.READY

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    @property
    def paused(self) -> bool:
        return self._sender.paused

    @property
    def rtt(self) -> float:
        return self._sender.rtt

    @property
    def rttvar(self) -> float:
        return self._sender.rttvar

    @property
    def rto(self) -> float:
        """The current retransmission timeout (seconds)."""
        return self._sender.rto

    @property
    def frames_sent(self) -> int:
        return self._sender.frames_sent

    @property
    def frames_resent(self) -> int:
        return self._sender.frames_resent

    @property
    def in_flight(self) -> int:
        """Frames numbered but not yet acknowledged (the send window in use)."""
        return len(self._sender)

    @property
    def held(self) -> int:
        """Payloads waiting for the session to become ready."""
        return len(self._held)

    def data_to_send(self) -> list[bytes]:
        """Binary websocket messages to write, in order."""
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ sending

    def send(self, payload_type: int, data: bytes, now: float) -> None:
        """Queue session data. Output is cut into ``max_payload`` pieces; before the session is
        ready it is held (unnumbered) and sent when it becomes ready."""
        if self._state is _State.CLOSED:
            raise ChannelStateError("data channel is closed")
        if not data:
            return  # the agent cannot take an empty payload (PROTOCOL.md §3.2)
        step = self.config.max_payload
        for i in range(0, len(data), step):
            chunk = data[i : i + step]
            if self._state is _State.READY and not self._held:
                self._send_now(payload_type, chunk, now)
            else:
                self._held.append((payload_type, chunk))

    def send_size(self, cols: int, rows: int, now: float) -> None:
        self.send(PayloadType.SIZE, pl.encode_size(cols, rows), now)

    def send_flag(self, flag: int, now: float) -> None:
        self.send(PayloadType.FLAG, pl.encode_flag(flag), now)

    def _send_now(self, payload_type: int, data: bytes, now: float) -> None:
        if self._cipher is not None and payload_type in self._encrypts:
            data = self._cipher.encrypt(data)
        seq = self._sender.number()
        flags = _SYN_FLAG if (seq == 0 and not self._client) else 0
        wire = self._sender.add(
            seq, self._encode(self._send_type, seq, flags, payload_type, data, now), now
        )
        if wire is not None:
            self._out.append(wire)

    def _encode(
        self, mtype: str, seq: int, flags: int, ptype: int, payload: bytes, now: float
    ) -> bytes:
        created = int(now * 1000)
        return encode_message(
            mtype, seq, flags, self._new_id(), created if created > 0 else 1, ptype, payload
        )

    def send_session_state(self, state: str, now: float) -> None:
        """Agent: ``agent_session_state`` (Connected first; Terminating before dropping)."""
        payload = pl.SessionState(state, self.session_id).encode()
        self._out.append(
            self._encode(MessageType.AGENT_SESSION_STATE, 0, _ACK_FLAGS, 0, payload, now)
        )

    def _ack(self, frame: Frame, now: float) -> None:
        payload = pl.Ack(frame.message_type, str(frame.message_id), frame.sequence_number).encode()
        self._out.append(self._encode(MessageType.ACKNOWLEDGE, 0, _ACK_FLAGS, 0, payload, now))

    def _become_ready(self, now: float) -> None:
        self._state = _State.READY
        self._handshake_deadline = None
        while self._held and self._state is _State.READY:
            ptype, data = self._held.popleft()
            self._send_now(ptype, data, now)

    def close(self) -> None:
        """Stop: nothing more is sent or processed. Pending output stays in data_to_send()."""
        self._state = _State.CLOSED
        self._handshake_deadline = None

    def _fail(self, event: Event) -> list[Event]:
        self.close()
        return [event]

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` must run, or None."""
        if self._state is _State.CLOSED:
            return None
        resend, handshake = self._sender.deadline(), self._handshake_deadline
        if handshake is None:
            return resend
        return handshake if resend is None or handshake < resend else resend

    def handle_timer(self, now: float) -> list[Event]:
        if self._state is _State.CLOSED:
            return []
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            return self._fail(HandshakeFailed("timed out waiting for the client's handshake"))
        wires, gave_up = self._sender.expire(now)
        self._out.extend(wires)
        if gave_up is not None:
            return self._fail(ResendTimedOut(*gave_up))
        return []

    def _on_ack(self, frame: Frame, now: float) -> list[Event]:
        try:
            ack = pl.Ack.decode(frame.payload)
        except pl.PayloadError as exc:
            return self._fail(ProtocolError(str(exc)))
        self._sender.ack(ack.sequence_number, now)
        return self._resume(now)

    # ------------------------------------------------------------------ receiving

    def receive_frame(self, data: bytes, now: float) -> list[Event]:
        """Process one websocket binary message; returns the events it produced."""
        if self._state is _State.CLOSED:
            return []
        try:
            frame = decode_frame(data)
        except DigestMismatch as exc:
            self._bad_frames += 1
            if self._bad_frames > self.config.max_bad_frames:
                return self._fail(ProtocolError(f"too many corrupted frames ({exc})"))
            return [FrameDropped(str(exc))]
        except FrameError as exc:
            return self._fail(ProtocolError(f"malformed frame from the network: {exc}"))
        self.frames_received += 1
        mtype = frame.message_type
        if mtype == self._recv_type:
            return self._on_stream(frame, now)
        if mtype == MessageType.ACKNOWLEDGE:
            return self._on_ack(frame, now)
        if mtype == MessageType.CHANNEL_CLOSED:
            try:
                info = pl.ChannelClosedInfo.decode(frame.payload)
            except pl.PayloadError:
                info = pl.ChannelClosedInfo("", "", self.session_id)
            self.close()
            return [ChannelClosed(info.output)]
        if mtype == MessageType.PAUSE_PUBLICATION:
            return [PublicationPaused()] if self._sender.pause() else []
        if mtype == MessageType.START_PUBLICATION:
            return self._resume(now)
        if mtype == MessageType.AGENT_SESSION_STATE and self._client:
            try:
                return [AgentSessionState(pl.SessionState.decode(frame.payload).state)]
            except pl.PayloadError as exc:
                return self._fail(ProtocolError(str(exc)))
        return []  # unknown or misdirected types are ignored, as the reference does

    def _resume(self, now: float) -> list[Event]:
        wires = self._sender.resume(now)
        if wires is None:
            return []
        self._out.extend(wires)
        return [PublicationResumed()]

    def _on_stream(self, frame: Frame, now: float) -> list[Event]:
        events = self._resume(now)
        seq = frame.sequence_number
        if seq < self._expected:
            deferred = self._deferred_ack
            if deferred is None or deferred.sequence_number != seq:
                self._ack(frame, now)  # duplicate: re-ack so the sender stops resending
            return events
        if seq > self._expected:
            if seq in self._incoming:
                self._ack(frame, now)
            elif len(self._incoming) < self.config.in_capacity:
                self._incoming[seq] = frame
                self._ack(frame, now)
            else:
                events.append(FrameDropped(f"reorder buffer full, seq {seq} dropped"))
            return events
        if self._process(frame, now, events):
            self._drain(now, events)
        return events

    def _drain(self, now: float, events: list[Event]) -> None:
        """Deliver buffered frames that are now in order (they were acked on arrival)."""
        while self._state is not _State.CLOSED and self._expected in self._incoming:
            frame = self._incoming.pop(self._expected)
            if not self._process(frame, now, events, buffered=True):
                self._incoming[frame.sequence_number] = frame  # plugin not ready: keep it
                return

    def _process(
        self, frame: Frame, now: float, events: list[Event], buffered: bool = False
    ) -> bool:
        """Handle the in-order frame; returns False if it was neither acked nor consumed."""
        handler = self._process_client if self._client else self._process_agent
        outcome = handler(frame, now, events, buffered)
        if outcome is None:
            return False
        if outcome and not buffered and self._state is not _State.CLOSED:
            self._ack(frame, now)
        self._expected += 1
        if self._state is _State.READY and self._held:
            self._become_ready(now)
        return True

    # ------------------------------------------------------------------ the roles' part

    def _process_client(
        self, frame: Frame, now: float, events: list[Event], buffered: bool
    ) -> bool | None:
        raise NotImplementedError  # pragma: no cover  (handshake.ClientRole)

    def _process_agent(
        self, frame: Frame, now: float, events: list[Event], buffered: bool
    ) -> bool | None:
        raise NotImplementedError  # pragma: no cover  (handshake.AgentRole)
