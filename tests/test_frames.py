"""Frame codec: golden vectors, every recorded frame, round trips and fuzzing."""

from __future__ import annotations

import contextlib
import hashlib
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmtui.protocol.frames import (
    BadHeader,
    DigestMismatch,
    Frame,
    FrameError,
    FrameTooLarge,
    MessageType,
    TruncatedFrame,
    decode_frame,
    encode_frame,
)
from tests.vectors import all_traces, golden_frames, load_trace

PROTOCOL_VECTOR = bytes.fromhex(
    "00000074"
    "696e7075745f73747265616d5f64617461202020202020202020202020202020"
    "00000001"
    "0000018bcfe5687b"
    "0000000000000005"
    "0000000000000000"
    "8899aabbccddeeff0011223344556677"
    "bee73bd50eb0edee3592c11e8d8f965d45e0ec95e7659a7a9b35c42f864a3e75"
    "00000001"
    "00000007"
    "6c73202d6c610d"
)


def test_protocol_md_vector_encodes_byte_identical() -> None:
    frame = Frame(
        message_type="input_stream_data",
        sequence_number=5,
        flags=0,
        message_id=uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"),
        created_date=1700000000123,
        payload_type=1,
        payload=b"ls -la\r",
    )
    assert encode_frame(frame) == PROTOCOL_VECTOR
    assert decode_frame(PROTOCOL_VECTOR) == frame


@pytest.mark.parametrize("vec", golden_frames(), ids=lambda v: v["name"])
def test_golden_frames(vec: dict) -> None:
    raw = bytes.fromhex(vec["hex"])
    if vec["ws"] == "text":
        return
    frame = decode_frame(raw)
    fields = vec["fields"]
    assert frame.message_type == fields["MessageType"]
    assert frame.sequence_number == fields["SequenceNumber"]
    assert frame.flags == fields["Flags"]
    assert str(frame.message_id) == fields["MessageId"]
    assert frame.created_date == fields["CreatedDate"]
    assert frame.payload_type == fields["PayloadType"]
    assert frame.header_length == 116
    assert frame.digest_ok
    assert encode_frame(frame) == raw


def _every_recorded_binary_frame() -> list[tuple[str, bytes]]:
    out = []
    for path in all_traces():
        trace = load_trace(path)
        for i, rec in enumerate(trace.records):
            if rec.ws == "bin":
                out.append((f"{path.stem}#{i}", rec.raw))
    return out


RECORDED = _every_recorded_binary_frame()


def test_there_are_many_recorded_frames() -> None:
    assert len(RECORDED) > 500


@pytest.mark.parametrize("raw", [r for _, r in RECORDED], ids=[n for n, _ in RECORDED])
def test_every_recorded_frame_round_trips(raw: bytes) -> None:
    frame = decode_frame(raw)
    assert encode_frame(frame) == raw


def test_service_frame_header_112_nul_padded() -> None:
    frame = Frame(
        message_type="channel_closed",
        sequence_number=0,
        flags=3,
        message_id=uuid.UUID(int=7),
        created_date=1,
        payload_type=0,
        payload=b'{"Output":"bye"}',
        header_length=112,
    )
    raw = encode_frame(frame)
    assert raw[:4] == b"\x00\x00\x00\x70"
    assert raw[4:36] == b"channel_closed".ljust(32, b"\x00")
    assert len(raw) == 116 + len(frame.payload)
    back = decode_frame(raw)
    assert back.message_type == "channel_closed" and back.payload == frame.payload
    assert back.payload_type == 0


def test_type_right_aligned_with_leading_nuls_is_accepted() -> None:
    raw = bytearray(PROTOCOL_VECTOR)
    raw[4:36] = b"input_stream_data".rjust(32, b"\x00")
    assert decode_frame(bytes(raw)).message_type == "input_stream_data"


def test_trailing_bytes_are_ignored() -> None:
    assert decode_frame(PROTOCOL_VECTOR + b"junk").payload == b"ls -la\r"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:50], TruncatedFrame),
        (lambda b: b[:118], TruncatedFrame),
        (lambda b: b[:-1], TruncatedFrame),
        (lambda b: b"\x00\x00\x00\x00" + b[4:], BadHeader),
        (lambda b: b"\x00\x00\x10\x01" + b[4:], BadHeader),
        (lambda b: b"\x00\x00\x00\xff" + b[4:], TruncatedFrame),
        (lambda b: b[:4] + b" " * 32 + b[36:], BadHeader),
        (lambda b: b[:4] + b"\xff" * 32 + b[36:], BadHeader),
        (lambda b: b[:40] + b"\x00" * 8 + b[48:], BadHeader),
        (lambda b: b[:80] + b"\x00" * 32 + b[112:], DigestMismatch),
        (lambda b: b[:-1] + b"X", DigestMismatch),
        (lambda b: b[:116] + struct.pack(">I", 2**31) + b[120:], FrameTooLarge),
    ],
)
def test_bad_frames_raise_typed_errors(mutate, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        decode_frame(mutate(PROTOCOL_VECTOR))


def test_publication_frames_skip_digest() -> None:
    frame = Frame("pause_publication", 0, 0, uuid.UUID(int=1), 5, 0, b"x")
    raw = bytearray(encode_frame(frame))
    raw[80:112] = b"\x00" * 32
    assert decode_frame(bytes(raw)).message_type == MessageType.PAUSE_PUBLICATION
    assert decode_frame(bytes(raw), verify_digest=False).payload == b"x"


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(BadHeader):
        encode_frame(Frame("", 0, 0, uuid.UUID(int=1), 5, 0, b"x"))
    with pytest.raises(BadHeader):
        encode_frame(Frame("x" * 33, 0, 0, uuid.UUID(int=1), 5, 0, b"x"))
    with pytest.raises(BadHeader):
        encode_frame(Frame("ok", 0, 0, uuid.UUID(int=1), 5, 0, b"x", header_length=100))


frames_st = st.builds(
    Frame,
    message_type=st.sampled_from([m.value for m in MessageType]),
    sequence_number=st.integers(-(2**63), 2**63 - 1),
    flags=st.integers(0, 2**64 - 1),
    message_id=st.uuids(),
    created_date=st.integers(1, 2**64 - 1),
    payload_type=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=3000),
)


@given(frames_st)
def test_round_trip(frame: Frame) -> None:
    raw = encode_frame(frame)
    back = decode_frame(raw)
    assert back == frame
    assert back.digest == hashlib.sha256(frame.payload).digest()
    assert encode_frame(back) == raw


@settings(max_examples=400)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_frame_errors(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


@settings(max_examples=400)
@given(frames_st, st.data())
def test_mutated_frames_raise_only_frame_errors(frame: Frame, data: st.DataObject) -> None:
    raw = bytearray(encode_frame(frame))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(FrameError):
        decode_frame(bytes(raw[:cut]))
