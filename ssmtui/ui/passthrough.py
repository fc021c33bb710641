"""Full-fidelity mode: hand the real terminal to a session tab, then give it back.

Like :func:`ssmtui.transport.shell.run_shell`, but for a session the app keeps: it does not read
the data channel itself (the tab's event pump calls :meth:`Passthrough.write` with the remote
output), it never closes the connection, and it returns when the user presses the detach key
(``ctrl+]``), types ``~.`` after a newline, or the session ends. The caller runs it inside
``App.suspend()``. No textual in here.
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

from ssmtui.transport.fdio import write_all
from ssmtui.transport.shell import ESCAPE_HELP, EscapeFilter

__all__ = ["DETACH_KEY", "Passthrough", "real_terminal_fd", "terminal_size"]

#: ctrl+] (as telnet): back to the app.
DETACH_KEY = b"\x1d"
_RESET_MODES = b"\x1b[?1l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[0m"


def terminal_size(fd: int) -> tuple[int, int]:
    """``(columns, lines)`` of the terminal on ``fd`` (or the environment's guess)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        size = shutil.get_terminal_size()
    return size.columns, size.lines


def real_terminal_fd() -> int:
    """The descriptor whose size is the real terminal's (stdout, else stderr, else 1)."""
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None and stream.isatty():
            return stream.fileno()
    return 1


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the terminal went away: nothing to show it on
        write_all(fd, data)


class Passthrough:
    """Raw passthrough between the real terminal and a session, until detach or the end.

    ``send`` queues bytes for the remote; ``send_size(columns, lines)`` reports the real
    terminal's size. Output arrives through :meth:`write` while :meth:`run` is active.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        send_size: Callable[[int, int], None],
        *,
        detach_key: bytes = DETACH_KEY,
        escape: bytes | None = b"~",
        tty_path: str = "/dev/tty",
    ) -> None:
        self._send = send
        self._send_size = send_size
        self._detach = detach_key
        self._filter = EscapeFilter(escape) if escape else None
        self._tty_path = tty_path
        self._out_fd: int | None = None
        self._done: asyncio.Future[str] | None = None
        self._last_size: tuple[int, int] | None = None

    @property
    def active(self) -> bool:
        """Whether :meth:`run` is between its start and its end."""
        return self._done is not None and not self._done.done()

    def write(self, data: bytes) -> None:
        """Remote output, straight to the terminal."""
        if self._out_fd is not None and data:
            _write_all(self._out_fd, data)

    def end(self, reason: str) -> None:
        """The session ended: :meth:`run` returns ``reason``."""
        if self._done is not None and not self._done.done():
            self._done.set_result(reason)

    def size(self) -> tuple[int, int]:
        """The real terminal's ``(columns, lines)``."""
        return terminal_size(self._out_fd if self._out_fd is not None else real_terminal_fd())

    def _check_size(self) -> None:
        size = self.size()
        if size != self._last_size:
            self._last_size = size
            self._send_size(*size)

    def _on_input(self, data: bytes) -> None:
        detach = self._detach in data
        if detach:
            data = data[: data.index(self._detach)]
        action = None
        if self._filter is not None and data:
            data, action = self._filter.feed(data)
        if data:
            self._send(data)
        if action == "help":
            self.write(ESCAPE_HELP + b"  ctrl+] - back to ssmtui\r\n")
        if detach or action == "terminate":
            self.end("detached")

    def _open(self) -> tuple[int, int, bool]:
        """``(in_fd, out_fd, owned)``: the controlling terminal, else stdin/stdout."""
        try:
            fd = os.open(self._tty_path, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return 0, 1, False
        return fd, fd, True

    async def run(self, intro: bytes = b"") -> str:
        """Pass the terminal through until detach (returns ``"detached"``) or :meth:`end`."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        in_fd, out_fd, owned = self._open()
        self._out_fd = out_fd
        saved = None
        with contextlib.suppress(termios.error):
            saved = termios.tcgetattr(in_fd)
            tty.setraw(in_fd, termios.TCSANOW)

        def on_readable() -> None:
            try:
                data = os.read(in_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(in_fd)
                self.end("the terminal closed")
                return
            self._on_input(data)

        async def poll_size() -> None:
            while True:
                await asyncio.sleep(0.5)
                self._check_size()

        loop.add_reader(in_fd, on_readable)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGWINCH, self._check_size)
        poller = asyncio.create_task(poll_size(), name="passthrough-size")
        try:
            _write_all(out_fd, b"\x1b[?1049h\x1b[H\x1b[2J" + intro)
            self._check_size()
            return await self._done
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            loop.remove_reader(in_fd)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGWINCH)
            _write_all(out_fd, _RESET_MODES + b"\x1b[?1049l")
            if saved is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
            self._out_fd = None
            if owned:
                os.close(in_fd)
