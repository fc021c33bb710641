"""The handshake of each role (PROTOCOL.md §5–§6).

Client: answer the agent's HandshakeRequest (session type, KMS action with the random
challenge, unknown actions refused), decrypt and re-encrypt the challenge, and become ready on
HandshakeComplete. Agent: send the HandshakeRequest, check the response and, with KMS, the
challenge answer, then complete; input before its plugin is ready is neither acked nor used.
"""

from __future__ import annotations

from typing import Any

from . import payloads as pl
from .core import (
    _AGENT_ENCRYPTS,
    _CLIENT_ENCRYPTS,
    _HANDSHAKE_TYPES,
    REQUIRE_CHALLENGE_ERROR,
    SESSION_TYPES,
    ChannelCore,
    _State,
)
from .crypto import DecryptError
from .events import (
    DataKeyNeeded,
    DataKeyToDecrypt,
    Event,
    FrameDropped,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolError,
    SessionReady,
    StreamData,
)
from .frames import Frame, PayloadType

__all__ = ["AgentRole", "ClientRole"]


class ClientRole(ChannelCore):
    """The client's side of the handshake and of incoming session data."""

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


class AgentRole(ChannelCore):
    """The agent's side of the handshake and of incoming session data."""

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
