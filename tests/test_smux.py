"""Tests for the sans-I/O smux v1 implementation (ssmtui.protocol.smux)."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmtui.protocol import smux
from ssmtui.protocol.smux import (
    CMD_FIN,
    CMD_NOP,
    CMD_PSH,
    CMD_SYN,
    CMD_UPD,
    FrameParser,
    KeepaliveTimeout,
    SessionFailed,
    SmuxClosedError,
    SmuxError,
    SmuxEvent,
    SmuxFrame,
    SmuxSession,
    StreamClosed,
    StreamData,
    StreamOpened,
    encode_frame,
)

VECTORS = Path(os.environ.get("SSM_VECTORS", "/work/shared/ssm/vectors"))
MUX_TRACES = [
    "agent-port-mux.jsonl",
    "plugin-port-mux.jsonl",
    "plugin-realagent-port-mux.jsonl",
    "agent-port-mux-keepalive.jsonl",
]
# direction -> the MessageType carrying stream data in that direction
DIRECTIONS = {"client->agent": "input_stream_data", "agent->client": "output_stream_data"}


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """Split ``data`` at the given offsets (any order, duplicates allowed)."""
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        yield data[last:cut]
        last = cut
    yield data[last:]


def psh_frames(out: bytes) -> list[SmuxFrame]:
    return [f for f in FrameParser().feed(out) if f.cmd == CMD_PSH]


# ------------------------------------------------------------------ framing


def test_exact_bytes() -> None:
    assert encode_frame(SmuxFrame(CMD_NOP, 0)).hex() == "0103000000000000"
    assert encode_frame(SmuxFrame(CMD_SYN, 3)).hex() == "0100000003000000"
    assert encode_frame(SmuxFrame(CMD_FIN, 0x01020304)).hex() == "0101000004030201"
    psh = encode_frame(SmuxFrame(CMD_PSH, 5, b"x" * 0x0102))
    assert psh[:8].hex() == "0102020105000000"
    assert SmuxSession(client=True).open_stream() == 3


def test_encode_rejects_bad_frames() -> None:
    assert len(encode_frame(SmuxFrame(CMD_PSH, 1, b"a" * 65535))) == 65543
    with pytest.raises(SmuxError, match="too long"):
        encode_frame(SmuxFrame(CMD_PSH, 1, b"a" * 65536))
    for bad in (SmuxFrame(CMD_SYN, -1), SmuxFrame(CMD_SYN, 2**32), SmuxFrame(256, 1)):
        with pytest.raises(SmuxError, match="out of range"):
            encode_frame(bad)
    with pytest.raises(SmuxError, match="out of range"):
        encode_frame(SmuxFrame(CMD_SYN, 1, version=300))


frame_strategy = st.one_of(
    st.builds(
        SmuxFrame,
        st.sampled_from([CMD_SYN, CMD_FIN, CMD_NOP]),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        SmuxFrame,
        st.just(CMD_PSH),
        st.integers(0, 2**32 - 1),
        st.one_of(
            st.binary(max_size=300),
            st.integers(60000, 65535).map(lambda n: (bytes(range(256)) * 256)[:n]),
        ),
    ),
)


@given(frames=st.lists(frame_strategy, max_size=12), cuts=st.lists(st.integers(0, 2**20)))
@settings(max_examples=150, deadline=None)
def test_round_trip_random_splits(frames: list[SmuxFrame], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    parser = FrameParser()
    parsed: list[SmuxFrame] = []
    for piece in split(stream, cuts):
        parsed += parser.feed(piece)
    assert parsed == frames
    assert parser.buffered == 0


def test_parser_byte_by_byte_and_partial() -> None:
    stream = encode_frame(SmuxFrame(CMD_SYN, 3)) + encode_frame(SmuxFrame(CMD_PSH, 3, b"hello"))
    parser = FrameParser()
    got = [f for b in stream for f in parser.feed(bytes([b]))]
    assert got == [SmuxFrame(CMD_SYN, 3), SmuxFrame(CMD_PSH, 3, b"hello")]
    assert parser.feed(stream[:10]) == [SmuxFrame(CMD_SYN, 3)]
    assert parser.buffered == 2
    assert parser.next_frame() is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("0200000003000000", "version 2"),
        ("0104080003000000", "command 4 \\(UPD\\)"),
        ("0109000003000000", "command 9 \\(unknown\\)"),
        ("0100050003000000", "SYN frame with non-zero length 5"),
        ("0103010000000000", "NOP frame with non-zero length 1"),
    ],
)
def test_parser_rejects(header: str, message: str) -> None:
    with pytest.raises(SmuxError, match=message):
        FrameParser().feed(bytes.fromhex(header))


# ------------------------------------------------------------ recorded traces


def load_direction(name: str, direction: str) -> list[dict[str, Any]]:
    """Stream-data Output frames of one direction, new seqs only, in sequence order."""
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"trace {path} not available")
    frames = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        msg = rec.get("msg") or {}
        if (
            rec.get("ev") == "frame"
            and rec.get("dir") == direction
            and msg.get("MessageType") == DIRECTIONS[direction]
            and msg.get("PayloadType") == 1
            and rec.get("seq_status") != "retransmission"
        ):
            frames.append(rec)
    frames.sort(key=lambda r: r["msg"]["SequenceNumber"])
    return frames


def payload_of(rec: dict[str, Any]) -> bytes:
    msg = rec["msg"]
    payload = bytes.fromhex(rec["hex"])[120 : 120 + msg["PayloadLength"]]
    if "payload_hex" in msg:
        assert bytes.fromhex(msg["payload_hex"]) == payload
    return payload


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize("name", MUX_TRACES)
def test_recorded_traces(name: str, direction: str) -> None:
    records = load_direction(name, direction)
    assert records, "no Output frames in this direction"
    parser = FrameParser()
    # Feed a session playing the receiving role too: it must accept everything.
    session = SmuxSession(client=direction == "agent->client")
    if direction == "agent->client":
        # The client opened its streams itself (ids 1/3 or 3/5): register them via their SYNs.
        syns = [
            SmuxFrame(CMD_SYN, e["sid"])
            for rec in load_direction(name, "client->agent")
            for e in rec.get("smux", [])
            if e["cmd"] == CMD_SYN
        ]
        assert syns
        feed(session, *syns)
    expected_data: dict[int, bytes] = {}
    got_data: dict[int, bytes] = {}
    total = 0
    for rec in records:
        payload = payload_of(rec)
        parsed = [
            {"cmd": f.cmd, "sid": f.sid, "length": len(f.data), "data_hex": f.data.hex()}
            for f in parser.feed(payload)
        ]
        expected = [
            {k: e[k] for k in ("cmd", "sid", "length", "data_hex")} for e in rec.get("smux", [])
        ]
        assert parsed == expected, f"frame i={rec['i']}"
        for e in expected:
            if e["cmd"] == CMD_PSH:
                expected_data[e["sid"]] = expected_data.get(e["sid"], b"") + bytes.fromhex(
                    e["data_hex"]
                )
        total += len(expected)
        for ev in session.receive_data(payload):
            assert not isinstance(ev, SessionFailed), ev
            if isinstance(ev, StreamData):
                got_data[ev.sid] = got_data.get(ev.sid, b"") + ev.data
    assert total > 0
    assert parser.buffered == 0
    assert got_data == expected_data


# --------------------------------------------------------- back-to-back sessions


class Pair:
    """A client and a server session wired back to back, delivering in given piece sizes."""

    def __init__(self, piece: int = 1024, **kwargs: Any) -> None:
        self.client = SmuxSession(client=True, **kwargs)
        self.server = SmuxSession(client=False, **kwargs)
        self.piece = piece
        self.events: dict[str, list[SmuxEvent]] = {"client": [], "server": []}

    def pump(self) -> None:
        while True:
            c2s, s2c = self.client.data_to_send(), self.server.data_to_send()
            if not c2s and not s2c:
                return
            for data, dst, key in ((c2s, self.server, "server"), (s2c, self.client, "client")):
                for i in range(0, len(data), self.piece):
                    self.events[key] += dst.receive_data(data[i : i + self.piece])

    def received(self, side: str) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for ev in self.events[side]:
            if isinstance(ev, StreamData):
                out[ev.sid] = out.get(ev.sid, b"") + ev.data
        return out


SIZES = [0, 1, 1000, 32768, 32769, 65535, 65536, 200_001]


def test_back_to_back_three_streams() -> None:
    pair = Pair(piece=1024)
    sids = [pair.client.open_stream() for _ in range(3)]
    assert sids == [3, 5, 7]
    sent: dict[int, bytes] = {sid: b"" for sid in sids}
    for n, size in enumerate(SIZES):
        for k, sid in enumerate(sids):
            data = bytes([(n * 7 + k + j) % 251 for j in range(size % 5000)]) * (size // 5000 + 1)
            data = data[:size]
            sent[sid] += data
            pair.client.write(sid, data)
        out = pair.client.data_to_send()
        assert all(len(f.data) <= 32768 for f in psh_frames(out))
        for i in range(0, len(out), 1000):
            pair.events["server"] += pair.server.receive_data(out[i : i + 1000])
    for sid in sids:
        pair.client.close_stream(sid)
    pair.pump()
    opened = [ev.sid for ev in pair.events["server"] if isinstance(ev, StreamOpened)]
    closed = [ev.sid for ev in pair.events["server"] if isinstance(ev, StreamClosed)]
    assert opened == sids and closed == sids
    assert pair.received("server") == sent
    # Every StreamClosed comes after all data of that stream.
    last_data = {
        ev.sid: i for i, ev in enumerate(pair.events["server"]) if isinstance(ev, StreamData)
    }
    for i, ev in enumerate(pair.events["server"]):
        if isinstance(ev, StreamClosed):
            assert last_data[ev.sid] < i
    assert pair.server.buffered == sum(len(d) for d in sent.values())  # nothing consumed yet
    # The server answers FIN with FIN; the client already forgot the streams, so nothing happens.
    assert all(pair.server.peer_closed(sid) for sid in sids)
    for sid in sids:
        pair.server.close_stream(sid)
    pair.pump()
    assert pair.events["client"] == []
    assert pair.client.stream_ids == pair.server.stream_ids == frozenset()
    assert pair.server.buffered == 0  # closing released the unconsumed bytes
    assert not pair.client.closed and not pair.server.closed


def test_server_to_client_echo_and_server_close() -> None:
    pair = Pair(piece=7)
    sid = pair.client.open_stream()
    pair.client.write(sid, b"ping")
    pair.pump()
    assert pair.events["server"] == [StreamOpened(sid), StreamData(sid, b"ping")]
    pair.server.consumed(sid, 4)
    pair.server.write(sid, b"pong" * 20000)
    pair.server.close_stream(sid)
    pair.pump()
    assert pair.received("client") == {sid: b"pong" * 20000}
    assert pair.events["client"][-1] == StreamClosed(sid)
    assert pair.client.peer_closed(sid)
    pair.client.write(sid, b"late")  # allowed after peer FIN (as in smux); peer discards it
    pair.client.close_stream(sid)
    pair.pump()
    assert pair.events["server"][2:] == []
    # A server opens even ids.
    assert [pair.server.open_stream(), pair.server.open_stream()] == [2, 4]
    pair.pump()
    assert pair.events["client"][-2:] == [StreamOpened(2), StreamOpened(4)]


@given(
    ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 70000)), min_size=1, max_size=12),
    piece=st.integers(1, 5000),
)
@settings(max_examples=40, deadline=None)
def test_back_to_back_property(ops: list[tuple[int, int]], piece: int) -> None:
    pair = Pair(piece=piece)
    sids = [pair.client.open_stream() for _ in range(4)]
    sent = {sid: b"" for sid in sids}
    for n, (k, size) in enumerate(ops):
        data = bytes([n % 256]) * size
        sent[sids[k]] += data
        pair.client.write(sids[k], data)
    for sid in sids:
        pair.client.close_stream(sid)
    pair.pump()
    assert pair.received("server") == {sid: d for sid, d in sent.items() if d}
    assert [e.sid for e in pair.events["server"] if isinstance(e, StreamClosed)] == sids


# ------------------------------------------------------------- receive rules


def feed(session: SmuxSession, *frames: SmuxFrame) -> list[SmuxEvent]:
    return session.receive_data(b"".join(encode_frame(f) for f in frames))


def test_unknown_duplicate_and_finished_streams() -> None:
    s = SmuxSession(client=False)
    events = feed(
        s,
        SmuxFrame(CMD_PSH, 9, b"lost"),  # unknown stream: discarded
        SmuxFrame(CMD_FIN, 9),  # unknown stream: ignored
        SmuxFrame(CMD_NOP, 0),
        SmuxFrame(CMD_SYN, 1),  # clients may use id 1
        SmuxFrame(CMD_PSH, 1, b"a"),
        SmuxFrame(CMD_SYN, 1),  # duplicate SYN ignored
        SmuxFrame(CMD_PSH, 1, b""),  # empty PSH: nothing
        SmuxFrame(CMD_NOP, 1),
        SmuxFrame(CMD_PSH, 1, b"b"),
        SmuxFrame(CMD_FIN, 1),
        SmuxFrame(CMD_FIN, 1),  # duplicate FIN ignored
        SmuxFrame(CMD_PSH, 1, b"after fin"),  # discarded
        SmuxFrame(CMD_SYN, 1),  # still open locally: ignored
    )
    assert events == [StreamOpened(1), StreamData(1, b"a"), StreamData(1, b"b"), StreamClosed(1)]
    assert s.stream_ids == {1} and s.peer_closed(1)
    assert s.buffered == 2
    s.close_stream(1)
    assert s.data_to_send() == encode_frame(SmuxFrame(CMD_FIN, 1))
    assert s.buffered == 0
    with pytest.raises(KeyError):
        s.peer_closed(1)
    # Once closed locally the id is free again: a new SYN reopens it, as in smux.
    assert feed(s, SmuxFrame(CMD_SYN, 1)) == [StreamOpened(1)]
    assert not s.closed and s.failure is None


@pytest.mark.parametrize(
    "bad",
    [
        "0200000003000000",  # version 2
        "0104080003000000" + "00" * 8,  # UPD (v2 only)
        "0109000003000000",  # cmd 9
        "0100010003000000",  # SYN with a length
    ],
)
def test_protocol_errors_fail_session(bad: str) -> None:
    s = SmuxSession(client=False, keepalive=True)
    good = encode_frame(SmuxFrame(CMD_SYN, 3)) + encode_frame(SmuxFrame(CMD_PSH, 3, b"x"))
    events = s.receive_data(good + bytes.fromhex(bad) + good)
    assert events[:2] == [StreamOpened(3), StreamData(3, b"x")]
    assert len(events) == 3 and isinstance(events[2], SessionFailed)
    assert not isinstance(events[2], KeepaliveTimeout)
    assert s.closed and s.failure == events[2].reason
    assert s.stream_ids == frozenset() and s.buffered == 0 and s.wants_data
    assert s.receive_data(good) == []
    assert s.get_timer() is None and s.handle_timer(1e9) == []
    with pytest.raises(SmuxClosedError, match="session is closed"):
        s.open_stream()
    with pytest.raises(SmuxClosedError, match="session is closed"):
        s.write(3, b"x")
    s.close_stream(3)  # no-op on a dead session
    assert s.data_to_send() == b""


def test_protocol_error_split_across_calls() -> None:
    s = SmuxSession(client=True)
    assert s.receive_data(b"\x01") == []
    assert s.receive_data(b"") == []
    [ev] = s.receive_data(b"\x05" + b"\x00" * 6)
    assert isinstance(ev, SessionFailed) and "command 5" in ev.reason


# ------------------------------------------------------------- sending rules


def test_write_and_close_rules() -> None:
    s = SmuxSession(client=True, max_frame_size=10)
    sid = s.open_stream()
    s.write(sid, b"")
    assert s.data_to_send() == encode_frame(SmuxFrame(CMD_SYN, 3))
    s.write(sid, bytes(range(25)))
    frames = FrameParser().feed(s.data_to_send())
    assert [len(f.data) for f in frames] == [10, 10, 5]
    assert b"".join(f.data for f in frames) == bytes(range(25))
    s.close_stream(sid)
    s.close_stream(sid)  # idempotent: one FIN
    assert s.data_to_send() == encode_frame(SmuxFrame(CMD_FIN, sid))
    with pytest.raises(SmuxClosedError, match="stream 3 is closed"):
        s.write(sid, b"x")
    with pytest.raises(SmuxClosedError, match="never opened"):
        s.write(99, b"x")
    s.close_stream(99)  # unknown id: no-op
    assert s.data_to_send() == b""
    s.close()
    assert s.closed and s.failure is None
    with pytest.raises(SmuxClosedError, match="closed locally"):
        s.open_stream()


def test_stream_ids_exhausted() -> None:
    s = SmuxSession(client=True)
    s._next_id = 2**32 - 3
    assert s.open_stream() == 2**32 - 1
    with pytest.raises(SmuxError, match="exhausted"):
        s.open_stream()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame_size": 0},
        {"max_frame_size": 65536},
        {"max_receive_buffer": 0},
        {"keepalive": True, "keepalive_interval": 0},
        {"keepalive": True, "keepalive_interval": 31.0},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmuxSession(client=True, **kwargs)


# ----------------------------------------------------------------- keepalive

NOP = encode_frame(SmuxFrame(CMD_NOP, 0))


def test_keepalive_disabled_has_no_timer() -> None:
    s = SmuxSession(client=True)
    assert s.get_timer() is None
    assert s.handle_timer(1e6) == []
    assert s.data_to_send() == b""


def test_keepalive_nop_every_interval_and_timeout() -> None:
    s = SmuxSession(client=True, keepalive=True, now=100.0)
    assert s.get_timer() == 110.0
    assert s.handle_timer(109.9) == [] and s.data_to_send() == b""
    assert s.handle_timer(110.0) == [] and s.data_to_send() == NOP
    assert s.get_timer() == 120.0
    assert s.handle_timer(120.5) == [] and s.data_to_send() == NOP
    assert s.get_timer() == 130.0
    # Nothing was received during [100, 130): the session dies at the 30 s check.
    [ev] = s.handle_timer(130.0)
    assert isinstance(ev, KeepaliveTimeout) and isinstance(ev, SessionFailed)
    assert "30 s" in ev.reason and s.closed and s.failure == ev.reason
    assert s.data_to_send() == NOP  # the tick at 130 s was queued first
    assert s.get_timer() is None


def test_keepalive_any_received_byte_resets_window() -> None:
    s = SmuxSession(client=False, keepalive=True, keepalive_interval=10, keepalive_timeout=30)
    for t in (10, 20):
        assert s.handle_timer(t) == []
    assert s.receive_data(NOP) == []  # a NOP from the peer counts
    assert s.handle_timer(30) == []
    s.data_to_send()
    assert s.get_timer() == 40
    # Half a frame header also counts as "something received".
    for t in (40, 50):
        assert s.handle_timer(t) == []
    assert s.receive_data(b"\x01\x00") == []
    assert s.handle_timer(60) == []
    assert not s.closed
    # Then silence for the whole [60, 90) window.
    assert s.handle_timer(70) == [] and s.handle_timer(80) == []
    [ev] = s.handle_timer(90)
    assert isinstance(ev, KeepaliveTimeout)


def test_keepalive_missed_ticks_are_dropped() -> None:
    s = SmuxSession(client=True, keepalive=True, now=0.0)
    s.receive_data(NOP)
    assert s.handle_timer(35.0) == []  # data was seen in the first window
    assert s.data_to_send() == NOP  # one NOP, not three
    assert s.get_timer() == 40.0  # next ping 40, next check 60


def test_keepalive_not_enforced_while_receive_buffer_full() -> None:
    s = SmuxSession(client=False, keepalive=True, max_receive_buffer=4)
    feed(s, SmuxFrame(CMD_SYN, 3), SmuxFrame(CMD_PSH, 3, b"full"))
    assert not s.wants_data
    for t in (10, 20, 30, 40, 50, 60, 70, 80, 90):
        assert s.handle_timer(t) == []  # window at 30 had data; 60 and 90 are paused
    s.consumed(3, 4)
    assert s.wants_data
    assert s.handle_timer(100) == []
    [ev] = s.handle_timer(120)
    assert isinstance(ev, KeepaliveTimeout)


# -------------------------------------------------------------- flow control


def test_flow_control() -> None:
    s = SmuxSession(client=False, max_receive_buffer=100)
    assert s.wants_data and s.buffered == 0
    feed(s, SmuxFrame(CMD_SYN, 3), SmuxFrame(CMD_SYN, 5), SmuxFrame(CMD_PSH, 3, b"a" * 60))
    assert s.wants_data and s.buffered == 60
    feed(s, SmuxFrame(CMD_PSH, 5, b"b" * 40))
    assert not s.wants_data and s.buffered == 100
    feed(s, SmuxFrame(CMD_PSH, 7, b"c" * 40))  # unknown stream: not counted
    assert s.buffered == 100
    s.consumed(3, 50)
    assert s.wants_data and s.buffered == 50
    with pytest.raises(ValueError, match="consumed 11"):
        s.consumed(3, 11)
    with pytest.raises(ValueError):
        s.consumed(3, -1)
    s.consumed(3, 0)
    s.consumed(9, 1000)  # not open: ignored
    s.close_stream(5)  # releases its 40 unconsumed bytes
    assert s.buffered == 10
    s.consumed(5, 40)  # already released: ignored
    assert s.buffered == 10
    feed(s, SmuxFrame(CMD_PSH, 3, b"d" * 200))  # data is never refused, only signalled
    assert not s.wants_data and s.buffered == 210
    s.close()
    assert s.buffered == 0 and s.wants_data


# ------------------------------------------------------------------ sans-I/O


def test_module_is_sans_io() -> None:
    tree = ast.parse(Path(smux.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    forbidden = {"asyncio", "socket", "websockets", "time", "random", "uuid", "threading"}
    assert not imported & forbidden
    assert CMD_UPD == 4
