"""DataChannel state machine: reliability on a virtual clock, handshake, KMS, bad input."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, ChannelStateError, DataChannel, Role
from ssmtui.protocol.crypto import SessionCipher
from ssmtui.protocol.events import (
    AgentSessionState,
    ChannelClosed,
    DataKeyNeeded,
    DataKeyToDecrypt,
    FrameDropped,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolError,
    PublicationPaused,
    PublicationResumed,
    ResendTimedOut,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import Frame, PayloadType, decode_frame, encode_frame
from tests.channel_helpers import Net, make

T0 = 1_700_000_000.0
DATA_KEY = bytes(range(64))
BLOB = b"FAKEKMS-blob"


def frame(mtype: str, seq: int, ptype: int, payload: bytes, flags: int = 0) -> bytes:
    return encode_frame(Frame(mtype, seq, flags, uuid.UUID(int=seq + 99), 1, ptype, payload))


def out(seq: int, payload: bytes, ptype: int = PayloadType.OUTPUT) -> bytes:
    return frame("output_stream_data", seq, ptype, payload)


def inp(seq: int, payload: bytes, ptype: int = PayloadType.OUTPUT) -> bytes:
    return frame("input_stream_data", seq, ptype, payload)


def acks(wire: list[bytes]) -> list[int]:
    res = []
    for raw in wire:
        f = decode_frame(raw)
        if f.message_type == "acknowledge":
            assert (f.sequence_number, f.flags, f.payload_type) == (0, 3, 0)
            res.append(pl.Ack.decode(f.payload).sequence_number)
    return res


def stream(wire: list[bytes]) -> list[Frame]:
    return [f for f in map(decode_frame, wire) if f.message_type.endswith("stream_data")]


def ready_agent(config: ChannelConfig | None = None) -> DataChannel:
    agent = make(Role.AGENT, config)
    agent.start(T0)
    return agent


def ready_client() -> DataChannel:
    client = make(Role.CLIENT)
    evs = client.receive_frame(out(0, b"$ "), T0)
    assert isinstance(evs[0], SessionReady) and not evs[0].handshake
    client.data_to_send()
    return client


# ---------------------------------------------------------------------- retransmission / RTO


def test_first_resend_after_initial_rto_and_byte_identical() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"hello", T0)
    (first,) = agent.data_to_send()
    f = decode_frame(first)
    assert (f.sequence_number, f.flags, f.message_type) == (0, 1, "output_stream_data")
    assert agent.get_timer() == pytest.approx(T0 + 0.2)
    agent.handle_timer(T0 + 0.19)
    assert agent.data_to_send() == []
    agent.handle_timer(T0 + 0.2)
    assert agent.data_to_send() == [first]
    assert agent.frames_resent == 1
    assert agent.get_timer() == pytest.approx(T0 + 0.4)


def test_rtt_estimator_matches_reference_formulas() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"a", T0)
    agent.data_to_send()
    agent.receive_frame(_ack_for("output_stream_data", 0), T0 + 0.05)
    assert agent.rttvar == pytest.approx(0.25 * abs(0.1 - 0.05))
    assert agent.rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.05)
    assert agent.rto == pytest.approx(agent.rtt + max(0.01, 4 * agent.rttvar))
    assert agent.in_flight == 0 and agent.get_timer() is None


def test_rto_is_capped_at_one_second_and_floored_by_clock_granularity() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"a", T0)
    agent.receive_frame(_ack_for("output_stream_data", 0), T0 + 30)
    assert agent.rto == 1.0
    agent = ready_agent()
    for i in range(200):
        agent.send(PayloadType.OUTPUT, b"a", T0 + i)
        agent.receive_frame(_ack_for("output_stream_data", i), T0 + i + 0.001)
    assert agent.rttvar < 0.0025
    assert agent.rto == pytest.approx(agent.rtt + 0.01)


def test_unknown_ack_is_ignored() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"a", T0)
    assert agent.receive_frame(_ack_for("output_stream_data", 42), T0) == []
    assert agent.in_flight == 1


def test_client_gives_up_after_max_resends() -> None:
    client = make(Role.CLIENT, ChannelConfig(max_resends=3))
    client.receive_frame(out(0, b"$ "), T0)
    client.send(PayloadType.OUTPUT, b"x", T0)
    now, events = T0, []
    while not client.closed:
        now = client.get_timer() or now
        events += client.handle_timer(now)
    assert events == [ResendTimedOut(0, 3)]
    assert client.frames_resent == 3
    assert client.get_timer() is None and client.handle_timer(now + 10) == []


def test_agent_never_gives_up() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"x", T0)
    now = T0
    for _ in range(5000):
        now = agent.get_timer() or now
        assert agent.handle_timer(now) == []
    assert not agent.closed


def test_resend_burst_is_bounded_then_ticks() -> None:
    agent = ready_agent(ChannelConfig.for_agent(resend_burst=4))
    for i in range(10):
        agent.send(PayloadType.OUTPUT, bytes([i]), T0)
    agent.data_to_send()
    agent.handle_timer(T0 + 0.2)
    assert [f.sequence_number for f in stream(agent.data_to_send())] == [0, 1, 2, 3]
    assert agent.get_timer() == pytest.approx(T0 + 0.3)
    agent.handle_timer(T0 + 0.25)
    assert agent.data_to_send() == []
    agent.handle_timer(T0 + 0.3)
    assert [f.sequence_number for f in stream(agent.data_to_send())] == [4, 5, 6, 7]


def _ack_for(mtype: str, seq: int) -> bytes:
    payload = pl.Ack(mtype, str(uuid.UUID(int=1)), seq).encode()
    return frame("acknowledge", 0, 0, payload, flags=3)


# ---------------------------------------------------------------------- receive ordering


def test_in_order_ahead_and_duplicate_frames() -> None:
    client = ready_client()
    ev = client.receive_frame(out(2, b"C"), T0)
    assert ev == [] and acks(client.data_to_send()) == [2]
    ev = client.receive_frame(out(2, b"C"), T0)
    assert ev == [] and acks(client.data_to_send()) == [2]
    ev = client.receive_frame(out(1, b"B"), T0)
    assert [e.data for e in ev if isinstance(e, StreamData)] == [b"B", b"C"]
    assert acks(client.data_to_send()) == [1]
    client.receive_frame(out(1, b"B"), T0)
    assert acks(client.data_to_send()) == [1]  # duplicate re-acked, not delivered


def test_reorder_buffer_full_drops_without_ack() -> None:
    client = make(Role.CLIENT, ChannelConfig(in_capacity=1))
    client.receive_frame(out(0, b"a"), T0)
    client.data_to_send()
    client.receive_frame(out(2, b"c"), T0)
    ev = client.receive_frame(out(3, b"d"), T0)
    assert isinstance(ev[0], FrameDropped)
    assert acks(client.data_to_send()) == [2]


def test_client_holds_data_until_session_type_is_known() -> None:
    client = make(Role.CLIENT)
    client.send_size(80, 24, T0)
    client.send(PayloadType.OUTPUT, b"ls\r", T0)
    assert client.data_to_send() == [] and client.held == 2
    client.receive_frame(out(0, b"$ "), T0)
    wire = client.data_to_send()
    assert acks(wire) == [0]
    sent = stream(wire)
    assert [(f.sequence_number, f.payload_type, f.flags) for f in sent] == [(0, 3, 0), (1, 1, 0)]
    assert sent[0].payload == b'{"cols":80,"rows":24}'


def test_client_does_not_ack_data_during_handshake() -> None:
    client = make(Role.CLIENT)
    req = pl.HandshakeRequest("3.3.0.0", "Port", {"portNumber": "22"}).encode()
    client.receive_frame(out(0, req, PayloadType.HANDSHAKE_REQUEST), T0)
    client.data_to_send()
    assert client.receive_frame(out(1, b"early"), T0) == []
    assert acks(client.data_to_send()) == []


def test_send_splits_into_max_payload_and_ignores_empty() -> None:
    agent = ready_agent()
    agent.send(PayloadType.OUTPUT, b"", T0)
    agent.send(PayloadType.OUTPUT, b"x" * 2500, T0)
    sizes = [len(f.payload) for f in stream(agent.data_to_send())]
    assert sizes == [1024, 1024, 452]


def test_send_after_close_raises() -> None:
    agent = ready_agent()
    agent.close()
    with pytest.raises(ChannelStateError):
        agent.send(PayloadType.OUTPUT, b"x", T0)
    assert agent.receive_frame(inp(0, b"x"), T0) == []


# ---------------------------------------------------------------------- agent rules


def test_agent_not_ready_neither_acks_nor_consumes_then_drains() -> None:
    agent = make(Role.AGENT)
    agent.start(T0)
    agent.set_ready(False, T0)
    assert agent.receive_frame(inp(0, b'{"cols":1,"rows":2}', 3), T0) == []
    assert agent.receive_frame(inp(1, b"ls"), T0) == []
    assert acks(agent.data_to_send()) == [1]  # ahead: acked and buffered
    assert agent.set_ready(True, T0) == []
    ev = agent.receive_frame(inp(0, b'{"cols":1,"rows":2}', 3), T0)
    assert [e.data for e in ev if isinstance(e, StreamData)] == [b'{"cols":1,"rows":2}', b"ls"]
    assert acks(agent.data_to_send()) == [0]


def test_agent_set_ready_delivers_buffered_frames() -> None:
    agent = make(Role.AGENT)
    agent.start(T0)
    agent.receive_frame(inp(0, b"a"), T0)
    agent.set_ready(False, T0)
    agent.receive_frame(inp(2, b"c"), T0)
    agent.receive_frame(inp(1, b"b"), T0)  # not ready: dropped, not acked
    agent.data_to_send()
    agent.receive_frame(inp(1, b"b"), T0)
    assert agent.data_to_send() == []


def test_agent_acks_and_discards_input_during_handshake() -> None:
    agent = make(Role.AGENT)
    agent.start_handshake(T0, "Port", {"portNumber": "80", "type": "LocalPortForwarding"})
    (req,) = agent.data_to_send()
    f = decode_frame(req)
    assert (f.sequence_number, f.flags, f.payload_type) == (0, 1, 5)
    assert agent.receive_frame(inp(0, b"early data"), T0) == []
    assert acks(agent.data_to_send()) == [0]


def test_agent_handshake_times_out() -> None:
    agent = make(Role.AGENT)
    agent.start_handshake(T0, "Port", {})
    assert agent.get_timer() == pytest.approx(T0 + 0.2)
    now = T0
    events = []
    while not agent.closed:
        now = agent.get_timer() or now
        events += agent.handle_timer(now)
    assert events == [HandshakeFailed("timed out waiting for the client's handshake")]
    assert now == pytest.approx(T0 + 15.0)


def test_agent_session_state_frames() -> None:
    agent = make(Role.AGENT, session_id="s-9")
    agent.send_session_state("Connected", T0)
    f = decode_frame(agent.data_to_send()[0])
    assert (f.message_type, f.sequence_number, f.flags, f.payload_type) == (
        "agent_session_state",
        0,
        3,
        0,
    )
    assert f.payload == b'{"SchemaVersion":1,"SessionState":"Connected","SessionId":"s-9"}'
    client = make(Role.CLIENT)
    assert client.receive_frame(encode_frame(f), T0) == [AgentSessionState("Connected")]


# ---------------------------------------------------------------------- handshake end to end


def _pair(**net: object) -> Net:
    return Net(make(Role.CLIENT), make(Role.AGENT), **net)  # type: ignore[arg-type]


def _run_kms(net: Net, reply_key: bytes = DATA_KEY) -> None:
    def on_event(side: str, ev: object) -> None:
        if isinstance(ev, DataKeyNeeded):
            net.client.provide_data_key(DATA_KEY, BLOB, net.now)
        elif isinstance(ev, DataKeyToDecrypt):
            assert ev.ciphertext == BLOB
            net.agent.provide_data_key(reply_key, b"", net.now)

    net.on_event = on_event


def test_port_handshake_pair() -> None:
    net = _pair()
    props = {"type": "LocalPortForwarding", "portNumber": "5432", "host": "db"}
    net.agent.start_handshake(net.now, "Port", props)
    net.client.send(PayloadType.OUTPUT, b"SMUX", net.now)  # held until complete
    net.run(lambda: bool(net.received("agent")))
    ready = [e for e in net.events["client"] if isinstance(e, SessionReady)]
    assert ready == [SessionReady("Port", props, "3.3.987.0", True)]
    done = [e for e in net.events["agent"] if isinstance(e, HandshakeCompleted)]
    assert done == [HandshakeCompleted("", False, "1.2.764.0")]
    assert net.received("agent") == b"SMUX"
    assert net.agent.client_version == "1.2.764.0"


@pytest.mark.parametrize("challenge_ack", [True, False])
def test_kms_handshake_pair_and_encrypted_data(challenge_ack: bool) -> None:
    net = Net(
        make(Role.CLIENT, ChannelConfig(acknowledge_challenge=challenge_ack)), make(Role.AGENT)
    )
    _run_kms(net)
    net.agent.start_handshake(net.now, "Standard_Stream", None, kms_key_id="alias/k")
    net.client.send(PayloadType.OUTPUT, b"echo hi\r", net.now)
    net.run(lambda: bool(net.received("agent")))
    need = next(e for e in net.events["client"] if isinstance(e, DataKeyNeeded))
    assert need.key_id == "alias/k"
    assert set(need.encryption_context) == {"aws:ssm:SessionId", "aws:ssm:TargetId"} | (
        {"aws:ssm:RandomChallenge"} if challenge_ack else set()
    )
    todo = next(e for e in net.events["agent"] if isinstance(e, DataKeyToDecrypt))
    assert todo.encryption_context == need.encryption_context
    done = next(e for e in net.events["client"] if isinstance(e, HandshakeCompleted))
    assert done.customer_message == pl.KMS_CUSTOMER_MESSAGE and done.encrypted
    assert net.received("agent") == b"echo hi\r"
    net.agent.send(PayloadType.OUTPUT, b"hi\r\n", net.now)
    net.agent.send(PayloadType.EXIT_CODE, b"EXIT_CODE: 0", net.now)
    net.agent.send_size = None  # type: ignore[assignment,method-assign]
    net.run(lambda: bool(net.received("client", PayloadType.EXIT_CODE)))
    assert net.received("client") == b"hi\r\n"
    assert net.received("client", PayloadType.EXIT_CODE) == b"EXIT_CODE: 0"


def test_kms_required_challenge_refused() -> None:
    net = Net(
        make(Role.CLIENT, ChannelConfig(acknowledge_challenge=False)),
        make(Role.AGENT, ChannelConfig.for_agent(require_challenge=True)),
    )
    _run_kms(net)
    net.agent.start_handshake(net.now, "Standard_Stream", None, kms_key_id="k")
    net.run(lambda: net.agent.closed)
    fails = [e for e in net.events["agent"] if isinstance(e, HandshakeFailed)]
    assert fails and "random challenge" in fails[0].reason


def test_kms_wrong_key_fails_challenge_on_client() -> None:
    net = _pair()
    _run_kms(net, reply_key=bytes(64))
    net.agent.start_handshake(net.now, "Standard_Stream", None, kms_key_id="k")
    net.run(lambda: net.client.closed)
    assert any(isinstance(e, ProtocolError) for e in net.events["client"])


def test_kms_wrong_challenge_answer_fails_on_agent() -> None:
    agent = make(Role.AGENT)
    agent.start_handshake(T0, "Standard_Stream", None, kms_key_id="k")
    agent.data_to_send()
    resp = pl.HandshakeResponse(
        "1.2.707.0",
        (
            pl.ProcessedAction("SessionType"),
            pl.ProcessedAction("KMSEncryption", result={"KMSCipherTextKey": "AAAA"}),
        ),
    )
    ev = agent.receive_frame(inp(0, resp.encode(), PayloadType.HANDSHAKE_RESPONSE), T0)
    assert isinstance(ev[0], DataKeyToDecrypt) and acks(agent.data_to_send()) == []
    agent.receive_frame(inp(0, resp.encode(), PayloadType.HANDSHAKE_RESPONSE), T0)
    assert acks(agent.data_to_send()) == []  # no ack before Decrypt returned
    agent.provide_data_key(DATA_KEY, b"", T0)
    assert acks(agent.data_to_send()) == [0]
    wrong = SessionCipher(DATA_KEY, client=True, nonces=lambda: b"\x00" * 12).encrypt(b"x" * 64)
    ev = agent.receive_frame(
        inp(1, pl.encode_challenge(wrong), PayloadType.ENC_CHALLENGE_RESPONSE), T0
    )
    assert ev == [HandshakeFailed("encryption challenge answer does not match")]
    garbage = pl.encode_challenge(b"y" * 40)
    agent2 = make(Role.AGENT)
    agent2.start_handshake(T0, "Standard_Stream", None, kms_key_id="k")
    agent2.receive_frame(inp(0, resp.encode(), PayloadType.HANDSHAKE_RESPONSE), T0)
    agent2.provide_data_key(DATA_KEY, b"", T0)
    ev = agent2.receive_frame(inp(1, garbage, PayloadType.ENC_CHALLENGE_RESPONSE), T0)
    assert isinstance(ev[0], HandshakeFailed)


def test_kms_client_without_kms_answer_and_failed_actions() -> None:
    cases = [
        (pl.HandshakeResponse("1", (pl.ProcessedAction("SessionType"),)), "did not answer"),
        (
            pl.HandshakeResponse("1", (pl.ProcessedAction("SessionType", 2, None, "nope"),)),
            "nope",
        ),
    ]
    for resp, reason in cases:
        agent = make(Role.AGENT)
        agent.start_handshake(T0, "Standard_Stream", None, kms_key_id="k")
        ev = agent.receive_frame(inp(0, resp.encode(), PayloadType.HANDSHAKE_RESPONSE), T0)
        assert isinstance(ev[0], HandshakeFailed) and reason in ev[0].reason
    agent = make(Role.AGENT)
    agent.start_handshake(T0, "Port", {})
    ev = agent.receive_frame(inp(0, b"{}", PayloadType.HANDSHAKE_RESPONSE), T0)
    assert isinstance(ev[0], HandshakeFailed)


def test_client_rejects_data_key_failure_and_unknown_types() -> None:
    client = make(Role.CLIENT)
    req = pl.HandshakeRequest("3.3.0.0", "Standard_Stream", None, pl.KMSAction("k", "Y2g="))
    ev = client.receive_frame(out(0, req.encode(), PayloadType.HANDSHAKE_REQUEST), T0)
    assert isinstance(ev[0], DataKeyNeeded)
    ev = client.reject_data_key("AccessDenied", T0)
    assert ev == [HandshakeFailed("KMS encryption failed: AccessDenied")]
    sent = stream(client.data_to_send())
    resp = pl.HandshakeResponse.decode(sent[-1].payload)
    assert resp.actions[1].status == pl.ActionStatus.FAILED and resp.actions[1].error
    with pytest.raises(ChannelStateError):
        make(Role.CLIENT).provide_data_key(DATA_KEY, BLOB, T0)

    client = make(Role.CLIENT)
    raw = (
        b'{"AgentVersion":"9","RequestedClientActions":[{"ActionType":"SessionType",'
        b'"ActionParameters":{"SessionType":"Teleport","Properties":null}},{"ActionType":"Fly"}]}'
    )
    ev = client.receive_frame(out(0, raw, PayloadType.HANDSHAKE_REQUEST), T0)
    assert isinstance(ev[0], HandshakeFailed)
    resp = pl.HandshakeResponse.decode(stream(client.data_to_send())[-1].payload)
    assert [a.status for a in resp.actions] == [2, 3]


def test_client_protocol_errors_in_handshake_payloads() -> None:
    for ptype in (
        PayloadType.HANDSHAKE_REQUEST,
        PayloadType.HANDSHAKE_COMPLETE,
        PayloadType.ENC_CHALLENGE_REQUEST,
    ):
        client = make(Role.CLIENT)
        ev = client.receive_frame(out(0, b"[not json", ptype), T0)
        assert isinstance(ev[-1], ProtocolError) and client.closed


def test_client_decrypt_failure_is_fatal_agent_plain_input_is_dropped() -> None:
    net = _pair()
    _run_kms(net)
    net.agent.start_handshake(net.now, "Standard_Stream", None, kms_key_id="k")
    net.run(lambda: net.client.ready and net.agent.ready and not net.wire)
    seq = 3  # agent output seq after request, challenge, complete
    ev = net.client.receive_frame(out(seq, b"plaintext is not ciphertext"), net.now)
    assert isinstance(ev[-1], ProtocolError) and net.client.closed
    ev = net.agent.receive_frame(inp(2, b"plaintext"), net.now)
    assert isinstance(ev[-1], FrameDropped) and acks(net.agent.data_to_send()) == []


# ---------------------------------------------------------------------- service frames, bad input


def test_channel_closed_pause_start_and_unknown_types() -> None:
    client = ready_client()
    info = pl.ChannelClosedInfo("m", "d", "s", "Session terminated").encode()
    client.send(PayloadType.OUTPUT, b"a", T0)
    client.data_to_send()
    assert client.receive_frame(frame("pause_publication", 0, 0, b"x"), T0) == [PublicationPaused()]
    assert client.receive_frame(frame("pause_publication", 0, 0, b"x"), T0) == []
    assert client.paused and client.get_timer() is None
    client.send(PayloadType.OUTPUT, b"b", T0)
    assert client.data_to_send() == [] and client.in_flight == 2
    assert client.receive_frame(frame("start_publication", 0, 0, b"x"), T0) == [
        PublicationResumed()
    ]
    assert [f.payload for f in stream(client.data_to_send())] == [b"b"]
    assert client.receive_frame(frame("something_new", 0, 0, b"x"), T0) == []
    assert client.receive_frame(frame("input_stream_data", 0, 1, b"x"), T0) == []
    ev = client.receive_frame(frame("channel_closed", 0, 0, info), T0)
    assert ev == [ChannelClosed("Session terminated")] and client.closed
    c2 = ready_client()
    assert c2.receive_frame(frame("channel_closed", 0, 0, b"garbage"), T0) == [ChannelClosed("")]


def test_ack_or_state_with_bad_json_is_a_protocol_error() -> None:
    for mtype in ("acknowledge", "agent_session_state"):
        client = ready_client()
        ev = client.receive_frame(frame(mtype, 0, 0, b"{oops"), T0)
        assert isinstance(ev[0], ProtocolError) and client.closed


def test_bad_digest_dropped_then_fatal_and_malformed_fatal() -> None:
    client = make(Role.CLIENT, ChannelConfig(max_bad_frames=2))
    bad = bytearray(out(0, b"hello"))
    bad[-1] ^= 1
    assert isinstance(client.receive_frame(bytes(bad), T0)[0], FrameDropped)
    assert isinstance(client.receive_frame(bytes(bad), T0)[0], FrameDropped)
    ev = client.receive_frame(bytes(bad), T0)
    assert isinstance(ev[0], ProtocolError) and client.closed
    client = make(Role.CLIENT)
    ev = client.receive_frame(b"\x00" * 10, T0)
    assert isinstance(ev[0], ProtocolError) and "malformed" in ev[0].reason


# ---------------------------------------------------------------------- property: lossy network


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    loss=st.sampled_from([0.0, 0.05, 0.2]),
    dup=st.sampled_from([0.0, 0.05, 0.2]),
    jitter=st.sampled_from([0.0, 0.01, 0.2]),
    up=st.lists(st.binary(min_size=1, max_size=3000), max_size=8),
    down=st.lists(st.binary(min_size=1, max_size=3000), max_size=8),
    handshake=st.booleans(),
)
def test_every_byte_once_and_in_order_under_loss_dup_reorder(
    seed: int,
    loss: float,
    dup: float,
    jitter: float,
    up: list[bytes],
    down: list[bytes],
    handshake: bool,
) -> None:
    net = Net(make(Role.CLIENT), make(Role.AGENT), loss=loss, dup=dup, jitter=jitter, seed=seed)
    if handshake:
        net.agent.start_handshake(net.now, "Port", {"type": "LocalPortForwarding"})
    else:
        net.agent.start(net.now)
        net.agent.send(PayloadType.OUTPUT, b"$ ", net.now)
    for chunk in up:
        net.client.send(PayloadType.OUTPUT, chunk, net.now)
    for chunk in down:
        net.agent.send(PayloadType.OUTPUT, chunk, net.now)
    want_up = b"".join(up)
    want_down = (b"" if handshake else b"$ ") + b"".join(down)
    net.run(
        lambda: (
            net.received("agent") == want_up
            and net.received("client") == want_down
            and net.client.in_flight == 0
            and net.agent.in_flight == 0
        ),
        max_time=3600,
    )
    assert net.received("agent") == want_up
    assert net.received("client") == want_down
    assert not any(isinstance(e, ProtocolError) for e in net.events["client"])


def test_urandom_sources_work() -> None:
    ch = DataChannel(Role.AGENT, new_id=uuid.uuid4, random_bytes=os.urandom)
    ch.start_handshake(T0, "Standard_Stream", None, kms_key_id="k")
    assert ch.data_to_send()
