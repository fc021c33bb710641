"""Masked binary websocket frames for a batch of messages, queued in one piece.

The transport writes hundreds of data-channel messages per socket write. Going through
``Protocol.send_binary`` builds a frame object, a ``BytesIO`` and a 4-byte random mask (one
system call) per message, which at ~1 KiB per message costs about as much as encoding the
message itself. :func:`queue_binary_batch` produces the same RFC 6455 frames (FIN, binary
opcode, the client's mask: a fresh random key per frame) for a whole batch with one
``os.urandom`` call, and hands them to websockets' own outgoing buffer, so its ``send_context``
still does the state checks, the socket write and the flow control.
"""

from __future__ import annotations

import os
import struct

from websockets.protocol import Protocol, Side, State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover  (websockets built without its C extension)
    from websockets.utils import apply_mask

__all__ = ["binary_frames", "queue_binary_batch"]

_FIN_BINARY = 0x82  # FIN bit + opcode 2 (binary)
_MASK_BIT = 0x80
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def binary_frames(batch: list[bytes], keys: bytes) -> bytes:
    """One masked, final binary frame per message of ``batch``, concatenated; message ``i`` is
    masked with ``keys[4 * i : 4 * i + 4]``."""
    if len(keys) != 4 * len(batch):
        raise ValueError("need one 4-byte mask key per message")
    parts: list[bytes] = []
    append = parts.append
    for i, msg in enumerate(batch):
        n = len(msg)
        if n < 126:
            append(_SHORT.pack(_FIN_BINARY, _MASK_BIT | n))
        elif n < 65536:
            append(_MEDIUM.pack(_FIN_BINARY, _MASK_BIT | 126, n))
        else:
            append(_LONG.pack(_FIN_BINARY, _MASK_BIT | 127, n))
        key = keys[4 * i : 4 * i + 4]
        append(key)
        append(apply_mask(msg, key))
    return b"".join(parts)


def queue_binary_batch(protocol: object, batch: list[bytes]) -> bool:
    """Queue ``batch`` as binary messages on an open client ``protocol``, as one write.

    Returns False, having done nothing, unless ``protocol`` is a websockets client
    :class:`~websockets.protocol.Protocol` that ``send_binary`` would frame exactly so: open, no
    extensions (no compression), no fragmented message in progress, no debug logging. The
    caller then sends the messages the ordinary way.
    """
    # getattr with defaults that mean "no": a websockets release that renamed these internals
    # gets the ordinary path, never an error inside its send_context.
    writes = getattr(protocol, "writes", None)
    if not (
        isinstance(protocol, Protocol)
        and isinstance(writes, list)
        and getattr(protocol, "side", None) is Side.CLIENT
        and getattr(protocol, "state", None) is State.OPEN
        and getattr(protocol, "extensions", True) == []
        and getattr(protocol, "expect_continuation_frame", True) is False
        and getattr(protocol, "debug", True) is False
    ):
        return False
    if batch:
        writes.append(binary_frames(batch, os.urandom(4 * len(batch))))
    return True
