"""Fuzzing the parsers with a seeded generator: data-channel frames into a client-role
:class:`DataChannel`, random bytes into the smux layer, junk into the JSON payload parsers, and
garbage from a real websocket server into :class:`DataChannelConnection`.

Each must fail only in its documented way (events / PayloadError / SessionFailed / a
ConnectionLost with a reason), never raise anything else, never hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import DataChannel, Role
from ssmtui.protocol.events import DataKeyNeeded, FrameDropped, ProtocolError
from ssmtui.protocol.frames import (
    Frame,
    MessageType,
    PayloadType,
    encode_frame,
)
from ssmtui.protocol.smux import SessionFailed, SmuxSession
from ssmtui.transport.websocket import DataChannelConnection, StreamEndpoint

pytestmark = pytest.mark.timeout(60)

FRAMES = 100_000
MESSAGE_TYPES = [m.value for m in MessageType] + ["", "x" * 40, "output_stream_dat\x00"]


def report(text: str) -> str:
    print(f"\n[figure] {text}")
    return text


def _json_junk(rng: random.Random) -> bytes:
    """Payloads that are almost right: valid JSON of the wrong shape, deep nesting, bad
    base64, huge numbers, truncated JSON, non-UTF-8."""
    choices: list[Callable[[], Any]] = [
        lambda: {"AcknowledgedMessageType": rng.choice(["output_stream_data", 1, None])},
        lambda: {
            "AcknowledgedMessageType": "output_stream_data",
            "AcknowledgedMessageId": str(uuid.UUID(int=rng.getrandbits(128))),
            "AcknowledgedMessageSequenceNumber": rng.choice([-1, 0, 2**70, "3", 1.5, True]),
            "IsSequentialMessage": True,
        },
        lambda: {
            "AgentVersion": "3.3.987.0",
            "RequestedClientActions": [
                {
                    "ActionType": rng.choice(["SessionType", "KMSEncryption", "Nope", 3]),
                    "ActionParameters": rng.choice(
                        [
                            {"SessionType": rng.choice(["Port", "Standard_Stream", "?"])},
                            {"KMSKeyId": "k", "Challenge": rng.choice(["AAAA", "!!", 5])},
                            None,
                            [],
                            "x",
                        ]
                    ),
                }
                for _ in range(rng.randint(0, 3))
            ],
        },
        lambda: {"HandshakeTimeToComplete": rng.choice([1, -5, "x", None]), "CustomerMessage": 7},
        lambda: {"MessageType": "channel_closed", "Output": rng.choice(["bye", 5, None])},
        lambda: {"SessionState": rng.choice(["Connected", 1, None]), "SessionId": "s"},
        lambda: rng.choice([[], "str", 1, None, 1e308, {"a": {"b": [1, 2, {"c": None}]}}]),
    ]
    kind = rng.random()
    if kind < 0.6:
        data = json.dumps(rng.choice(choices)()).encode()
        if rng.random() < 0.2:
            data = data[: rng.randint(0, len(data))]
        return data
    if kind < 0.7:
        depth = rng.choice([10, 1000, 100_000])
        return b"[" * depth + b"]" * rng.choice([0, depth])
    if kind < 0.8:
        return b'{"a": "' + bytes(rng.getrandbits(8) for _ in range(20)) + b'"}'
    if kind < 0.9:
        return b"1" * rng.choice([10, 5000, 100_000])
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))


def _valid_frame(rng: random.Random, seq: int) -> bytes:
    mtype = rng.choice(
        [MessageType.OUTPUT_STREAM_DATA] * 4
        + [
            MessageType.ACKNOWLEDGE,
            MessageType.CHANNEL_CLOSED,
            MessageType.AGENT_SESSION_STATE,
            MessageType.PAUSE_PUBLICATION,
            MessageType.START_PUBLICATION,
            MessageType.INPUT_STREAM_DATA,
        ]
    )
    ptype = rng.choice([*PayloadType, 0, 99, 2**32 - 1])
    payload = (
        _json_junk(rng)
        if rng.random() < 0.6
        else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    )
    return encode_frame(
        Frame(
            message_type=mtype,
            sequence_number=seq,
            flags=rng.choice([0, 1, 2, 3]),
            message_id=uuid.UUID(int=rng.getrandbits(128)),
            created_date=rng.randint(1, 2**40),
            payload_type=ptype,
            payload=payload,
        )
    )


def _mutate(rng: random.Random, wire: bytes) -> tuple[str, bytes]:
    kind = rng.randrange(7)
    if kind == 0:
        return "valid", wire
    if kind == 1:
        return "truncated", wire[: rng.randint(0, len(wire) - 1)]
    if kind == 2:  # a payload byte changed, digest kept: bad digest
        if len(wire) <= 120:
            return "valid", wire
        b = bytearray(wire)
        b[rng.randrange(120, len(b))] ^= 1 + rng.randrange(255)
        return "bad-digest", bytes(b)
    if kind == 3:  # header fields flipped (lengths, type, dates)
        b = bytearray(wire)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(len(b), 120))] = rng.getrandbits(8)
        return "header", bytes(b)
    if kind == 4:  # an absurd payload length
        b = bytearray(wire)
        if len(b) >= 120:
            struct.pack_into(">I", b, 116, rng.choice([2**32 - 1, 2**31, 8 * 1024 * 1024 + 1]))
        return "oversized", bytes(b)
    if kind == 5:
        return "random", os.urandom(rng.choice([0, 1, 50, 111, 112, 116, 119, 120, 2000]))
    return "trailing", wire + os.urandom(rng.randint(1, 100))


def _frames(seed: int, n: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for seq in range(n):
        wire = _valid_frame(rng, seq if rng.random() < 0.7 else rng.randint(0, 2**63))
        yield _mutate(rng, wire)


def _client_channel() -> DataChannel:
    return DataChannel(
        Role.CLIENT,
        new_id=uuid.uuid4,
        random_bytes=os.urandom,
        session_id="fuzz-session",
        target_id="i-0fuzz",
    )


def test_data_channel_takes_100k_bad_frames() -> None:
    started = time.monotonic()
    kinds: dict[str, int] = {}
    outcomes = {"protocol_error": 0, "dropped": 0, "channels": 0, "events": 0}
    ch = _client_channel()
    now = 1000.0
    for i, (kind, wire) in enumerate(_frames(1, FRAMES)):
        kinds[kind] = kinds.get(kind, 0) + 1
        if ch.closed or i % 500 == 0:
            ch = _client_channel()
            outcomes["channels"] += 1
        now += 0.001
        try:
            events = ch.receive_frame(wire, now)
            for ev in events:
                if isinstance(ev, DataKeyNeeded):
                    events += ch.provide_data_key(os.urandom(64), b"blob", now)
            if i % 50 == 0:
                events += ch.handle_timer(now + 5)
            ch.data_to_send()
        except Exception as exc:  # the finding: show the frame that did it
            raise AssertionError(f"frame {i} ({kind}) raised {exc!r}: {wire[:200]!r}") from exc
        outcomes["events"] += len(events)
        for ev in events:
            if isinstance(ev, ProtocolError):
                outcomes["protocol_error"] += 1
                assert ch.closed and ev.reason, ev
            elif isinstance(ev, FrameDropped):
                outcomes["dropped"] += 1
    elapsed = time.monotonic() - started
    figure = report(f"channel fuzz: {FRAMES} frames {kinds} in {elapsed:.1f} s; {outcomes}")
    assert outcomes["protocol_error"] > 100 and outcomes["dropped"] > 0, figure


@pytest.mark.parametrize("client", [True, False])
def test_smux_random_bytes_only_fail_the_session(client: bool) -> None:
    rng = random.Random(3)
    failures = 0
    sessions = 0
    fed = 0
    smux = SmuxSession(client=client)
    for i in range(20_000):
        if smux.closed:
            smux = SmuxSession(client=client)
            sessions += 1
        if rng.random() < 0.5:  # plausible frames: version 1, any cmd / length / sid
            data = struct.pack(
                "<BBHI",
                rng.choice([1, 1, 1, 2]),
                rng.randrange(6),
                rng.randrange(70),
                rng.getrandbits(32),
            ) + os.urandom(rng.randrange(70))
        else:
            data = os.urandom(rng.randrange(1, 200))
        fed += len(data)
        try:
            events = smux.receive_data(data)
            for ev in events:
                sid = getattr(ev, "sid", None)
                if sid is not None and getattr(ev, "data", None):
                    smux.consumed(sid, len(ev.data))
            smux.data_to_send()
        except Exception as exc:
            raise AssertionError(f"input {i} raised {exc!r}: {data!r}") from exc
        for ev in events:
            if isinstance(ev, SessionFailed):
                failures += 1
                assert smux.closed and ev.reason
    report(
        f"smux fuzz (client={client}): {fed} bytes, {failures} SessionFailed, {sessions} sessions"
    )
    assert failures > 0


PARSERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("Ack", pl.Ack.decode),
    ("SessionState", pl.SessionState.decode),
    ("ChannelClosedInfo", pl.ChannelClosedInfo.decode),
    ("HandshakeRequest", pl.HandshakeRequest.decode),
    ("HandshakeResponse", pl.HandshakeResponse.decode),
    ("HandshakeComplete", pl.HandshakeComplete.decode),
    ("OpenDataChannel", pl.OpenDataChannel.decode),
    ("challenge", pl.decode_challenge),
    ("size", pl.decode_size),
    ("flag", pl.decode_flag),
    ("exit_code", pl.decode_exit_code),
]


def test_payload_parsers_raise_only_payload_error() -> None:
    rng = random.Random(5)
    errors = dict.fromkeys((name for name, _ in PARSERS), 0)
    for i in range(4_000):
        data = _json_junk(rng)
        for name, parse in PARSERS:
            try:
                result = parse(data)
                if name == "HandshakeResponse":
                    result.kms_result()  # type: ignore[attr-defined]
            except pl.PayloadError:
                errors[name] += 1
            except Exception as exc:
                raise AssertionError(f"{name} input {i} raised {exc!r}: {data[:200]!r}") from exc
    report(f"payload parser fuzz: 4000 inputs each, PayloadErrors {errors}")


# --------------------------------------------------------------------------- real websocket


@contextlib.asynccontextmanager
async def _garbage_server(frames: list[bytes]) -> Any:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the OpenDataChannel text frame
        with contextlib.suppress(ConnectionClosed):
            for wire in frames:
                await ws.send(wire)
        await ws.wait_closed()  # then silence: the client must not wait for more

    async with serve(handler, "127.0.0.1", 0, max_size=None, close_timeout=1) as server:
        yield next(iter(server.sockets)).getsockname()[1]


@pytest.mark.parametrize("kind", ["mixed", "bad-digest", "oversized"])
async def test_garbage_over_a_real_websocket_ends_with_a_reason(kind: str) -> None:
    rng = random.Random(11)
    if kind == "mixed":
        frames = [w for _, w in _frames(11, 3000)]
    else:
        frames = [
            w for k, w in (_mutate(rng, _valid_frame(rng, i)) for i in range(20_000)) if k == kind
        ][:3000]
    async with _garbage_server(frames) as port:
        conn = DataChannelConnection(
            StreamEndpoint(f"ws://127.0.0.1:{port}/v1/data-channel/s-1", "tok"),
            session_id="s-1",
            target_id="i-0fuzz",
            stall_timeout=2.0,
            ping_interval=None,
        )
        started = time.monotonic()
        await conn.open()
        try:
            async with asyncio.timeout(10):
                evs = [ev async for ev in conn.events()]
            elapsed = time.monotonic() - started
        finally:
            await conn.close()
        reason = conn.end_reason or ""
        figure = report(
            f"websocket garbage ({kind}, {len(frames)} frames): ended in {elapsed:.1f} s "
            f"after {len(evs)} events: {reason}"
        )
        assert reason and reason != "closed", figure
