"""JSON payloads, the OpenDataChannel text frame, version rules and the session cipher."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmtui.protocol import payloads as pl
from ssmtui.protocol import versions as v
from ssmtui.protocol.crypto import CounterNonces, DecryptError, RandomNonces, SessionCipher
from ssmtui.protocol.frames import decode_frame
from tests.vectors import golden_frames

GOLDEN = {g["name"]: g for g in golden_frames()}


def _payload(name: str) -> bytes:
    return decode_frame(bytes.fromhex(GOLDEN[name]["hex"])).payload


def test_go_json_escapes_like_go() -> None:
    assert pl.go_json({"a": "<b>&\u2028é"}) == '{"a":"\\u003cb\\u003e\\u0026\\u2028é"}'.encode()


@pytest.mark.parametrize("name", ["agent_open_data_channel_text", "plugin_open_data_channel_text"])
def test_open_data_channel_text_frames_byte_identical(name: str) -> None:
    text = bytes.fromhex(GOLDEN[name]["hex"]).decode()
    msg = pl.OpenDataChannel.decode(text)
    assert msg.encode() == text
    assert pl.OpenDataChannel.decode(text.encode()) == msg


def test_golden_payloads_re_encode_byte_identical() -> None:
    req = _payload("agent_handshake_request_port_localportforwarding")
    assert pl.HandshakeRequest.decode(req).encode() == req
    req = _payload("agent_handshake_request_noninteractive")
    parsed = pl.HandshakeRequest.decode(req)
    assert parsed.properties is None and parsed.session_type == "NonInteractiveCommands"
    assert parsed.encode() == req
    resp = _payload("plugin_handshake_response")
    assert pl.HandshakeResponse.decode(resp).encode() == resp
    done = _payload("agent_handshake_complete")
    assert pl.HandshakeComplete.decode(done).encode() == done
    for name in ("agent_ack_of_input_stream_data", "plugin_ack_of_output_stream_data"):
        ack = _payload(name)
        assert pl.Ack.decode(ack).encode() == ack
    for name in ("agent_session_state_connected", "agent_session_state_terminating"):
        st_ = _payload(name)
        assert pl.SessionState.decode(st_).encode() == st_
    size = _payload("plugin_size")
    assert pl.encode_size(*pl.decode_size(size)) == size
    assert pl.decode_flag(_payload("plugin_flag_terminate_session")) == 2
    assert pl.decode_flag(_payload("plugin_flag_disconnect_to_port")) == 1
    assert pl.decode_exit_code(_payload("agent_exit_code")) == 3
    assert pl.encode_exit_code(3) == _payload("agent_exit_code")


def test_kms_handshake_shapes() -> None:
    req = pl.HandshakeRequest("3.3.0.0", "Standard_Stream", None, pl.KMSAction("k", "Y2g="))
    back = pl.HandshakeRequest.decode(req.encode())
    assert back == req
    no_challenge = pl.HandshakeRequest("3", "Standard_Stream", None, pl.KMSAction("k"))
    assert b"Challenge" not in no_challenge.encode()
    resp = pl.HandshakeResponse(
        "1.2.707.0",
        (pl.ProcessedAction("KMSEncryption", result={"KMSCipherTextKey": "YWJj"}),),
        errors=("x",),
    )
    back_resp = pl.HandshakeResponse.decode(resp.encode())
    assert back_resp.kms_result() == (b"abc", False)
    assert back_resp.errors == ("x",)
    bad = pl.HandshakeResponse("1", (pl.ProcessedAction("KMSEncryption", result={}),))
    with pytest.raises(pl.PayloadError):
        bad.kms_result()
    bad64 = pl.HandshakeResponse(
        "1", (pl.ProcessedAction("KMSEncryption", result={"KMSCipherTextKey": "!!"}),)
    )
    with pytest.raises(pl.PayloadError):
        bad64.kms_result()
    assert pl.HandshakeResponse("1", ()).kms_result() is None
    assert pl.decode_challenge(pl.encode_challenge(b"\x00\xff")) == b"\x00\xff"
    assert pl.join_actions([pl.ProcessedAction("A", 2, None, "boom"), pl.ProcessedAction("B", 3)])


@pytest.mark.parametrize(
    ("decoder", "data"),
    [
        (pl.Ack.decode, b"nope"),
        (pl.Ack.decode, b"[]"),
        (pl.Ack.decode, b'{"AcknowledgedMessageSequenceNumber":true}'),
        (pl.SessionState.decode, b"{}"),
        (pl.HandshakeRequest.decode, b"{}"),
        (pl.HandshakeRequest.decode, b'{"RequestedClientActions":[1]}'),
        (pl.HandshakeRequest.decode, b'{"RequestedClientActions":[]}'),
        (pl.HandshakeResponse.decode, b"{}"),
        (pl.HandshakeResponse.decode, b'{"ProcessedClientActions":[1]}'),
        (pl.HandshakeResponse.decode, b'{"ProcessedClientActions":[{"ActionStatus":"x"}]}'),
        (pl.HandshakeComplete.decode, b"\xff"),
        (pl.decode_challenge, b'{"Challenge":"%%%"}'),
        (pl.decode_challenge, b'{"Challenge":1}'),
        (pl.decode_size, b'{"cols":-1,"rows":3}'),
        (pl.decode_size, b'{"cols":"80","rows":3}'),
        (pl.decode_flag, b"\x00\x01"),
        (pl.decode_exit_code, b"EXIT: 3"),
        (pl.OpenDataChannel.decode, "{}"),
    ],
)
def test_bad_payloads_raise_payload_error(decoder, data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pl.PayloadError):
        decoder(data)


def test_lenient_fields() -> None:
    done = pl.HandshakeComplete.decode(b'{"HandshakeTimeToComplete":"x","CustomerMessage":null}')
    assert done == pl.HandshakeComplete(0, "")
    info = pl.ChannelClosedInfo.decode(b'{"Output":null,"SessionId":"s"}')
    assert info.output == "" and info.session_id == "s"
    req = pl.HandshakeRequest.decode(
        b'{"RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":'
        b'{"SessionType":"Port","Properties":{"b":"1","a":"2"}}},{"ActionType":"KMSEncryption",'
        b'"ActionParameters":{"KMSKeyId":"k","Challenge":5}}]}'
    )
    assert req.kms == pl.KMSAction("k", None) and req.agent_version == ""
    assert req.encode().index(b'"a"') < req.encode().index(b'"b"')  # Go sorts map keys


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5))
def test_go_json_is_valid_json(obj: dict[str, str]) -> None:
    assert json.loads(pl.go_json(obj)) == obj


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("1.2.707.0", "1.1.70", 1),
        ("1.1.70", "1.1.70", 0),
        ("1.0.9", "1.1.70", -1),
        ("1.2.331.0", "1.2.331.0", 0),
        ("1.2.332.0", "1.2.331.0", 1),
        ("pyssm-client/0.1.0", "1.1.70", 1),
        ("1.2", "1.2.0", -1),
        ("v1.2.3", "1.2.4", -1),
    ],
)
def test_agent_compare(a: str, b: str, want: int) -> None:
    assert v.agent_compare(a, b) == want


def test_mode_decisions() -> None:
    lpf = {"type": "LocalPortForwarding", "portNumber": "80"}
    assert v.agent_uses_mux(lpf, "1.2.707.0")
    assert not v.agent_uses_mux(lpf, "0.0.1")
    assert not v.agent_uses_mux(lpf, "")
    assert not v.agent_uses_mux({"portNumber": "22"}, "1.2.707.0")
    assert not v.agent_wants_keepalive("1.2.707.0")
    assert v.agent_wants_keepalive("1.2.0.0") and v.agent_wants_keepalive("")
    assert v.client_port_mode(lpf, "3.3.987.0", "1.2.707.0") == "mux"
    assert v.client_port_mode(lpf, "3.0.161.0", "1.2.707.0") == "basic"
    assert v.client_port_mode(lpf, "", "1.2.707.0") == "mux"
    assert v.client_port_mode(lpf, "3.3.987.0", "0.0.1") == "basic"
    assert v.client_port_mode({"portNumber": "22"}, "3.3.987.0", "1.2.707.0") == "stream"
    assert v.client_port_mode(None, "3.3.987.0", "1.2.707.0") == "stream"
    assert v.client_smux_keepalive("3.1.1374.0") and not v.client_smux_keepalive("3.3.0.0")
    assert v.agent_supports_terminate_flag("3.0.0.0")
    assert not v.agent_supports_terminate_flag("2.3.722.0")
    assert not v.plugin_version_gt("3.x.0.0", "1.0.0.0")
    assert not v.plugin_version_gt("3.3.0", "1.0.0.0")


# ----------------------------------------------------------------------------- crypto


def test_counter_nonces_carry_across_words() -> None:
    nonces = CounterNonces(b"\xff\xff\xff\xff" * 2 + b"\x00" * 4)
    assert nonces() == b"\xff" * 8 + b"\x00" * 4
    assert nonces() == b"\x00" * 8 + b"\x01\x00\x00\x00"
    with pytest.raises(ValueError):
        CounterNonces(b"short")


def test_cipher_directions_and_errors() -> None:
    key = bytes(range(64))
    client = SessionCipher(key, client=True, nonces=RandomNonces(lambda n: b"\x07" * n))
    agent = SessionCipher(key, client=False, nonces=CounterNonces(b"\x00" * 12))
    blob = client.encrypt(b"hello")
    assert len(blob) == 5 + 28 and agent.decrypt(blob) == b"hello"
    assert client.decrypt(agent.encrypt(b"out")) == b"out"
    with pytest.raises(DecryptError):
        client.decrypt(blob)  # wrong direction's key
    with pytest.raises(DecryptError):
        client.decrypt(b"short")
    with pytest.raises(ValueError):
        SessionCipher(b"x" * 32, client=True, nonces=lambda: b"\x00" * 12)


@given(
    st.text(max_size=20),
    st.one_of(st.uuids().map(str), st.text(max_size=10)),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
)
def test_ack_fast_paths_equal_the_general_ones(
    mtype: str, mid: str, seq: int, sequential: bool
) -> None:
    ack = pl.Ack(mtype, mid, seq, sequential)
    general = pl.go_json(
        {
            "AcknowledgedMessageType": mtype,
            "AcknowledgedMessageId": mid,
            "AcknowledgedMessageSequenceNumber": seq,
            "IsSequentialMessage": sequential,
        }
    )
    assert ack.encode() == general
    assert pl.Ack.decode(general) == ack
