"""The real app in a real terminal: ``python -m ssmtui --demo`` inside tmux, driven by keys.

Filter the fleet, open a shell tab and run a command, hand the terminal to the session (full
terminal mode) and come back, forward a port to a TCP echo server this test runs and use it from
outside the app, then quit and check the exit status; open the doctor and the active sessions
and terminate someone else's session. Skipped only when tmux is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def echo_server() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (a thread per connection)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


class Tmux:
    """One private tmux server (``-L``) with one session running the app."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"ssmtui-test-{os.getpid()}"
        self.tmp = tmp
        self.rc_file = tmp / "rc"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "TMUX"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        self.env.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            XDG_CONFIG_HOME=str(tmp / "config"),
            XDG_DATA_HOME=str(tmp / "data"),
            XDG_STATE_HOME=str(tmp / "state"),
            HOME=str(tmp / "home"),
            PYTHONPATH=str(ROOT),
        )
        (tmp / "home").mkdir(exist_ok=True)

    def tmux(self, *args: str) -> str:
        res = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=15,
            env=self.env,
            cwd=ROOT,
        )
        return res.stdout

    def start(self, *extra: str) -> None:
        args = " ".join(extra)
        app = f"{sys.executable} -m ssmtui --demo {args}; echo $? > {self.rc_file}"
        self.tmux("new-session", "-d", "-x", "160", "-y", "45", "-s", "app", app)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "app", "-l", text)

    def wait(self, cond: Callable[[str], object], what: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if cond(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)

    def exit_status(self, timeout: float = 20) -> str:
        """The app's exit status once it has quit (what the shell wrapper wrote)."""
        deadline = time.monotonic() + timeout
        while not self.rc_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.rc_file.read_text().strip()

    def kill(self) -> None:
        self.tmux("kill-server")


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_the_app_in_tmux(tmp_path: Path) -> None:
    term = Tmux(tmp_path)
    with echo_server() as echo_port:
        try:
            term.start()
            term.wait(lambda s: "web-dev-1" in s and "refreshed" in s, "the fleet", 40)
            time.sleep(0.5)  # let the app finish its start-up exchange with the terminal

            # filter to one instance, open a shell tab, run a command
            term.keys("/")
            time.sleep(0.4)  # focus moves to the filter on the app's next turn
            term.type("web-dev-1")
            term.keys("Enter")
            term.wait(lambda s: re.search(r"\d+ of \d+ shown", s), "the filter")
            term.keys("Enter")
            term.wait(lambda s: "web-dev-1 ●" in s and "$" in s.split("ready", 1)[-1], "a prompt")
            term.type("echo tmux-$((20+22))")
            term.keys("Enter")
            term.wait(lambda s: "tmux-42" in lines(s), "the command's output")

            # full terminal mode: the session gets the whole terminal, ctrl+] comes back
            term.keys("C-o")
            term.wait(lambda s: "Close tab" not in s and "tmux-42" in lines(s), "full terminal")
            term.type("echo full-$((2+3))")
            term.keys("Enter")
            term.wait(lambda s: "full-5" in lines(s) and "Close tab" not in s, "full mode output")
            term.keys("C-]")
            term.wait(lambda s: "Close tab" in s and "full-5" in lines(s), "back in the app")

            # a tunnel from the fleet to the echo server; read its local port off the screen
            term.keys("M-1")
            term.wait(lambda s: "Forward" in s and "Close tab" not in s, "the fleet again")
            term.keys("f")
            term.wait(lambda s: "Forward a port from web-dev-1" in s, "the form")
            term.type(str(echo_port))
            term.keys("Enter")
            pattern = re.compile(rf"up .*127\.0\.0\.1:(\d+) .*web-dev-1 → {echo_port}")
            screen = term.wait(lambda s: pattern.search(s), "the tunnel to come up", 30)
            match = pattern.search(screen)
            assert match is not None
            local_port = int(match.group(1))
            payload = b"echo through ssmtui " * 100
            assert echo_through(local_port, payload) == payload

            term.keys("q")
            assert term.exit_status() == "0"

            # the history lists both: the shell and the tunnel, with their instance
            from ssmtui.store.history import History

            rows = History(tmp_path / "data" / "ssmtui" / "history.sqlite3").list()
            kinds = sorted((r.kind, r.instance_name) for r in rows)
            assert kinds == [("shell", "web-dev-1"), ("tunnel", "web-dev-1")], kinds
            assert all(r.ended_at is not None for r in rows)
        finally:
            term.kill()


def test_connect_flag_opens_the_app_in_a_shell(tmp_path: Path) -> None:
    term = Tmux(tmp_path)
    try:
        term.start("--connect", "web-dev-1")
        term.wait(lambda s: "web-dev-1 ●" in s and "$" in s.split("ready", 1)[-1], "a prompt", 40)
        term.type("echo straight-$((40+2))")
        term.keys("Enter")
        term.wait(lambda s: "straight-42" in lines(s), "the command's output")
        term.keys("M-1")
        term.wait(lambda s: "Forward" in s and "Close tab" not in s, "the fleet")
        term.keys("q")
        assert term.exit_status() == "0"
    finally:
        term.kill()


def test_doctor_and_active_sessions_in_tmux(tmp_path: Path) -> None:
    """``D`` shows why instances are missing (with fixes); ``a`` lists sessions started
    elsewhere, and one of alice's is terminated after the confirmation."""
    term = Tmux(tmp_path)
    try:
        term.start()
        term.wait(lambda s: "web-dev-1" in s and "refreshed" in s, "the fleet", 40)
        time.sleep(0.5)

        term.keys("D")
        screen = term.wait(
            lambda s: "instance(s) examined" in s and "orphan-no-profile" in s, "the doctor", 40
        )
        assert "isolated-sg-blocks-443" in screen and "reporting-old" in screen
        term.keys("Escape")
        term.wait(lambda s: "refreshed" in s and "examined" not in s, "the fleet again")

        term.keys("a")
        screen = term.wait(lambda s: "alice@example.com" in s, "the active sessions", 30)
        assert "bob@example.com" in screen
        # alice's session on web-dev-2 (the only active one in dev/us-east-1)
        row = next(i for i, ln in enumerate(lines(screen)) if "web-dev-2" in ln)
        first = next(i for i, ln in enumerate(lines(screen)) if "Connected" in ln)
        for _ in range(row - first):
            term.keys("Down")
        time.sleep(0.3)
        term.keys("x")
        term.wait(lambda s: "started elsewhere" in s, "the confirmation")
        term.keys("y")
        term.wait(
            lambda s: not any("web-dev-2" in ln and "Connected" in ln for ln in lines(s)),
            "the session to end",
            30,
        )
        term.keys("q")
        term.wait(lambda s: "refreshed" in s and "alice" not in s, "the fleet")
        term.keys("q")
        assert term.exit_status() == "0"
    finally:
        term.kill()
