"""The transport's per-frame fast paths: batched message ids and batched websocket framing."""

from __future__ import annotations

import os
import uuid
from unittest import mock

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri

from ssmtui.protocol.frames import Frame as AgentFrame
from ssmtui.protocol.frames import decode_frame, encode_frame, encode_message
from ssmtui.transport.ids import RandomIds, new_message_id
from ssmtui.transport.wsframes import binary_frames, queue_binary_batch

SIZES = [0, 1, 125, 126, 127, 1240, 65535, 65536, 70_000]


def test_random_ids_are_unique_version_4_uuids() -> None:
    ids = RandomIds(batch=8)
    made = [ids() for _ in range(1000)]  # many refills
    assert len(set(made)) == len(made)
    assert all(isinstance(u, uuid.UUID) for u in made)
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in made)
    assert new_message_id() != new_message_id()


def test_random_ids_discard_and_bad_batch() -> None:
    ids = RandomIds(batch=4)
    first = ids()
    ids.discard()  # what a forked child does: the parent's leftovers are never handed out
    assert ids() != first
    with pytest.raises(ValueError):
        RandomIds(batch=0)


def test_binary_frames_match_websockets_serializer() -> None:
    batch = [os.urandom(n) for n in SIZES]
    keys = os.urandom(4 * len(batch))
    expected = b""
    for i, msg in enumerate(batch):
        with mock.patch("secrets.token_bytes", return_value=keys[4 * i : 4 * i + 4]):
            expected += Frame(Opcode.BINARY, msg).serialize(mask=True)
    assert binary_frames(batch, keys) == expected
    with pytest.raises(ValueError):
        binary_frames(batch, keys[:-1])


def _open_client() -> ClientProtocol:
    client = ClientProtocol(parse_uri("ws://localhost/"))
    client.state = State.OPEN
    return client


def test_queued_batch_is_read_back_by_a_server() -> None:
    client = _open_client()
    batch = [os.urandom(n) for n in SIZES]
    assert queue_binary_batch(client, batch)
    writes = client.data_to_send()
    assert len(writes) == 1  # one socket write for the whole batch
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    server.receive_data(writes[0])
    got = server.events_received()
    assert [(f.opcode, f.fin, f.data) for f in got] == [(Opcode.BINARY, True, m) for m in batch]
    assert queue_binary_batch(client, [])  # nothing to queue
    assert client.data_to_send() == []


def test_queue_binary_batch_leaves_other_cases_to_websockets() -> None:
    assert not queue_binary_batch(object(), [b"x"])
    server = Protocol(Side.SERVER, state=State.OPEN)  # servers do not mask
    assert not queue_binary_batch(server, [b"x"])
    closing = _open_client()
    closing.state = State.CLOSING
    assert not queue_binary_batch(closing, [b"x"])
    fragmented = _open_client()
    fragmented.send_binary(b"part", fin=False)
    assert not queue_binary_batch(fragmented, [b"x"])


@pytest.mark.parametrize("payload", [b"", b"x", os.urandom(1024)])
def test_encode_message_is_encode_frame(payload: bytes) -> None:
    mid = uuid.uuid4()
    frame = AgentFrame("input_stream_data", 7, 0, mid, 1_700_000_000_000, 1, payload)
    wire = encode_message("input_stream_data", 7, 0, mid, 1_700_000_000_000, 1, payload)
    assert wire == encode_frame(frame)
    assert decode_frame(wire) == frame
    assert decode_frame(wire).message_id == mid
