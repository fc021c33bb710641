"""Events a :class:`~ssmtui.protocol.channel.DataChannel` hands to its driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AgentSessionState",
    "ChannelClosed",
    "DataKeyNeeded",
    "DataKeyToDecrypt",
    "Event",
    "FrameDropped",
    "HandshakeCompleted",
    "HandshakeFailed",
    "ProtocolError",
    "PublicationPaused",
    "PublicationResumed",
    "ResendTimedOut",
    "SessionReady",
    "StreamData",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every channel event."""


@dataclass(frozen=True, slots=True)
class StreamData(Event):
    """An in-order stream payload for the session layer, decrypted; delivered exactly once."""

    payload_type: int
    data: bytes
    sequence_number: int


@dataclass(frozen=True, slots=True)
class SessionReady(Event):
    """Client: the session type is known and data may flow (after the handshake, or inferred as a
    shell from the first output when the agent sent no handshake)."""

    session_type: str
    properties: Any
    agent_version: str
    handshake: bool


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(Event):
    customer_message: str
    encrypted: bool
    client_version: str = ""


@dataclass(frozen=True, slots=True)
class HandshakeFailed(Event):
    """The handshake cannot complete; the session is over (the channel is closed)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DataKeyNeeded(Event):
    """Client: call KMS GenerateDataKey(KeyId, NumberOfBytes=64, EncryptionContext), then
    :meth:`DataChannel.provide_data_key` (or :meth:`DataChannel.reject_data_key`)."""

    key_id: str
    encryption_context: dict[str, str]


@dataclass(frozen=True, slots=True)
class DataKeyToDecrypt(Event):
    """Agent: call KMS Decrypt(ciphertext, context, KeyId), then
    :meth:`DataChannel.provide_data_key` (or :meth:`DataChannel.reject_data_key`)."""

    key_id: str
    ciphertext: bytes = field(repr=False)
    encryption_context: dict[str, str]


@dataclass(frozen=True, slots=True)
class AgentSessionState(Event):
    state: str


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    """The service closed the channel (``channel_closed``); ``output`` is its message."""

    output: str


@dataclass(frozen=True, slots=True)
class PublicationPaused(Event):
    pass


@dataclass(frozen=True, slots=True)
class PublicationResumed(Event):
    pass


@dataclass(frozen=True, slots=True)
class FrameDropped(Event):
    """A frame was dropped without an ack (bad digest, no buffer room, failed decryption on the
    agent side); the sender's retransmission may still deliver it."""

    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolError(Event):
    """The peer broke the protocol; the channel is closed and the session must end."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResendTimedOut(Event):
    """A frame was resent ``max_resends`` times without an ack; the channel is closed."""

    sequence_number: int
    resends: int
