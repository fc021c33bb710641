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
    "encode_message",
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
_TWO_U32 = struct.Struct(">II")  # PayloadType and PayloadLength of a 116-byte header
# The same 112 bytes as _HEAD, with the message id read as its two (swapped) 64-bit halves.
_UNPACK = struct.Struct(">I32sIQqQQQ32s")
_TYPES: dict[bytes, str] = {}


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


_PADDED: dict[tuple[str, int], bytes] = {}
_FULL = struct.Struct(">I32sIQqQ16s32sII")  # the whole 116-byte header plus PayloadLength
_sha256 = hashlib.sha256


def _pad_type(message_type: str, header_length: int) -> bytes:
    key = (message_type, header_length)
    padded = _PADDED.get(key)
    if padded is not None:
        return padded
    raw = message_type.encode("ascii")
    if not raw or len(raw) > _TYPE_LEN:
        raise BadHeader(f"message type {message_type!r} must be 1..32 ASCII characters")
    padded = raw.ljust(_TYPE_LEN, b" " if header_length == HEADER_LENGTH else b"\x00")
    if len(_PADDED) < 64:  # the handful of real types; odd ones are not kept
        _PADDED[key] = padded
    return padded


def _swap_halves(b: bytes) -> bytes:
    return b[8:16] + b[0:8]


def encode_message(
    message_type: str,
    sequence_number: int,
    flags: int,
    message_id: uuid.UUID,
    created_date: int,
    payload_type: int,
    payload: bytes,
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """Serialize a 116-byte-header agent message from its fields, without building a
    :class:`Frame`: the same bytes as :func:`encode_frame` of the same fields (the hot path of
    every frame sent)."""
    mid = message_id.bytes
    return (
        _FULL.pack(
            HEADER_LENGTH,
            _pad_type(message_type, HEADER_LENGTH),
            schema_version,
            created_date,
            sequence_number,
            flags,
            mid[8:16] + mid[0:8],
            _sha256(payload).digest(),
            payload_type,
            len(payload),
        )
        + payload
    )


def encode_frame(frame: Frame) -> bytes:
    """Serialize ``frame`` exactly as the reference client and agent do.

    The digest is always computed from the payload. ``header_length`` 112 produces the service's
    short layout (NUL-padded type, no PayloadType field), which only a simulated service sends.
    """
    hl = frame.header_length
    if hl == HEADER_LENGTH:
        return encode_message(
            frame.message_type,
            frame.sequence_number,
            frame.flags,
            frame.message_id,
            frame.created_date,
            frame.payload_type,
            frame.payload,
            frame.schema_version,
        )
    if hl != SERVICE_HEADER_LENGTH:
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
    return head + _U32.pack(len(frame.payload)) + frame.payload


def _message_type(raw_type: bytes) -> str:
    """The MessageType field stripped of NULs and spaces at both ends (remembered if valid)."""
    try:
        message_type = raw_type.strip(b"\x00").strip().strip(b"\x00").decode("ascii")
    except UnicodeDecodeError:
        raise BadHeader("message type is not ASCII") from None
    if not message_type:
        raise BadHeader("message type is empty")
    if len(_TYPES) < 64:  # the handful of real types; odd ones are not kept
        _TYPES[raw_type] = message_type
    return message_type


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
    hl, raw_type, schema, created, seq, flags, id_low, id_high, digest = _UNPACK.unpack_from(data)
    if hl < SERVICE_HEADER_LENGTH or hl > 4096:
        raise BadHeader(f"header length {hl} is out of range")
    if len(data) < hl + 4:
        raise TruncatedFrame(f"frame of {len(data)} bytes ends inside its {hl}-byte header")
    message_type = _TYPES.get(raw_type) or _message_type(raw_type)
    if created == 0:
        raise BadHeader("created date is zero")
    if hl == HEADER_LENGTH:
        payload_type, plen = _TWO_U32.unpack_from(data, HEADER_LENGTH - 4)
    else:
        payload_type = _U32.unpack_from(data, SERVICE_HEADER_LENGTH)[0] if hl > HEADER_LENGTH else 0
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
        message_id=uuid.UUID(int=(id_high << 64) | id_low),  # the wire swaps the halves
        created_date=created,
        payload_type=payload_type,
        payload=payload,
        schema_version=schema,
        header_length=hl,
        digest=digest,
    )
