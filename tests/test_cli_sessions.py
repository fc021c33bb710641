"""The session verbs end to end: ``python -m ssmtui --demo connect|exec|forward|proxy`` as
subprocesses (the demo fleet runs inside each one, with real bash PTYs and real TCP), interactive
shells on a real pseudo-terminal, and every bad input as one ``ssmtui:`` line."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shlex
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssmtui.cli_forward import format_bytes, parse_forward_spec
from ssmtui.cli_sessions import ExitMarker, command_text, wrap_for_exit_status
from ssmtui.errors import UsageError
from tests.cli_helpers import (
    SSMTUI,
    WEB_DEV,
    assert_one_error,
    clean_env,
    pty_session,
    run_cli,
)

pytestmark = pytest.mark.timeout(90)
MARK = b"\x1b]777;ssmtui-exit="


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("15432:5432", ("127.0.0.1", 15432, 5432, False)),
        ("0:80", ("127.0.0.1", 0, 80, False)),
        ("8080", ("127.0.0.1", 8080, 8080, False)),
        ("0.0.0.0:8080:80", ("0.0.0.0", 8080, 80, True)),
        ("*:8080:80", ("0.0.0.0", 8080, 80, True)),
        ("localhost:1:2", ("127.0.0.1", 1, 2, True)),
        ("[::1]:8080:80", ("::1", 8080, 80, True)),
    ],
)
def test_forward_spec_parses(spec: str, want: tuple[str, int, int, bool]) -> None:
    got = parse_forward_spec(spec)
    assert (got.bind, got.local_port, got.remote_port, got.explicit_bind) == want


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("abc:1", "local port is 'abc', not a port"),
        ("70000:80", "local port 70000 is out of range (0-65535)"),
        ("80:0", "remote port 0 is out of range (1-65535)"),
        ("80:", "remote port is nothing"),
        ("db:1:2", "bind address 'db' is not an IP address"),
        ("1:2:3:4", "too many ':'"),
        ("[::1:80:80", "unclosed [address]"),
        ("0", "remote port 0"),
    ],
)
def test_forward_spec_errors(spec: str, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_forward_spec(spec)
    assert needle in str(err.value) and err.value.hint and "\n" not in str(err.value)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 999, 1000, 1_234_567, 5_600_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
        "5.6 GB",
    ]


def test_exit_marker_split_anywhere() -> None:
    stream = b"out\r\n" + MARK + b"42\x07" + b"tail \x1b[0m end"
    for size in range(1, len(stream) + 1):
        marker = ExitMarker()
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        shown = b"".join(marker.feed(c) for c in chunks) + marker.flush()
        assert (shown, marker.code) == (b"out\r\ntail \x1b[0m end", 42), size


def test_exit_marker_lookalikes_pass_through() -> None:
    marker = ExitMarker()
    text = b"\x1b]777;other\x07 \x1b]777;ssmtui-exit=12345\x07 \x1b]777;ssmtui-exit="
    assert marker.feed(text) + marker.flush() == text
    assert marker.code is None


@pytest.mark.parametrize(
    ("command", "code", "out"),
    [
        ("echo hi; exit 3", 3, b"hi\n"),
        ("exit 0", 0, b""),
        ("if then", 2, b""),  # a syntax error ends the inner shell only
    ],
)
def test_wrapper_reports_the_status(command: str, code: int, out: bytes) -> None:
    res = subprocess.run(
        ["sh", "-c", wrap_for_exit_status(command)],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"},
        timeout=10,
    )
    marker = ExitMarker()
    assert marker.feed(res.stdout) + marker.flush() == out
    assert marker.code == res.returncode == code


def test_command_text() -> None:
    assert command_text(["ls; exit 3"]) == "ls; exit 3"
    assert command_text(["sh", "-c", "exit 3"]) == "sh -c 'exit 3'"
    with pytest.raises(UsageError):
        command_text([])


# --------------------------------------------------------------------------- connect


def test_connect_shell_keys_resize_and_exit() -> None:
    with pty_session([*SSMTUI, "--demo", "connect", "web-dev-1"]) as term:
        term.send(b"echo hi-$((40+2))\r")
        term.expect(b"hi-42")
        # Ctrl-C reaches the remote pty and interrupts sleep: the next command runs long
        # before sleep 30 would have ended.
        term.send(b"sleep 30\r")
        term.expect(b"sleep 30\r\n")
        threading.Event().wait(0.5)
        term.send(b"\x03")
        term.send(b"echo back-$((2+2))\r")
        term.expect(b"back-4", timeout=20)
        # A resize of the local terminal reaches the remote pty.
        term.resize(33, 101)
        for _ in range(20):
            term.send(b"stty size\r")
            try:
                term.expect(b"33 101", timeout=1)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"the resize never arrived: {term.output[-300:]!r}")
        term.send(b"exit\r")
        assert term.wait() == 0
        assert b"ssmtui:" not in term.output


def test_connect_command_exit_status() -> None:
    res = run_cli("--demo", "connect", "web-dev-1", "--", "sh", "-c", "echo ran; exit 3")
    assert res.returncode == 3, res
    assert "ran" in res.stdout and "777" not in res.stdout and res.stderr == ""
    res = run_cli("--demo", "connect", "web-dev-1", "--", "true")
    assert res.returncode == 0, res


def test_ctrl_c_stops_a_command_and_its_status_comes_back() -> None:
    argv = [*SSMTUI, "--demo", "connect", "web-dev-1", "--", "echo started; sleep 30"]
    with pty_session(argv) as term:
        term.expect(b"started")
        threading.Event().wait(0.3)
        term.send(b"\x03")
        assert term.wait(timeout=20) == 130  # 128 + SIGINT, from the remote shell


def test_connect_exit_status_of_the_login_shell() -> None:
    with pty_session([*SSMTUI, "--demo", "connect", "--exit-status", "web-dev-1"]) as term:
        term.send(b"echo mark-$((40+2))\r")
        term.expect(b"mark-42")
        term.send(b"exit 3\r")
        assert term.wait() == 3
        assert MARK not in term.output and b"ssmtui:" not in term.output


def test_tilde_dot_ends_a_session_whose_agent_went_silent() -> None:
    argv = [*SSMTUI, "--demo", "--demo-fault", "agent:noack", "connect", "web-dev-1"]
    with pty_session(argv) as term:
        term.send(b"echo mark-$((40+2))\r")
        term.expect(b"mark-42")
        term.send(b"\r~.")
        assert term.wait(timeout=20) == 255
        line = term.expect(re.compile(rb"ssmtui: [^\r\n]*")).group(0)
        assert b"ended by ~." in line and b"web-dev-1" in line


def test_a_dead_agent_is_reported_in_one_line() -> None:
    argv = [*SSMTUI, "--demo", "--demo-fault", "agent:noack", "connect", "web-dev-1"]
    with pty_session(argv, clean_env(SSMTUI_STALL_TIMEOUT="2")) as term:
        term.send(b"echo mark-$((40+2))\r")
        term.expect(b"mark-42")
        assert term.wait(timeout=30) == 255
        line = term.expect(re.compile(rb"ssmtui: [^\r\n]*")).group(0)
        assert b"lost the session to i-01d6875ee4127775f (web-dev-1): no answer" in line
        assert b"Traceback" not in term.output


def test_several_matches_offer_a_picker_on_a_terminal() -> None:
    argv = [*SSMTUI, "--demo", "-p", "dev", "-r", "us-east-1", "connect", "tag:Role=web"]
    with pty_session(argv) as term:
        listing = term.expect(re.compile(rb"pick one \[1-(\d)\]"))
        assert int(listing.group(1)) >= 2
        choice = re.search(rb"(\d+)\) web-dev-1 \(", term.output)
        assert choice is not None, term.output
        term.send(choice.group(1) + b"\r")
        term.send(b"hostname; echo picked-$((1+1))\r")
        term.expect(b"picked-2")
        assert b"web-dev-1" in term.output.split(b"picked-2")[0]
        term.send(b"exit\r")
        assert term.wait() == 0


# --------------------------------------------------------------------------- exec


def test_exec_streams_and_exit_code() -> None:
    cmd = "echo to-stdout; echo to-stderr >&2; exit 3"
    res = run_cli("--demo", "exec", WEB_DEV, "--", "sh", "-c", cmd)
    assert res.returncode == 3, res
    assert (res.stdout, res.stderr) == ("to-stdout\n", "to-stderr\n")
    res = run_cli("--demo", "exec", "web-dev-1", "--", "echo a; echo b")
    assert (res.returncode, res.stdout) == (0, "a\nb\n")


def test_sessions_are_recorded_in_the_history(tmp_path: Path) -> None:
    from ssmtui.store.history import History

    env = clean_env(SSMTUI_DATA_DIR=str(tmp_path))
    res = run_cli("--demo", "exec", "web-dev-1", "--", "exit 3", env=env)
    assert res.returncode == 3, res
    rows = History(tmp_path / "history.sqlite3").list()
    assert [(r.kind, r.instance_name, r.exit_status) for r in rows] == [("command", "web-dev-1", 3)]
    assert rows[0].ended_at is not None and rows[0].bytes_in > 0
    assert oct((tmp_path / "history.sqlite3").stat().st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------- forward


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A threaded TCP echo server on loopback."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()


async def _echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    writer.close()
    return got


def test_forward_two_tunnels_then_ctrl_c(echo_port: int) -> None:
    proc = subprocess.Popen(
        [
            *SSMTUI,
            "--demo",
            "forward",
            "web-dev-1",
            f"0:{echo_port}",
            f"0:{echo_port}",
            *("--sessions", "2"),  # a pool of two sessions per tunnel
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode() for _ in range(2)]
        ports = []
        for line in lines:
            match = re.match(
                r"Forwarding 127\.0\.0\.1:(\d+) → i-01d6875ee4127775f \(web-dev-1\) → "
                rf"localhost:{echo_port}  \[smux\]$",
                line.rstrip("\n"),
            )
            assert match, lines
            ports.append(int(match.group(1)))
        assert len(set(ports)) == 2

        async def traffic() -> list[bytes]:
            blobs = [bytes([i]) * 40_000 for i in range(6)]
            got = await asyncio.gather(*(_echo(ports[i % 2], b) for i, b in enumerate(blobs)))
            assert list(got) == blobs
            return list(got)

        asyncio.run(traffic())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
        status = proc.stdout.read().decode()  # (not communicate(): readline() buffered some)
        assert re.match(rf":{ports[0]} up · \d+ conn \(\d+ total\)", status), status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forward_port_in_use(echo_port: int) -> None:
    res = run_cli("--demo", "forward", "web-dev-1", f"{echo_port}:80")
    line = assert_one_error(res, 1)
    assert f"cannot listen on 127.0.0.1:{echo_port}: Address already in use" in line


# --------------------------------------------------------------------------- bad input


DENIED = ["--demo", "--demo-fault", "error:StartSession:AccessDeniedException:0"]
BAD = [
    (["--demo", "connect", "no-such-host"], 255, "no instance matches 'no-such-host'"),
    (["--demo", "connect", "tag:Role=web"], 255, "is ambiguous: 8 instances match"),
    (["--demo", "connect", "reporting-old"], 255, "is not connected"),
    (["--demo", "forward", "web-dev-1", "abc:1"], 2, "bad forward spec 'abc:1'"),
    (["--demo", "forward", "web-dev-1", "70000:80"], 2, "local port 70000 is out of range"),
    (["--demo", "forward", "web-dev-1", "0.0.0.0:8080:80"], 2, "refusing to listen on 0.0.0.0"),
    (["--demo", "forward", "web-dev-1", "0:80", "--host", ""], 2, "--host is empty"),
    (["--demo", "proxy", "web-dev-1", "70000"], 2, "bad port 70000"),
    (["--demo", "exec", "web-dev-1"], 2, "the following arguments are required: COMMAND"),
    (["--demo", "connect", "web-dev-1", "--reason", ""], 2, "--reason must be 1 to 256"),
    (
        [*DENIED, "connect", "web-dev-1"],
        255,
        "dev/us-east-1: not authorized to call ssm:StartSession (AccessDeniedException",
    ),
    (
        [*DENIED, "forward", "web-dev-1", "0:80"],
        1,
        "not authorized to call ssm:StartSession",
    ),
    (
        ["--demo", "--demo-fault", "throttle:0:StartSession", "exec", "web-dev-1", "--", "true"],
        255,
        "dev/us-east-1: AWS is throttling the requests (ThrottlingException on StartSession",
    ),
    (
        ["--demo", "--demo-fault", "expired", "proxy", "web-dev-1"],
        255,
        "the AWS credentials have expired",
    ),
    (["--demo", "--demo-fault", "nonsense", "list"], 2, "bad --demo-fault 'nonsense'"),
    (["--demo-fault", "expired", "connect", "web-dev-1"], 2, "--demo-fault needs --demo"),
]


def test_bad_input_is_one_line() -> None:
    """Every case in :data:`BAD` (run concurrently: they are independent processes)."""

    def check(case: tuple[list[str], int, str]) -> str | None:
        args, code, needle = case
        res = run_cli(*args)
        try:
            line = assert_one_error(res, code)
            assert needle in line, line
        except AssertionError as exc:
            return f"{shlex.join(args)}: {exc}"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        failures = [r for r in pool.map(check, BAD) if r]
    assert not failures, "\n".join(failures)
