"""Helpers for driving ``python -m ssmtui`` as a subprocess: a clean environment, one-line error
checks, and :class:`PtySession`, a small expect-style driver on a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SSMTUI = [PY, "-m", "ssmtui"]
WEB_DEV = "i-01d6875ee4127775f"  # web-dev-1, dev/us-east-1, latest agent

#: Makes the pty the child's controlling terminal (the child is a session leader), then execs.
_LAUNCH = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus machine-wide AWS / proxy / ssmtui settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SSMTUI_", "PYTEST_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        XDG_CONFIG_HOME=str(ROOT / "tests" / "no-such-config-dir"),
        TERM="xterm",
        SSMTUI_DATA_DIR=str(Path(tempfile.gettempdir()) / f"ssmtui-test-data-{os.getpid()}"),
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ssmtui ARGS`` to completion, output captured as text."""
    return subprocess.run(
        [*SSMTUI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
    )


def assert_one_error(res: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """Exactly ``ssmtui: …`` (+ optional ``hint: …``) on stderr, non-zero exit, no traceback."""
    assert res.returncode != 0, res
    if code is not None:
        assert res.returncode == code, res
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith("ssmtui: "), res.stderr
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), res.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.1)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtySession:
    """A child process on a fresh pseudo-terminal (its controlling terminal), driven like
    ``pexpect``: :meth:`send` keys, :meth:`expect` output."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        rows: int = 24,
        cols: int = 80,
        cwd: Path = ROOT,
    ) -> None:
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        self.proc = subprocess.Popen(
            [PY, "-c", _LAUNCH, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env if env is not None else clean_env(),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += data
                self._cond.notify_all()

    @property
    def output(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes | re.Pattern[bytes], timeout: float = 30) -> re.Match[bytes]:
        """Wait for ``pattern`` in the output after the previous match; returns the match."""
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search(self._buf, self._pos)
                if match is not None:
                    self._pos = match.end()
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    tail = bytes(self._buf[-1500:])
                    why = "exited" if self._eof else "timed out"
                    raise AssertionError(f"{why} waiting for {regex.pattern!r}; output: {tail!r}")
                self._cond.wait(min(left, 0.5))

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal size and tell the child, as a terminal emulator does."""
        set_winsize(self.master, rows, cols)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGWINCH)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)
        with contextlib.suppress(OSError):
            os.close(self.master)


@contextlib.contextmanager
def pty_session(
    argv: Sequence[str], env: dict[str, str] | None = None, **kw: int
) -> Iterator[PtySession]:
    session = PtySession(argv, env, **kw)  # type: ignore[arg-type]
    try:
        yield session
    finally:
        session.close()
