"""An interactive shell on the local terminal: raw passthrough, resize, ssh-style escapes.

Every byte typed goes to the remote pty (Ctrl-C, Ctrl-Z and Ctrl-\\ included: the local
terminal is raw), the remote pty's output goes to stdout, window changes are sent as Size
messages, and ``~.`` after a newline ends a session that stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.events import (
    AgentSessionState,
    ChannelClosed,
    HandshakeCompleted,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import PayloadType
from ssmtui.transport.fdio import write_all
from ssmtui.transport.websocket import ConnectionLost, DataChannelConnection, TransportError

__all__ = ["EscapeFilter", "ShellResult", "run_shell"]

ESCAPE_HELP = (
    b"\r\nSupported escape sequences:\r\n"
    b" ~.   - terminate the session\r\n"
    b" ~?   - this message\r\n"
    b" ~~   - send the escape character by typing it twice\r\n"
    b"(Note that escapes are only recognized immediately after newline.)\r\n"
)


class EscapeFilter:
    """ssh's escape rules: ``~`` is special only right after a newline (or at the start)."""

    def __init__(self, char: bytes = b"~") -> None:
        self.char = char[0]
        self._at_line_start = True
        self._pending = False

    def feed(self, data: bytes) -> tuple[bytes, str | None]:
        """Returns (bytes to send, action) where action is None, "terminate" or "help"."""
        out = bytearray()
        for b in data:
            if self._pending:
                self._pending = False
                if b == ord("."):
                    return bytes(out), "terminate"
                if b == ord("?"):
                    self._at_line_start = False
                    return bytes(out), "help"
                if b != self.char:
                    out.append(self.char)
                out.append(b)
                self._at_line_start = b in (0x0D, 0x0A)
                continue
            if self._at_line_start and b == self.char:
                self._pending = True
                continue
            out.append(b)
            self._at_line_start = b in (0x0D, 0x0A)
        return bytes(out), None


@dataclass
class ShellResult:
    exit_code: int
    reason: str


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        size = shutil.get_terminal_size()
    return size.columns, size.lines


async def run_shell(
    conn: DataChannelConnection,
    *,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
    escape: bytes | None = b"~",
    output_filter: Callable[[bytes], bytes] | None = None,
) -> ShellResult:
    """Run the session on this terminal until it ends; returns the exit status to use.

    ``output_filter`` sees (and may rewrite) every chunk of remote output before it is written.
    When stdin is not a terminal (a pipe, a file, /dev/null), its end is passed on as Ctrl-D so
    a remote shell or command reading it sees end of input, as with ``ssh host < file``.
    """
    stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    loop = asyncio.get_running_loop()
    is_tty = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if is_tty else None
    filt = EscapeFilter(escape) if escape else None
    done: asyncio.Future[ShellResult] = loop.create_future()
    last_size: tuple[int, int] | None = None

    def finish(code: int, reason: str) -> None:
        if not done.done():
            done.set_result(ShellResult(code, reason))

    def send_size() -> None:
        nonlocal last_size
        size = _size(stdout_fd if os.isatty(stdout_fd) else stdin_fd)
        if size != last_size and not conn.closed:
            last_size = size
            conn.send_nowait(PayloadType.SIZE, pl.encode_size(*size))

    def on_input(data: bytes) -> None:
        if not data:
            # stdin closed: keep showing output until the remote side ends
            if not is_tty and not conn.closed:
                with contextlib.suppress(TransportError):
                    conn.send_nowait(PayloadType.OUTPUT, b"\x04")
            return
        action = None
        if filt is not None:
            data, action = filt.feed(data)
        if data and not conn.closed:
            with contextlib.suppress(TransportError):
                conn.send_nowait(PayloadType.OUTPUT, data)
        if action == "help":
            os.write(stdout_fd, ESCAPE_HELP)
        elif action == "terminate":
            finish(255, "terminated by ~.")

    async def pump_events() -> None:
        exit_code: int | None = None
        async for ev in conn.events():
            if isinstance(ev, SessionReady):
                send_size()
            elif isinstance(ev, HandshakeCompleted) and ev.customer_message:
                os.write(stdout_fd, ev.customer_message.encode() + b"\r\n")
            elif isinstance(ev, StreamData):
                if ev.payload_type in (PayloadType.OUTPUT, PayloadType.STDERR):
                    data = output_filter(ev.data) if output_filter is not None else ev.data
                    if data:
                        write_all(stdout_fd, data)
                elif ev.payload_type == PayloadType.EXIT_CODE:
                    with contextlib.suppress(pl.PayloadError):
                        exit_code = pl.decode_exit_code(ev.data)
            elif isinstance(ev, AgentSessionState) and ev.state == "Terminating":
                finish(exit_code or 0, "session ended")
            elif isinstance(ev, ChannelClosed):
                finish(exit_code or 0, ev.output or "session ended")
            elif isinstance(ev, ConnectionLost):
                finish(255, ev.reason)
        finish(exit_code if exit_code is not None else 255, conn.end_reason or "session ended")

    def on_stdin() -> None:
        try:
            data = os.read(stdin_fd, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin_fd)
        on_input(data)

    async def read_stdin_blocking() -> None:
        """For stdin that cannot be polled (a regular file, /dev/null)."""
        while True:
            try:
                data = await loop.run_in_executor(None, os.read, stdin_fd, 1024)
            except OSError:
                data = b""
            on_input(data)
            if not data:
                return

    if saved is not None:
        tty.setraw(stdin_fd, termios.TCSANOW)
    reader: asyncio.Task[None] | None = None
    try:
        loop.add_reader(stdin_fd, on_stdin)
    except (OSError, ValueError):
        reader = asyncio.create_task(read_stdin_blocking())
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGWINCH, send_size)
    poll = asyncio.create_task(_poll_size(send_size))
    events = asyncio.create_task(pump_events())
    try:
        return await done
    finally:
        poll.cancel()
        events.cancel()
        if reader is not None:
            reader.cancel()
        loop.remove_reader(stdin_fd)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGWINCH)
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        await conn.close()


async def _poll_size(send_size: object) -> None:
    """The reference client polls the size every 500 ms; SIGWINCH covers most cases."""
    assert callable(send_size)
    while True:
        await asyncio.sleep(0.5)
        send_size()
