"""Pure parts of the transport layer: escapes and stream URL policy."""

from __future__ import annotations

import pytest

from ssmtui.transport.shell import EscapeFilter
from ssmtui.transport.websocket import TransportError, validate_stream_url


@pytest.mark.parametrize(
    ("chunks", "sent", "action"),
    [
        ([b"ls\r"], b"ls\r", None),
        ([b"~."], b"", "terminate"),
        ([b"echo\r~."], b"echo\r", "terminate"),
        ([b"echo\r", b"~", b"."], b"echo\r", "terminate"),
        ([b"a~.b"], b"a~.b", None),
        ([b"~~x"], b"~x", None),
        ([b"~x"], b"~x", None),
        ([b"~?"], b"", "help"),
        ([b"\n~."], b"\n", "terminate"),
    ],
)
def test_escape_filter(chunks: list[bytes], sent: bytes, action: str | None) -> None:
    filt = EscapeFilter()
    out, last = b"", None
    for chunk in chunks:
        data, act = filt.feed(chunk)
        out += data
        last = act or last
    assert (out, last) == (sent, action)


@pytest.mark.parametrize(
    "url",
    [
        "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s?role=publish_subscribe",
        "ws://127.0.0.1:8080/v1/data-channel/s",
        "ws://localhost:1/x",
        "ws://[::1]:1/x",
    ],
)
def test_allowed_stream_urls(url: str) -> None:
    validate_stream_url(url)


@pytest.mark.parametrize(
    "url", ["ws://ssmmessages.us-east-1.amazonaws.com/x", "http://127.0.0.1/x", "wss://", "nope"]
)
def test_refused_stream_urls(url: str) -> None:
    with pytest.raises(TransportError):
        validate_stream_url(url)
