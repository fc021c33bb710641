"""Processes for the simulated agents: a pty-backed shell and a plain command, plus cleanup.

Children run in their own session (``setsid``), so ending a session kills everything it
started, background jobs included. Every child carries ``SSMTUI_SIM_SESSION=<session id>`` in its
environment, which lets tests prove that nothing outlived its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import signal
import struct
import termios
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER_ENV",
    "PtyProcess",
    "kill_session",
    "shell_argv",
    "shell_environment",
    "split_utf8",
]

#: Environment variable naming the simulated session a child process belongs to.
MARKER_ENV = "SSMTUI_SIM_SESSION"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def split_utf8(data: bytes) -> tuple[bytes, bytes]:
    """Split off an incomplete UTF-8 sequence (≤ 3 bytes) at the end of ``data``.

    Returns ``(complete, tail)``; the agent sends ``complete`` and prepends ``tail`` to its next
    read, so a multi-byte character is never cut between two frames.
    """
    n = len(data)
    for back in range(1, min(3, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if back < need:
                return data[: n - back], data[n - back :]
        return data, b""
    return data, b""


def shell_argv(command: str | None = None) -> list[str]:
    """``bash --noprofile --norc -i`` (or ``-c command``); plain ``sh`` if bash is missing."""
    bash = shutil.which("bash")
    if bash is None:
        sh = shutil.which("sh") or "/bin/sh"
        return [sh, "-c", command] if command is not None else [sh, "-i"]
    if command is not None:
        return [bash, "--noprofile", "--norc", "-c", command]
    return [bash, "--noprofile", "--norc", "-i"]


def shell_environment(
    home: Path, host_name: str, session_id: str, user: str = "ssm-user"
) -> dict[str, str]:
    """A small, clean environment like the agent gives ``ssm-user`` (nothing inherited but
    ``PATH`` and the locale). ``user`` only shows in the prompt and ``$USER``: the processes run
    as whoever runs the demo."""
    env = {
        "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "SHELL": shutil.which("bash") or "/bin/sh",
        "TERM": "xterm-256color",
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "HOSTNAME": host_name,
        "PS1": f"[{user}@{host_name} \\W]$ ",
        "HISTFILE": str(home / ".bash_history"),
        MARKER_ENV: session_id,
    }
    for name in ("LC_ALL", "LC_CTYPE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _session_members(sid: int) -> list[int]:
    """Pids whose session id is ``sid`` (Linux /proc; empty elsewhere)."""
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 3 and int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def kill_session(sid: int) -> None:
    """SIGKILL the process group and every process of the session led by ``sid``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for pid in _session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


async def reap(proc: asyncio.subprocess.Process, timeout: float = 5.0) -> int | None:
    """Kill ``proc``'s session and wait for its exit status."""
    kill_session(proc.pid)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            return await proc.wait()
    return proc.returncode


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _take_controlling_tty() -> None:  # runs in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A child process on a new pseudo-terminal, read and written without blocking the loop."""

    def __init__(self, proc: asyncio.subprocess.Process, master_fd: int) -> None:
        self.proc = proc
        self.fd = master_fd
        self._loop = asyncio.get_running_loop()
        self._wbuf = bytearray()
        self._writing = False
        self._exit = self._loop.create_task(proc.wait())
        self._closed = False

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        *,
        cols: int = 80,
        rows: int = 24,
    ) -> PtyProcess:
        """Start ``argv`` as a session leader with the pty as its controlling terminal."""
        master, slave = os.openpty()
        try:
            os.set_blocking(master, False)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,
                preexec_fn=_take_controlling_tty,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(proc, master)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    async def read(self, size: int, idle_after_exit: float = 0.2) -> bytes:
        """Up to ``size`` bytes of terminal output; ``b""`` once the terminal is finished.

        That is when the kernel reports EIO (every slave fd closed), or when the process exited
        and nothing more arrived for ``idle_after_exit`` seconds (a background job may hold the
        terminal open).
        """
        while not self._closed:
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return b""
                raise
            readable: asyncio.Future[None] = self._loop.create_future()
            self._loop.add_reader(self.fd, _resolve, readable)
            try:
                if self.exited:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(idle_after_exit):
                            await readable
                    if not readable.done():
                        return b""
                else:
                    waiters: set[asyncio.Future[Any]] = {readable, self._exit}
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._loop.remove_reader(self.fd)
                readable.cancel()
        return b""

    def write(self, data: bytes) -> None:
        """Queue keystrokes for the terminal (written as the terminal accepts them)."""
        if self._closed:
            return
        self._wbuf += data
        self._flush()

    def _flush(self) -> None:
        while self._wbuf and not self._closed:
            try:
                n = os.write(self.fd, self._wbuf)
            except BlockingIOError:
                if not self._writing:
                    self._loop.add_writer(self.fd, self._flush)
                    self._writing = True
                return
            except OSError:
                self._wbuf.clear()  # the terminal is gone
                break
            del self._wbuf[:n]
        if self._writing:
            self._loop.remove_writer(self.fd)
            self._writing = False

    def resize(self, cols: int, rows: int) -> None:
        """TIOCSWINSZ; the kernel then sends SIGWINCH to the terminal's foreground group."""
        if self._closed:
            return
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        """Kill the process and its session, reap it, close the terminal. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writing:
            self._loop.remove_writer(self.fd)
            self._writing = False
        kill_session(self.proc.pid)
        try:
            async with asyncio.timeout(5.0):
                await asyncio.shield(self._exit)
        except TimeoutError:
            pass
        finally:
            os.close(self.fd)
