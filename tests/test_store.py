"""ssmtui.store: the sqlite history (schema, migrations, queries, pruning, permissions,
concurrent writers, no secrets), transcripts (asciicast v2 round trip, redaction) and recording
sessions through SessionService against the demo fleet."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ssmtui.errors import UsageError
from ssmtui.store import StoreError, data_dir
from ssmtui.store.history import (
    MIGRATIONS,
    SCHEMA_VERSION,
    History,
    HistoryQuery,
    default_history_path,
    kind_for_document,
)
from ssmtui.store.redact import REDACTED, StreamRedactor, scrub
from ssmtui.store.transcripts import (
    AnsiStripper,
    TranscriptEvent,
    TranscriptReader,
    TranscriptWriter,
    new_transcript_path,
    output_text,
    paced,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(name="umask0")
def umask0_fixture() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def start(h: History, n: int = 0, **kw: object) -> int:
    fields: dict[str, object] = {
        "kind": "shell",
        "instance_id": f"i-{n:017x}",
        "instance_name": f"web-{n}",
        "profile": "dev",
        "region": "us-east-1",
    }
    fields.update(kw)
    return h.record_start(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- paths


def test_data_dir_resolution(tmp_path: Path) -> None:
    assert data_dir({"SSMTUI_DATA_DIR": str(tmp_path)}) == tmp_path
    assert data_dir({"XDG_DATA_HOME": "/x/data"}) == Path("/x/data/ssmtui")
    assert data_dir({"XDG_DATA_HOME": "relative"}) == Path.home() / ".local/share/ssmtui"
    assert data_dir({}) == Path.home() / ".local/share/ssmtui"
    assert default_history_path({"SSMTUI_DATA_DIR": "/d"}) == Path("/d/history.sqlite3")


# ---------------------------------------------------------------------------- schema


def test_schema_and_wal(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    assert h.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    with sqlite3.connect(h.path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[1] for r in db.execute("PRAGMA index_list(sessions)")}
    assert cols == [
        "id",
        "kind",
        "instance_id",
        "instance_name",
        "profile",
        "region",
        "account_id",
        "document",
        "parameters",
        "started_at",
        "ended_at",
        "duration",
        "exit_status",
        "end_reason",
        "bytes_in",
        "bytes_out",
        "session_id",
        "transcript",
    ]
    assert {"sessions_started", "sessions_instance", "sessions_kind"} <= indexes
    assert History(h.path).schema_version == SCHEMA_VERSION  # reopening is a no-op


def test_migrates_an_empty_file_and_an_old_schema(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert History(empty).schema_version == SCHEMA_VERSION

    old = tmp_path / "v1.db"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO sessions (kind, instance_id, started_at) VALUES ('shell', 'i-old', 1000.0)"
    )
    db.commit()
    db.close()
    h = History(old)
    assert h.schema_version == SCHEMA_VERSION
    (rec,) = h.list()
    assert (rec.instance_id, rec.transcript, rec.started_at.year) == ("i-old", None, 1970)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        History(path)


def test_permissions_under_umask_0(tmp_path: Path, umask0: None) -> None:
    h = History(tmp_path / "a" / "b" / "history.sqlite3")
    keep_open = sqlite3.connect(h.path)  # so the -wal / -shm files stay while we look
    try:
        keep_open.execute("SELECT COUNT(*) FROM sessions").fetchone()
        start(h)
        assert mode(h.path) == 0o600
        assert mode(h.path.parent) == 0o700 and mode(h.path.parent.parent) == 0o700
        for suffix in ("-wal", "-shm"):
            assert mode(h.path.with_name(h.path.name + suffix)) == 0o600, suffix
    finally:
        keep_open.close()
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    History(loose)
    assert mode(loose) == 0o600


# ---------------------------------------------------------------------------- records


def test_record_get_and_end(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    rid = start(
        h,
        1,
        kind="command",
        document="AWS-StartNonInteractiveCommand",
        parameters={"command": ["exit 3"]},
        account_id="111122223333",
        started_at=t0,
    )
    rec = h.get(rid)
    assert rec is not None and not rec.ended and rec.duration is None
    assert rec.parameters == {"command": ["exit 3"]} and rec.started_at == t0
    h.record_end(
        rid,
        exit_status=3,
        end_reason="the command exited with 3",
        bytes_in=120,
        bytes_out=40,
        session_id="dev-0123",
        ended_at=t0 + timedelta(seconds=75),
    )
    rec = h.get(rid)
    assert rec is not None and rec.ended
    assert (rec.exit_status, rec.duration, rec.bytes_in, rec.bytes_out) == (3, 75.0, 120, 40)
    assert (rec.session_id, rec.account_id) == ("dev-0123", "111122223333")
    assert rec.display_instance == f"web-1 (i-{1:017x})"
    assert rec.to_json()["ended_at"] == "2024-05-01T12:01:15+00:00"
    assert h.get(9999) is None
    with pytest.raises(ValueError):
        start(h, kind="telnet")


def test_list_filters_and_search(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    now = datetime.now(UTC)
    start(h, 1, started_at=now - timedelta(days=3))
    start(
        h, 2, kind="tunnel", profile="prod", region="eu-west-1", started_at=now - timedelta(hours=5)
    )
    start(h, 3, kind="command", parameters={"command": ["uptime"]}, started_at=now)
    start(h, 4, instance_name="db_proxy%", started_at=now - timedelta(minutes=1))
    names = [r.instance_name for r in h.list()]
    assert names == ["web-3", "db_proxy%", "web-2", "web-1"]  # newest first
    assert [r.instance_name for r in h.list(limit=2, offset=1)] == ["db_proxy%", "web-2"]
    assert [r.kind for r in h.list(kind="tunnel")] == ["tunnel"]
    assert [r.instance_name for r in h.list(instance="web-1")] == ["web-1"]
    assert [r.instance_name for r in h.list(instance=f"{2:017x}")] == ["web-2"]
    assert [r.instance_name for r in h.list(text="UPTIME")] == ["web-3"]
    assert [r.instance_name for r in h.list(text="%")] == ["db_proxy%"]  # LIKE is escaped
    assert len(h.list(since=timedelta(days=1))) == 3
    assert [r.instance_name for r in h.list(profile="prod")] == ["web-2"]
    assert [r.instance_name for r in h.search("kind:tunnel region:eu")] == ["web-2"]
    assert [r.instance_name for r in h.search("since:2h web")] == ["web-3"]
    assert [r.instance_name for r in h.search("instance:web- dev since:4d")] == [
        "web-3",
        "web-1",
    ]
    assert h.count() == 4


def test_query_parsing() -> None:
    q = HistoryQuery.parse("web kind:SHELL instance:i-01 profile:prod since:1d", now=100_000.0)
    assert (q.words, q.kind, q.instance, q.profile, q.since) == (
        ("web",),
        "shell",
        "i-01",
        "prod",
        100_000.0 - 86_400,
    )
    assert HistoryQuery.parse("").is_empty and not q.is_empty
    assert HistoryQuery.parse("type:tunnel").kind == "tunnel"
    assert HistoryQuery.parse("since:2024-05-01").since is not None
    assert HistoryQuery.parse("http://x").words == ("http://x",)  # unknown prefixes are words
    for bad in ("kind:telnet", "since:yesterday", "profile:"):
        with pytest.raises(UsageError):
            HistoryQuery.parse(bad)


def test_kind_for_document() -> None:
    assert kind_for_document(None) == "shell"
    assert kind_for_document("AWS-StartPortForwardingSessionToRemoteHost") == "tunnel"
    assert kind_for_document("AWS-StartNonInteractiveCommand") == "command"
    assert kind_for_document("AWS-StartSSHSession") == "proxy"
    assert kind_for_document("Custom-RunShellAsAdmin") == "shell"
    assert kind_for_document("Corp-Whatever") == "plugin"


def test_prune(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    now = datetime.now(UTC)
    cast = tmp_path / "old.cast"
    cast.write_text("{}\n")
    for days in (40, 35, 10, 1, 0):
        rid = start(h, days, started_at=now - timedelta(days=days, minutes=1))
        if days == 40:
            h.set_transcript(rid, cast)
    assert h.prune(older_than_days=30) == 2
    assert not cast.exists()
    assert sorted(r.instance_name for r in h.list()) == ["web-0", "web-1", "web-10"]
    assert h.prune(keep_last=1) == 2
    assert [r.instance_name for r in h.list()] == ["web-0"]
    with pytest.raises(ValueError):
        h.prune()


def test_parameters_never_keep_secrets(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    rid = start(
        h,
        parameters={
            "command": [f"AWS_SECRET_ACCESS_KEY={SECRET} aws s3 ls"],
            "sessionToken": ["tok-SENSITIVE-1234"],
            "url": ["https://x/?X-Amz-Security-Token=FwoGZXIvSENSITIVE&a=1"],
            "key": [KEY_ID],
        },
    )
    h.record_end(rid, end_reason=f"failed: Authorization: Bearer abcdefghSENSITIVE {KEY_ID}")
    rec = h.get(rid)
    assert rec is not None
    assert rec.parameters["sessionToken"] == REDACTED
    assert rec.parameters["command"] == [f"AWS_SECRET_ACCESS_KEY={REDACTED} aws s3 ls"]
    assert rec.end_reason == f"failed: Authorization: Bearer {REDACTED} {REDACTED}"
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (SECRET, "SENSITIVE", KEY_ID):
        assert secret.encode() not in raw


# ---------------------------------------------------------------------------- concurrency

_WRITER = """
import sys
from ssmtui.store.history import History
h = History(sys.argv[1])
for i in range(40):
    rid = h.record_start(kind="shell", instance_id=f"i-proc{sys.argv[2]}-{i}")
    h.record_end(rid, exit_status=0, bytes_in=i)
"""


def test_concurrent_writers_threads_and_processes(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                rid = h.record_start(kind="tunnel", instance_id=f"i-thread{n}-{i}")
                h.record_end(rid, bytes_out=i)
        except BaseException as exc:
            errors.append(exc)

    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(n)], cwd=ROOT)
        for n in range(2)
    ]
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert not errors
    assert h.count() == 160
    assert all(r.ended for r in h.list(limit=1000))


# ---------------------------------------------------------------------------- redaction


def test_scrub_shapes() -> None:
    text = (
        f"export AWS_ACCESS_KEY_ID={KEY_ID}\n"
        f"aws_secret_access_key = {SECRET}\n"
        f'{{"AccessKeyId": "ASIAIOSFODNN7EXAMPLE", "SecretAccessKey": "{SECRET}", '
        '"SessionToken": "FwoGZXIvYXdzEBYaDHqa0AP1/abc+def="}\n'
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig\n"
        "GET /k?X-Amz-Signature=abcdef0123&page=2\n"
        "Password: \nmysql password=hunter2\n"
    )
    out = scrub(text)
    for secret in (KEY_ID, SECRET, "ASIAIOSFODNN7EXAMPLE", "FwoGZX", "eyJhbG", "abcdef0123"):
        assert secret not in out
    assert "hunter2" not in out
    assert "page=2" in out and "Password: \n" in out and "aws_secret_access_key = " in out
    assert scrub("AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is not a key") == (
        "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is not a key"
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64])
def test_stream_redactor_catches_split_secrets(size: int) -> None:
    text = (
        f"$ cat ~/.aws/credentials\r\n[default]\r\naws_access_key_id = {KEY_ID}\r\n"
        f'aws_secret_access_key = {SECRET}\r\n{{"SecretAccessKey": "{SECRET}"}}\r\n$ '
    )
    r = StreamRedactor()
    out = "".join(r.feed(text[i : i + size]) for i in range(0, len(text), size)) + r.flush()
    assert out == scrub(text)
    assert SECRET not in out and KEY_ID not in out


# ---------------------------------------------------------------------------- transcripts


def test_transcript_round_trip_and_redaction(tmp_path: Path, umask0: None) -> None:
    clock = iter([0.0, 0.5, 1.25, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    path = new_transcript_path("i-0abc/../x", directory=tmp_path / "casts")
    assert path.parent == tmp_path / "casts" and "/" not in path.name
    w = TranscriptWriter(path, width=120, height=40, title="web-1", clock=lambda: next(clock))
    assert w.tee(b"hello \xc3") == b"hello \xc3"  # é split across chunks
    w.output(b"\xa9 world\r\n")
    w.input(b"hunter2\r")  # never recorded by default
    w.output(f"key {KEY_ID[:9]}".encode())
    w.output(f"{KEY_ID[9:]} done\r\n$ ".encode())
    w.resize(100, 30)
    w.close()
    w.close()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    reader = TranscriptReader(path)
    assert (reader.header.width, reader.header.height, reader.header.title) == (120, 40, "web-1")
    events = list(reader)
    assert [e.code for e in events] == ["o", "o", "o", "o", "r"]
    assert events[0] == TranscriptEvent(0.5, "o", "hello ")
    assert events[-1].data == "100x30"
    text = output_text(path)
    assert text == f"hello é world\r\nkey {REDACTED} done\r\n$ "
    raw = path.read_text()
    assert "hunter2" not in raw and KEY_ID not in raw
    assert json.loads(raw.splitlines()[0])["version"] == 2


def test_transcript_input_opt_in_and_reader_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.cast"
    with TranscriptWriter(path, record_input=True) as w:
        w.input(b"ls -l\r")
        w.output(b"total 0\r\n")
    assert [e.code for e in TranscriptReader(path)] == ["i", "o"]
    with pytest.raises(StoreError):
        TranscriptWriter(path)  # never overwrites
    path.write_text(path.read_text() + "not json\n[1]\n")
    reader = TranscriptReader(path)
    assert len(list(reader)) == 2 and reader.skipped == 2
    bad = tmp_path / "bad.cast"
    bad.write_text('{"version": 1}\n')
    with pytest.raises(StoreError):
        TranscriptReader(bad)
    with pytest.raises(StoreError):
        TranscriptReader(tmp_path / "missing.cast")


def test_paced_and_ansi_stripper() -> None:
    events = [TranscriptEvent(t, "o", "x") for t in (0.5, 1.0, 10.0)]
    assert [d for d, _ in paced(events, speed=2, max_idle=1.0)] == [0.25, 0.25, 0.5]
    s = AnsiStripper()
    got = s.feed("\x1b[1;32mgreen\x1b[") + s.feed("0m ok\r\nab\bc \x1b]0;title\x07$ ")
    assert got == "green ok\nac $ "


# ---------------------------------------------------------------------------- end to end


async def test_sessions_are_recorded_without_secrets(tmp_path: Path) -> None:
    from ssmtui.aws.clients import demo_clients
    from ssmtui.aws.fleet import resolve_target
    from ssmtui.models import FleetScope
    from ssmtui.protocol.events import ChannelClosed
    from ssmtui.protocol.frames import PayloadType
    from ssmtui.services import SessionKind, SessionService
    from ssmtui.sim.fleet import demo_credentials
    from ssmtui.transport.proxy import run_command
    from ssmtui.transport.tunnel import TunnelSpec
    from tests.sim_harness import running_sim, tcp_server

    scopes = [FleetScope("dev", "us-east-1")]
    history = History(tmp_path / "data" / "history.sqlite3")
    async with running_sim(tmp_path) as sim, demo_clients(sim.server) as clients:
        svc = SessionService(clients, history=history)
        inst = await resolve_target(clients, scopes, "web-dev-1")

        conn = await svc.open(inst)
        assert svc.history_ids[conn.session_id] > 0
        conn.send_nowait(PayloadType.OUTPUT, b"exit\r")
        async with asyncio.timeout(20):
            assert any([isinstance(ev, ChannelClosed) async for ev in conn.events()])
        await conn.close()
        assert conn.session_id not in svc.history_ids

        cmd = await svc.open(inst, SessionKind.command("echo out; exit 3"))
        assert await run_command(cmd, lambda _b: None, lambda _b: None) == 3

        async with tcp_server() as echo_port:
            tunnel = svc.tunnel(inst, TunnelSpec("web-dev-1", 0, echo_port))
            await tunnel.start()
            await tunnel.wait_up()
            reader, writer = await asyncio.open_connection("127.0.0.1", tunnel.stats.local_port)
            writer.write(b"ping" * 100)
            assert await reader.readexactly(400) == b"ping" * 100
            writer.close()
            await tunnel.stop()

        tokens = [t for s in sim.state.sessions.values() for t in s.tokens]
    assert len(tokens) >= 3

    tun, command, shell = history.list()
    assert (shell.kind, command.kind, tun.kind) == ("shell", "command", "tunnel")
    assert {r.instance_name for r in (shell, command, tun)} == {"web-dev-1"}
    assert {r.instance_id for r in (shell, command, tun)} == {inst.instance_id}
    assert (shell.exit_status, command.exit_status, tun.exit_status) == (None, 3, None)
    assert command.parameters == {"command": ["echo out; exit 3"]}
    assert tun.parameters["localPortNumber"] == ["0"]
    for rec in (shell, command, tun):
        assert rec.ended and rec.bytes_in > 0 and rec.bytes_out > 0, rec
        assert rec.session_id and rec.profile == "dev" and rec.region == "us-east-1"
    assert tun.end_reason == "stopped" and tun.bytes_in >= 400 and tun.bytes_out >= 400

    access_key, secret_key = demo_credentials("dev")
    raw = b"".join(p.read_bytes() for p in history.path.parent.iterdir() if p.is_file())
    for secret in [*tokens, secret_key, access_key]:
        assert secret.encode() not in raw


async def test_shell_transcripts_are_opt_in_scrubbed_and_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssmtui.aws.clients import demo_clients
    from ssmtui.aws.fleet import resolve_target
    from ssmtui.models import FleetScope
    from ssmtui.protocol.events import ChannelClosed
    from ssmtui.protocol.frames import PayloadType
    from ssmtui.services import SessionService
    from ssmtui.store.transcripts import output_text
    from tests.sim_harness import running_sim

    monkeypatch.setenv("SSMTUI_DATA_DIR", str(tmp_path / "data"))
    history = History(tmp_path / "data" / "history.sqlite3")
    async with running_sim(tmp_path) as sim, demo_clients(sim.server) as clients:
        inst = await resolve_target(clients, [FleetScope("dev", "us-east-1")], "web-dev-1")
        for transcripts in (False, True):
            svc = SessionService(clients, history=history, transcripts=transcripts)
            conn = await svc.open(inst)
            line = b"echo marker-$((40+2)) AKIA''ABCDEFGHIJKLMNOP; exit\r"
            conn.send_nowait(PayloadType.OUTPUT, line)
            async with asyncio.timeout(20):
                assert any([isinstance(ev, ChannelClosed) async for ev in conn.events()])
            await conn.close()
    recorded, plain = history.list()
    assert plain.transcript is None
    assert recorded.transcript is not None
    cast = Path(recorded.transcript)
    assert cast.exists() and oct(cast.stat().st_mode & 0o777) == "0o600"
    assert "marker-42" in output_text(cast)
    assert "AKIAABCDEFGHIJKLMNOP" not in cast.read_text()  # scrubbed output
