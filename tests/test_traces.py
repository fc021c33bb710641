"""Replay the recorded sessions of ../shared/ssm/vectors through our DataChannel.

Client role: the real agent's frames go in; our acks, our HandshakeResponse and the delivered
bytes must match what the recorded client sent and received. Agent role: the recorded client's
frames go in; our handshake, our acks (including input ignored before the plugin is ready) and
the decrypted input must match what the real agent did.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, DataChannel, Role
from ssmtui.protocol.events import (
    DataKeyNeeded,
    DataKeyToDecrypt,
    Event,
    HandshakeFailed,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import Frame, PayloadType, decode_frame
from tests.channel_helpers import id_source
from tests.vectors import Rec, Trace, agent_traces, load_trace

T0 = 1_760_000_000.0
SHELL_READY_DELAY = 0.3  # the real agent's pty is up ~0.3 s after it connects (see traces)

TRACES = agent_traces()


def _frames(trace: Trace, *dirs: str) -> list[tuple[Rec, Frame]]:
    return [(r, decode_frame(r.raw)) for r in trace.records if r.dir in dirs and r.ws == "bin"]


def _handshake_request(trace: Trace) -> pl.HandshakeRequest | None:
    for _, f in _frames(trace, "agent->client"):
        if f.payload_type == PayloadType.HANDSHAKE_REQUEST:
            return pl.HandshakeRequest.decode(f.payload)
    return None


def _handshake_response(trace: Trace) -> pl.HandshakeResponse | None:
    for _, f in _frames(trace, "client->agent"):
        if f.payload_type == PayloadType.HANDSHAKE_RESPONSE:
            return pl.HandshakeResponse.decode(f.payload)
    return None


def _session_ids(trace: Trace, role: Role) -> tuple[str, str]:
    """(session id, target) as each recorded side knew them."""
    state = next(f for _, f in _frames(trace, "agent->client"))
    session_id = pl.SessionState.decode(state.payload).session_id
    if role is Role.CLIENT and trace.keys:  # the context the recorded client asked KMS for
        return session_id, trace.keys["EncryptionContext"]["aws:ssm:TargetId"]
    for ev in trace.events:  # the agent's own id, from its OpenDataChannel message
        if ev.get("ev") == "open_frame" and ev.get("role") == "agent":
            return session_id, ev["frame"]["ClientInstanceId"]
    for rec in trace.records:
        if rec.dir == "agent->mgs":
            return session_id, json.loads(rec.raw)["ClientInstanceId"]
    raise AssertionError("no agent id in trace")


def _plain(rec: Rec, frame: Frame) -> bytes:
    crypto = rec.extra.get("crypto")
    if crypto and frame.payload_type in (1, 11, 12):
        return bytes.fromhex(crypto["plaintext_hex"])
    return frame.payload


def _acks_in(wire: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for raw in wire:
        f = decode_frame(raw)
        if f.message_type == "acknowledge":
            assert (f.sequence_number, f.flags, f.payload_type) == (0, 3, 0)
            assert f.payload.startswith(b'{"AcknowledgedMessageType":')  # compact, Go key order
            out.append(json.loads(f.payload))
    return out


def _data_key(trace: Trace) -> tuple[bytes, bytes]:
    assert trace.keys is not None
    return bytes.fromhex(trace.keys["DataKey_hex"]), base64.b64decode(
        trace.keys["CiphertextBlob_b64"]
    )


# ------------------------------------------------------------------------------- client role


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_client_role_replay(path: Path) -> None:
    trace = load_trace(path)
    recorded_resp = _handshake_response(trace)
    challenge_ack = False
    if recorded_resp is not None:
        kms = recorded_resp.kms_result()
        challenge_ack = bool(kms and kms[1])
    config = ChannelConfig(
        client_version=recorded_resp.client_version if recorded_resp else "1.2.677.0",
        acknowledge_challenge=challenge_ack,
    )
    session_id, target = _session_ids(trace, Role.CLIENT)
    client = DataChannel(
        Role.CLIENT,
        new_id=id_source(1),
        random_bytes=lambda n: b"\x01" * n,
        config=config,
        session_id=session_id,
        target_id=target,
    )
    events: list[Event] = []
    sent: list[bytes] = []
    for rec, _ in _frames(trace, "agent->client", "mgs->client"):
        now = T0 + rec.t
        new = client.receive_frame(rec.raw, now)
        for ev in new:
            if isinstance(ev, DataKeyNeeded):
                assert trace.keys is not None
                want = {k: v for k, v in trace.keys["EncryptionContext"].items()}
                assert ev.encryption_context == want
                key, blob = _data_key(trace)
                new += client.provide_data_key(key, blob, now)
        events += new
        sent += client.data_to_send()

    # 1. acks: same acked sequence numbers, each naming the acked frame exactly
    agent_frames = {
        (f.sequence_number, str(f.message_id))
        for _, f in _frames(trace, "agent->client")
        if f.message_type == "output_stream_data"
    }
    ours = _acks_in(sent)
    for ack in ours:
        assert ack["AcknowledgedMessageType"] == "output_stream_data"
        assert ack["IsSequentialMessage"] is True
        key = (ack["AcknowledgedMessageSequenceNumber"], ack["AcknowledgedMessageId"])
        assert key in agent_frames
    recorded = {
        json.loads(f.payload)["AcknowledgedMessageSequenceNumber"]
        for _, f in _frames(trace, "client->agent")
        if f.message_type == "acknowledge"
    }
    assert {a["AcknowledgedMessageSequenceNumber"] for a in ours} == recorded

    # 2. the handshake response, action by action
    ours_resp = [
        pl.HandshakeResponse.decode(f.payload)
        for f in map(decode_frame, sent)
        if f.payload_type == PayloadType.HANDSHAKE_RESPONSE
    ]
    if recorded_resp is None:
        assert ours_resp == []
    else:
        assert len(ours_resp) == 1
        assert ours_resp[0].client_version == recorded_resp.client_version
        assert ours_resp[0].actions == recorded_resp.actions

    # 3. delivered bytes, per payload type, decrypted
    want: dict[int, bytes] = {}
    seen: set[int] = set()
    handshake_types = {5, 7, 8}
    for rec, f in _frames(trace, "agent->client"):
        if f.message_type != "output_stream_data" or f.sequence_number in seen:
            continue
        if f.payload_type in handshake_types:
            seen.add(f.sequence_number)
            continue
        if f.sequence_number not in {a["AcknowledgedMessageSequenceNumber"] for a in ours}:
            continue
        seen.add(f.sequence_number)
        want[f.payload_type] = want.get(f.payload_type, b"") + _plain(rec, f)
    got: dict[int, bytes] = {}
    for ev in events:
        if isinstance(ev, StreamData):
            got[ev.payload_type] = got.get(ev.payload_type, b"") + ev.data
    assert got == want
    if want:
        ready = [e for e in events if isinstance(e, SessionReady)]
        assert len(ready) == 1
        assert ready[0].handshake == (recorded_resp is not None)


# ------------------------------------------------------------------------------- agent role


class _ScriptedRandom:
    """Hands the recorded agent's random values back, so our frames can equal the real ones."""

    def __init__(self, trace: Trace) -> None:
        self.by_size: dict[int, list[bytes]] = {}
        req = _handshake_request(trace)
        if req is not None and req.kms is not None and req.kms.challenge:
            self.by_size[16] = [base64.b64decode(req.kms.challenge)]
        for rec, f in _frames(trace, "agent->client"):
            crypto = rec.extra.get("crypto")
            if crypto and f.payload_type == PayloadType.ENC_CHALLENGE_REQUEST:
                self.by_size[12] = [bytes.fromhex(crypto["nonce_hex"])]
                self.by_size[64] = [bytes.fromhex(crypto["plaintext_hex"])]

    def __call__(self, n: int) -> bytes:
        values = self.by_size.get(n)
        return values.pop(0) if values else bytes(n)


def _agent_for(trace: Trace) -> tuple[DataChannel, Callable[[float], list[Event]]]:
    req = _handshake_request(trace)
    session_id, target = _session_ids(trace, Role.AGENT)
    require = "require" in trace.name
    agent = DataChannel(
        Role.AGENT,
        new_id=id_source(2),
        random_bytes=_ScriptedRandom(trace),
        config=ChannelConfig.for_agent(agent_version="3.3.0.0", require_challenge=require),
        session_id=session_id,
        target_id=target,
    )
    connect = next(r.t for r in trace.records if r.dir == "agent->client") + T0
    agent.send_session_state("Connected", connect)
    if req is None:
        agent.start(connect)
    else:
        kms_key = req.kms.key_id if req.kms else None
        agent.start_handshake(connect, req.session_type, req.properties, kms_key_id=kms_key)
    shell = (req.session_type if req else "Standard_Stream") in (
        "Standard_Stream",
        "InteractiveCommands",
    )
    agent.set_ready(False, connect)

    def tick(now: float) -> list[Event]:
        if agent.ready and not shell:
            return agent.set_ready(True, now)
        if agent.ready and now >= connect + SHELL_READY_DELAY:
            return agent.set_ready(True, now)
        return []

    return agent, tick


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_agent_role_replay(path: Path) -> None:
    trace = load_trace(path)
    agent, tick = _agent_for(trace)
    first = agent.data_to_send()
    real_first = [f for _, f in _frames(trace, "agent->client")][: len(first)]
    for ours, real in zip(map(decode_frame, first), real_first, strict=True):
        # Connected state, then (if any) the HandshakeRequest: byte-equal payloads
        assert (ours.message_type, ours.sequence_number, ours.flags, ours.payload_type) == (
            real.message_type,
            real.sequence_number,
            real.flags,
            real.payload_type,
        )
        assert ours.payload == real.payload

    # which copies of client frames did the real agent ack?
    records = [(r, f) for r, f in _frames(trace, "client->agent", "agent->client")]
    real_acked: dict[int, bool] = {}
    for i, (rec, f) in enumerate(records):
        if rec.dir != "client->agent" or not f.message_type.endswith("stream_data"):
            continue
        acked = False
        for later_rec, later in records[i + 1 :]:
            same_seq = later.sequence_number == f.sequence_number
            if (
                later_rec.dir == "client->agent"
                and same_seq
                and later.message_type == f.message_type
            ):
                break  # the next copy: an ack after it is that copy's
            if later.message_type == "acknowledge" and later_rec.dir == "agent->client":
                acked_seq = json.loads(later.payload)["AcknowledgedMessageSequenceNumber"]
                if acked_seq == f.sequence_number:
                    acked = True
                    break
        real_acked[i] = acked

    events: list[Event] = []
    answers: list[Frame] = []
    input_plain: list[bytes] = []
    connect = next(r.t for r in trace.records if r.dir == "agent->client")
    for i, (rec, f) in enumerate(records):
        if rec.dir != "client->agent":
            continue
        now = T0 + max(rec.t, connect)  # frames the relay buffered arrive at connect
        events += tick(now)
        new = agent.receive_frame(rec.raw, now)
        for ev in new:
            if isinstance(ev, DataKeyToDecrypt):
                assert trace.keys is not None
                if ev.encryption_context == trace.keys["EncryptionContext"]:
                    new += agent.provide_data_key(_data_key(trace)[0], b"", now)
                else:
                    new += agent.reject_data_key("kms:Decrypt failed", now)
        events += new
        wire = agent.data_to_send()
        ours = [a["AcknowledgedMessageSequenceNumber"] for a in _acks_in(wire)]
        answers += [f for f in map(decode_frame, wire) if f.message_type == "output_stream_data"]
        terminate = f.payload_type == PayloadType.FLAG and f.payload == pl.encode_flag(2)
        if i in real_acked and not terminate:  # acking Flag 2 before the drop varies (README)
            assert (f.sequence_number in ours) == real_acked[i], (
                f"frame {i} seq {f.sequence_number} at {rec.t:.3f}s: real agent "
                f"{'acked' if real_acked[i] else 'did not ack'} it"
            )
        if f.payload_type == PayloadType.OUTPUT and "crypto" in rec.extra and real_acked.get(i):
            input_plain.append(bytes.fromhex(rec.extra["crypto"]["plaintext_hex"]))

    got = [e.data for e in events if isinstance(e, StreamData) and e.payload_type == 1]
    if "plain-input" in trace.name:
        assert got == []  # unencrypted input is never acked, so all later input stalls too
    elif input_plain:
        assert b"".join(got) == b"".join(input_plain)
    # our challenge (type 8) is byte-equal to the real agent's, given its random values; our
    # HandshakeComplete carries the same CustomerMessage
    real = {f.payload_type: f for _, f in _frames(trace, "agent->client")}
    for f in answers:
        if f.payload_type == PayloadType.ENC_CHALLENGE_REQUEST:
            assert f.payload == real[8].payload
            assert f.sequence_number == real[8].sequence_number
        if f.payload_type == PayloadType.HANDSHAKE_COMPLETE:
            ours_done = pl.HandshakeComplete.decode(f.payload)
            real_done = pl.HandshakeComplete.decode(real[7].payload)
            assert ours_done.customer_message == real_done.customer_message
            assert f.sequence_number == real[7].sequence_number
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    if "require" in trace.name:
        assert failed and "random challenge" in failed[0].reason
    elif "badctx" in trace.name:
        assert failed and agent.closed
    else:
        assert not failed


def test_all_scenarios_are_replayed() -> None:
    names = {p.stem for p in TRACES}
    assert len(names) >= 18
    assert {"agent-early-input", "agent-shell-resend", "agent-shell-kms-challenge"} <= names


def test_frame_id_helper_is_deterministic() -> None:
    ids = id_source(3)
    assert ids() == uuid.UUID(int=(3 << 64) | 1)
