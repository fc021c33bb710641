"""Random (version 4) UUIDs for data-channel message ids, made in batches.

Every frame sent carries a new message id; :func:`uuid.uuid4` costs a system call and a
general-purpose :class:`uuid.UUID` construction per id, a visible share of a frame's cost at
tens of thousands of frames a second. :class:`RandomIds` draws the randomness for many ids in
one ``os.urandom`` call and builds them with the cheap ``int=`` constructor: the ids are the
same kind (RFC 4122 version 4, 122 random bits from the OS), only made faster.
"""

from __future__ import annotations

import os
import uuid

__all__ = ["RandomIds", "new_message_id"]

_BATCH = 256
# Version 4 (bits 76-79 = 0100) and the RFC 4122 variant (bits 62-63 = 10), as uuid4() sets.
_KEEP = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


class RandomIds:
    """A callable giving a new random version-4 UUID on every call (``uuid.uuid4`` stand-in)."""

    def __init__(self, batch: int = _BATCH) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._batch = batch
        self._ready: list[uuid.UUID] = []

    def __call__(self) -> uuid.UUID:
        ready = self._ready
        if not ready:
            raw = os.urandom(16 * self._batch)
            from_bytes, make = int.from_bytes, uuid.UUID
            ready += [
                make(int=(from_bytes(raw[i : i + 16], "big") & _KEEP) | _SET)
                for i in range(0, len(raw), 16)
            ]
        return ready.pop()

    def discard(self) -> None:
        """Forget ids made but not handed out (a forked child must not reuse its parent's)."""
        self._ready.clear()


#: The process-wide source the transport gives its data channels.
new_message_id = RandomIds()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=new_message_id.discard)
