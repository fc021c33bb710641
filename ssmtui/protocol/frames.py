"""The binary agent message ("ClientMessage" / "AgentMessage") of the Session Manager data channel.

Every data-channel frame is one websocket binary message holding exactly one of these
(PROTOCOL.md §3). All header integers are big-endian; the layout is::

    0   4  HeaderLength   (116; service frames may use 112: no PayloadType field)
    4  32  MessageType    ASCII, right-padded with spaces (service frames: NULs)
   36   4  SchemaVersion  1
   40   8  CreatedDate    ms since the epoch
   48   8  SequenceNumber signed
   56   8  Flags
   64  16  MessageId      UUID with its 8-byte halves swapped
   80  32  PayloadDigest  SHA-256 of the payload as sent
  112   4  PayloadType
  116   4  PayloadLength
  120   n  Payload
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

__all__ = [
    "HEADER_LENGTH",
    "MAX_PAYLOAD",
    "BadHeader",
    "DigestMismatch",
    "Flag",
    "Frame",
    "FrameError",
    "FrameTooLarge",
    "MessageType",
    "PayloadType",
    "TruncatedFrame",
    "decode_frame",
    "encode_frame",
]

HEADER_LENGTH = 116
SERVICE_HEADER_LENGTH = 112
SCHEMA_VERSION = 1
#: Frames larger than this are refused on decode. The agent accepts input payloads of any size
#: (4 MiB were seen to work); 8 MiB leaves room and still bounds memory per message.
MAX_PAYLOAD = 8 * 1024 * 1024
_TYPE_LEN = 32

_HEAD = struct.Struct(">I32sIQqQ16s32s")  # everything up to PayloadType
_U32 = struct.Struct(">I")


class MessageType(StrEnum):
    """Message types seen on the data channel (PROTOCOL.md §3.6)."""

    INPUT_STREAM_DATA = "input_stream_data"
    OUTPUT_STREAM_DATA = "output_stream_data"
    ACKNOWLEDGE = "acknowledge"
    CHANNEL_CLOSED = "channel_closed"
    START_PUBLICATION = "start_publication"
    PAUSE_PUBLICATION = "pause_publication"
    AGENT_SESSION_STATE = "agent_session_state"


class PayloadType(IntEnum):
    """PayloadType values (PROTOCOL.md §3.7)."""

    UNSET = 0
    OUTPUT = 1
    ERROR = 2
    SIZE = 3
    PARAMETER = 4
    HANDSHAKE_REQUEST = 5
    HANDSHAKE_RESPONSE = 6
    HANDSHAKE_COMPLETE = 7
    ENC_CHALLENGE_REQUEST = 8
    ENC_CHALLENGE_RESPONSE = 9
    FLAG = 10
    STDERR = 11
    EXIT_CODE = 12


class Flag(IntEnum):
    """Values carried by a PayloadType.FLAG payload (uint32 big-endian)."""

    DISCONNECT_TO_PORT = 1
    TERMINATE_SESSION = 2
    CONNECT_TO_PORT_ERROR = 3


class FrameError(ValueError):
    """A websocket message that is not a valid agent message."""


class TruncatedFrame(FrameError):
    """The message is shorter than its header or its PayloadLength says."""


class BadHeader(FrameError):
    """A header field holds a value no real peer produces (length, type, date)."""


class DigestMismatch(FrameError):
    """PayloadDigest is not the SHA-256 of the payload."""


class FrameTooLarge(FrameError):
    """PayloadLength is above the configured maximum."""


# Frames the service sends that need not satisfy validation (P skips it for these).
_UNVALIDATED = frozenset({MessageType.START_PUBLICATION, MessageType.PAUSE_PUBLICATION})


@dataclass(frozen=True, slots=True)
class Frame:
    """One agent message. ``message_type`` is the trimmed string, ``payload_type`` an int."""

    message_type: str
    sequence_number: int
    flags: int
    message_id: uuid.UUID
    created_date: int
    payload_type: int
    payload: bytes
    schema_version: int = SCHEMA_VERSION
    header_length: int = HEADER_LENGTH
    digest: bytes = field(default=b"", compare=False)

    @property
    def digest_ok(self) -> bool:
        return self.digest == hashlib.sha256(self.payload).digest()


def _pad_type(message_type: str, header_length: int) -> bytes:
    raw = message_type.encode("ascii")
    if not raw or len(raw) > _TYPE_LEN:
        raise BadHeader(f"message type {message_type!r} must be 1..32 ASCII characters")
    return raw.ljust(_TYPE_LEN, b" " if header_length == HEADER_LENGTH else b"\x00")


def _swap_halves(b: bytes) -> bytes:
    return b[8:16] + b[0:8]


def encode_frame(frame: Frame) -> bytes:
    """Serialize ``frame`` exactly as the reference client and agent do.

    The digest is always computed from the payload. ``header_length`` 112 produces the service's
    short layout (NUL-padded type, no PayloadType field), which only a simulated service sends.
    """
    hl = frame.header_length
    if hl not in (HEADER_LENGTH, SERVICE_HEADER_LENGTH):
        raise BadHeader(f"header length {hl} is not 116 or 112")
    head = _HEAD.pack(
        hl,
        _pad_type(frame.message_type, hl),
        frame.schema_version,
        frame.created_date,
        frame.sequence_number,
        frame.flags,
        _swap_halves(frame.message_id.bytes),
        hashlib.sha256(frame.payload).digest(),
    )
    ptype = _U32.pack(frame.payload_type) if hl == HEADER_LENGTH else b""
    return head + ptype + _U32.pack(len(frame.payload)) + frame.payload


def decode_frame(
    data: bytes, *, verify_digest: bool = True, max_payload: int = MAX_PAYLOAD
) -> Frame:
    """Parse one websocket binary message.

    Follows the robust rules of PROTOCOL.md §3.2: PayloadLength sits at offset HeaderLength and
    the payload right after it; HeaderLength 112 (service frames) has no PayloadType; the type is
    stripped of NULs and spaces at both ends; trailing bytes after the payload are ignored.
    Raises a :class:`FrameError` subclass, never anything else.
    """
    data = bytes(data)
    if len(data) < _HEAD.size:
        raise TruncatedFrame(f"frame of {len(data)} bytes is shorter than the 112-byte header")
    hl, raw_type, schema, created, seq, flags, raw_id, digest = _HEAD.unpack_from(data)
    if hl < SERVICE_HEADER_LENGTH or hl > 4096:
        raise BadHeader(f"header length {hl} is out of range")
    if len(data) < hl + 4:
        raise TruncatedFrame(f"frame of {len(data)} bytes ends inside its {hl}-byte header")
    try:
        message_type = raw_type.strip(b"\x00").strip().strip(b"\x00").decode("ascii")
    except UnicodeDecodeError:
        raise BadHeader("message type is not ASCII") from None
    if not message_type:
        raise BadHeader("message type is empty")
    if created == 0:
        raise BadHeader("created date is zero")
    payload_type = _U32.unpack_from(data, SERVICE_HEADER_LENGTH)[0] if hl >= HEADER_LENGTH else 0
    (plen,) = _U32.unpack_from(data, hl)
    if plen > max_payload:
        raise FrameTooLarge(f"payload of {plen} bytes exceeds the {max_payload}-byte limit")
    start = hl + 4
    if len(data) < start + plen:
        raise TruncatedFrame(f"payload length {plen} but only {len(data) - start} bytes follow")
    payload = data[start : start + plen]
    if (
        verify_digest
        and plen
        and message_type not in _UNVALIDATED
        and digest != hashlib.sha256(payload).digest()
    ):
        raise DigestMismatch(f"payload digest mismatch on {message_type} seq {seq}")
    return Frame(
        message_type=message_type,
        sequence_number=seq,
        flags=flags,
        message_id=uuid.UUID(bytes=_swap_halves(raw_id)),
        created_date=created,
        payload_type=payload_type,
        payload=payload,
        schema_version=schema,
        header_length=hl,
        digest=digest,
    )
