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

from typing import Any

from . import payloads as pl
from .core import (
    DEFAULT_AGENT_VERSION,
    DEFAULT_CLIENT_VERSION,
    REQUIRE_CHALLENGE_ERROR,
    SESSION_TYPES,
    ChannelConfig,
    ChannelStateError,
    Role,
    _State,
)
from .crypto import CounterNonces, RandomNonces, SessionCipher
from .events import Event
from .frames import PayloadType
from .handshake import AgentRole, ClientRole

__all__ = [
    "DEFAULT_AGENT_VERSION",
    "DEFAULT_CLIENT_VERSION",
    "REQUIRE_CHALLENGE_ERROR",
    "SESSION_TYPES",
    "ChannelConfig",
    "ChannelStateError",
    "DataChannel",
    "Role",
]


class DataChannel(ClientRole, AgentRole):
    """One side of a data channel. See the module docstring."""

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
