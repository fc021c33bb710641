"""Blocking writes to file descriptors shared with the event loop's readers."""

from __future__ import annotations

import os
import select

__all__ = ["write_all"]


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out: a pipe may take less, and a non-blocking descriptor
    (a terminal shared with stdin) none until it is writable again."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]
