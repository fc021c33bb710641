"""The Session Manager data channel as a sans-I/O state machine, for either role.

A :class:`DataChannel` is fed whole websocket binary messages with :meth:`receive_frame` and
the current time; it returns events, and queues binary messages for :meth:`data_to_send`.
Timers go through :meth:`get_timer` / :meth:`handle_timer`. Ids, randomness and time are
injected, so the same code runs the client (``ssmtui connect``) and the demo fleet's agents, and
tests drive it on a virtual clock.

What it implements (PROTOCOL.md §4–§6, vectors/README.md):

* one sequence counter per direction from 0, shared by every payload type;
* an ``acknowledge`` for every accepted stream frame, duplicates re-acked, frames ahead of the
  expected one acked at once and buffered, then delivered exactly once and in order;
* an outgoing buffer resent on the reference RTT/RTO rules (byte-identical retransmissions);
* pause/start publication (never drops data: new frames are numbered and held);
* the handshake of both roles, with KMS session encryption and the random challenge;
* the agent's rules: input before its plugin is ready is neither acked nor used, and non-handshake
  input during a handshake is acked and discarded. A client therefore holds session data until
  the session type is known (:class:`~ssmtui.protocol.events.SessionReady`).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import payloads as pl
from .crypto import CounterNonces, DecryptError, RandomNonces, SessionCipher
from .events import (
    AgentSessionState,
    ChannelClosed,
    DataKeyNeeded,
    DataKeyToDecrypt,
    Event,
    FrameDropped,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolError,
    PublicationPaused,
    PublicationResumed,
    ResendTimedOut,
    SessionReady,
    StreamData,
)
from .frames import (
    DigestMismatch,
    Frame,
    FrameError,
    MessageType,
    PayloadType,
    decode_frame,
    encode_frame,
)
from .reliability import SendBuffer

__all__ = ["ChannelConfig", "ChannelStateError", "DataChannel", "Role"]

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


class DataChannel:
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
        return encode_frame(
            Frame(
                message_type=mtype,
                sequence_number=seq,
                flags=flags,
                message_id=self._new_id(),
                created_date=max(1, int(now * 1000)),
                payload_type=ptype,
                payload=payload,
            )
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
        deadlines = [self._sender.deadline(), self._handshake_deadline]
        return min((d for d in deadlines if d is not None), default=None)

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

    # ------------------------------------------------------------------ client role

    def _process_client(
        self, frame: Frame, now: float, events: list[Event], buffered: bool
    ) -> bool | None:
        ptype = frame.payload_type
        if ptype == PayloadType.HANDSHAKE_REQUEST:
            self._ack(frame, now)
            events.extend(self._on_handshake_request(frame.payload, now))
            return False
        if ptype == PayloadType.ENC_CHALLENGE_REQUEST:
            self._ack(frame, now)
            events.extend(self._on_challenge_request(frame.payload, now))
            return False
        if ptype == PayloadType.HANDSHAKE_COMPLETE:
            self._ack(frame, now)
            events.extend(self._on_handshake_complete(frame.payload, now))
            return False
        if self._state is _State.AWAITING and ptype == PayloadType.OUTPUT:
            # No handshake: the first output makes this a shell (PROTOCOL.md §5.5).
            self.session_type = "Standard_Stream"
            self._state = _State.READY
            events.append(SessionReady(self.session_type, None, self.agent_version, False))
        if self._state is not _State.READY and not buffered:
            return None  # not ready for session data: no ack, the agent resends
        data = frame.payload
        if self._cipher is not None and ptype in _AGENT_ENCRYPTS:
            try:
                data = self._cipher.decrypt(data)
            except DecryptError as exc:
                events.extend(self._fail(ProtocolError(f"seq {frame.sequence_number}: {exc}")))
                return None
        events.append(StreamData(ptype, data, frame.sequence_number))
        return True

    def _on_handshake_request(self, payload: bytes, now: float) -> list[Event]:
        try:
            req = pl.HandshakeRequest.decode(payload)
        except pl.PayloadError as exc:
            return self._fail(ProtocolError(str(exc)))
        self.agent_version = req.agent_version
        self.session_type = req.session_type
        self.properties = req.properties
        self._state = _State.HANDSHAKING
        self._kms = req.kms
        if req.kms is not None:
            context = {"aws:ssm:SessionId": self.session_id, "aws:ssm:TargetId": self.target_id}
            self._challenge_ack = (
                self.config.acknowledge_challenge and req.kms.challenge is not None
            )
            if self._challenge_ack:
                assert req.kms.challenge is not None
                context["aws:ssm:RandomChallenge"] = req.kms.challenge
            self._kms_context = context
            self._unknown_actions = req.unknown_actions
            return [DataKeyNeeded(req.kms.key_id, dict(context))]
        self._unknown_actions = req.unknown_actions
        return self._respond(now, None)

    def provide_data_key(self, plaintext: bytes, ciphertext: bytes, now: float) -> list[Event]:
        """Client: the GenerateDataKey result. Agent: the Decrypt result (``ciphertext`` unused)."""
        if self._state is not _State.HANDSHAKING or self._kms is None:
            raise ChannelStateError("no data key was asked for")
        if self._client:
            self._cipher = SessionCipher(plaintext, client=True, nonces=RandomNonces(self._random))
            result: dict[str, Any] = {
                "KMSCipherTextKey": pl.b64encode(ciphertext),
                "KMSCipherTextHash": None,
            }
            if self._challenge_ack:
                result["ChallengeAcknowledgement"] = True
            return self._respond(now, pl.ProcessedAction(pl.KMS_ACTION, result=result))
        self._cipher = SessionCipher(
            plaintext, client=False, nonces=CounterNonces(self._random(12))
        )
        if self._deferred_ack is not None:
            self._ack(self._deferred_ack, now)
            self._deferred_ack = None
        self._challenge = self._random(64)
        blob = self._cipher.encrypt(self._challenge)
        self._handshake_deadline = now + self.config.handshake_timeout
        self._send_now(PayloadType.ENC_CHALLENGE_REQUEST, pl.encode_challenge(blob), now)
        return []

    def reject_data_key(self, error: str, now: float) -> list[Event]:
        """The KMS call failed. Client: tell the agent (it cancels the session)."""
        if self._client and self._state is _State.HANDSHAKING:
            action = pl.ProcessedAction(pl.KMS_ACTION, pl.ActionStatus.FAILED, None, error)
            self._respond(now, action)
        return self._fail(HandshakeFailed(f"KMS encryption failed: {error}"))

    def _respond(self, now: float, kms_action: pl.ProcessedAction | None) -> list[Event]:
        if self.session_type in SESSION_TYPES:
            actions = [pl.ProcessedAction(pl.SESSION_TYPE_ACTION)]
        else:
            actions = [
                pl.ProcessedAction(
                    pl.SESSION_TYPE_ACTION,
                    pl.ActionStatus.FAILED,
                    error=f"Unknown session type {self.session_type}",
                )
            ]
        if kms_action is not None:
            actions.append(kms_action)
        actions.extend(
            pl.ProcessedAction(
                kind, pl.ActionStatus.UNSUPPORTED, error=f"Unsupported action {kind}"
            )
            for kind in self._unknown_actions
        )
        response = pl.HandshakeResponse(self.config.client_version, tuple(actions))
        self._send_now(PayloadType.HANDSHAKE_RESPONSE, response.encode(), now)
        if any(a.status != pl.ActionStatus.SUCCESS for a in actions[:1]):
            return self._fail(HandshakeFailed(f"unsupported session type {self.session_type!r}"))
        return []

    def _on_challenge_request(self, payload: bytes, now: float) -> list[Event]:
        if self._cipher is None:
            return self._fail(ProtocolError("encryption challenge before any data key"))
        try:
            secret = self._cipher.decrypt(pl.decode_challenge(payload))
        except (pl.PayloadError, DecryptError) as exc:
            return self._fail(ProtocolError(f"encryption challenge: {exc}"))
        answer = pl.encode_challenge(self._cipher.encrypt(secret))
        self._send_now(PayloadType.ENC_CHALLENGE_RESPONSE, answer, now)
        return []

    def _on_handshake_complete(self, payload: bytes, now: float) -> list[Event]:
        try:
            done = pl.HandshakeComplete.decode(payload)
        except pl.PayloadError as exc:
            return self._fail(ProtocolError(str(exc)))
        self._become_ready(now)
        return [
            HandshakeCompleted(done.customer_message, self.encrypted, self.config.client_version),
            SessionReady(self.session_type, self.properties, self.agent_version, True),
        ]

    # ------------------------------------------------------------------ agent role

    def set_ready(self, ready: bool, now: float) -> list[Event]:
        """Agent: whether the plugin takes input now (pty started, destination connected).
        Becoming ready delivers input that was buffered (and acked) meanwhile."""
        self._plugin_ready = ready
        events: list[Event] = []
        if ready:
            self._drain(now, events)
        return events

    def start(self, now: float) -> None:
        """Agent, no handshake (plain shell): session data may flow at once."""
        self._become_ready(now)

    def start_handshake(
        self,
        now: float,
        session_type: str,
        properties: Any = None,
        kms_key_id: str | None = None,
    ) -> None:
        """Agent: send the HandshakeRequest (with a KMS action and challenge if ``kms_key_id``)."""
        kms = None
        if kms_key_id:
            kms = pl.KMSAction(kms_key_id, pl.b64encode(self._random(16)))
        self._kms = kms
        self.session_type = session_type
        self.properties = properties
        request = pl.HandshakeRequest(self.config.agent_version, session_type, properties, kms)
        self._state = _State.HANDSHAKING
        self._handshake_started = now
        self._handshake_deadline = now + self.config.handshake_timeout
        self._send_now(PayloadType.HANDSHAKE_REQUEST, request.encode(), now)

    def _process_agent(
        self, frame: Frame, now: float, events: list[Event], buffered: bool
    ) -> bool | None:
        ptype = frame.payload_type
        if self._state is _State.HANDSHAKING:
            if ptype == PayloadType.HANDSHAKE_RESPONSE:
                return self._on_handshake_response(frame, now, events)
            if ptype == PayloadType.ENC_CHALLENGE_RESPONSE:
                events.extend(self._on_challenge_response(frame.payload, now))
                return not self.closed
            return True  # acked and discarded, as the real agent does during a handshake
        if ptype in _HANDSHAKE_TYPES:
            return True
        if not self._plugin_ready or self._state is not _State.READY:
            return None
        data = frame.payload
        if self._cipher is not None and ptype in _CLIENT_ENCRYPTS:
            try:
                data = self._cipher.decrypt(data)
            except DecryptError as exc:
                events.append(FrameDropped(f"seq {frame.sequence_number}: {exc}"))
                return None
        events.append(StreamData(ptype, data, frame.sequence_number))
        return True

    def _on_handshake_response(self, frame: Frame, now: float, events: list[Event]) -> bool:
        try:
            resp = pl.HandshakeResponse.decode(frame.payload)
            kms = resp.kms_result()
        except pl.PayloadError as exc:
            events.extend(self._fail(HandshakeFailed(str(exc))))
            return True
        self.client_version = resp.client_version
        failed = [a for a in resp.actions if a.status != pl.ActionStatus.SUCCESS]
        if failed:
            events.extend(self._fail(HandshakeFailed(pl.join_actions(failed))))
            return True
        if self._kms is None:
            self._complete(now, events)
            return True
        if kms is None:
            events.extend(self._fail(HandshakeFailed("client did not answer the KMS action")))
            return True
        blob, challenge_ack = kms
        if self.config.require_challenge and not challenge_ack:
            events.extend(self._fail(HandshakeFailed(REQUIRE_CHALLENGE_ERROR)))
            return True
        context = {"aws:ssm:SessionId": self.session_id, "aws:ssm:TargetId": self.target_id}
        if challenge_ack and self._kms.challenge is not None:
            context["aws:ssm:RandomChallenge"] = self._kms.challenge
        self._handshake_deadline = None  # the KMS call is the driver's; it times it
        self._deferred_ack = frame  # the agent acks only after kms:Decrypt returned
        events.append(DataKeyToDecrypt(self._kms.key_id, blob, context))
        return False

    def _on_challenge_response(self, payload: bytes, now: float) -> list[Event]:
        assert self._cipher is not None
        try:
            answer = self._cipher.decrypt(pl.decode_challenge(payload))
        except (pl.PayloadError, DecryptError) as exc:
            return self._fail(HandshakeFailed(f"encryption challenge failed: {exc}"))
        if answer != self._challenge:
            return self._fail(HandshakeFailed("encryption challenge answer does not match"))
        events: list[Event] = []
        self._complete(now, events)
        return events

    def _complete(self, now: float, events: list[Event]) -> None:
        message = pl.KMS_CUSTOMER_MESSAGE if self._cipher is not None else ""
        elapsed = int(max(0.0, now - self._handshake_started) * 1e9)
        self._send_now(
            PayloadType.HANDSHAKE_COMPLETE, pl.HandshakeComplete(elapsed, message).encode(), now
        )
        self._become_ready(now)
        events.append(HandshakeCompleted(message, self.encrypted, self.client_version))
