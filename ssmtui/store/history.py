"""Session history in sqlite: one row per session (or per tunnel run), newest first.

The database (``<data dir>/history.sqlite3``, see :func:`ssmtui.store.data_dir`) is a 0600 file in
a 0700 directory, in WAL mode with a busy timeout, so several ssmtui processes can record at once.
Each call opens its own short-lived connection: :class:`History` is safe to share between threads
(the UI and the services call it through :func:`asyncio.to_thread`).

Nothing secret is stored: no tokens, credentials, signed URLs or data keys are ever passed in, and
the free-text fields (parameters, end reason) go through :func:`ssmtui.store.redact.scrub`;
parameters whose *names* look secret (``token``, ``password`` …) are dropped.

Schema (version 2)::

    schema_version(version INTEGER NOT NULL)            -- one row
    sessions(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,                             -- shell | tunnel | command | proxy | plugin
        instance_id TEXT NOT NULL, instance_name TEXT NOT NULL DEFAULT '',
        profile TEXT NOT NULL DEFAULT '', region TEXT NOT NULL DEFAULT '', account_id TEXT,
        document TEXT, parameters TEXT NOT NULL DEFAULT '{}',        -- JSON object
        started_at REAL NOT NULL, ended_at REAL, duration REAL,      -- unix seconds / seconds
        exit_status INTEGER, end_reason TEXT,
        bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0,
        session_id TEXT,                                -- the AWS session id
        transcript TEXT)                                -- path of an asciicast file, or NULL
    index sessions_started(started_at), sessions_instance(instance_id), sessions_kind(kind)
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ssmtui.fsutil import FILE_MODE, ensure_private_dir
from ssmtui.store import StoreError, data_dir
from ssmtui.store.query import KINDS, HistoryQuery, SessionKindName, parse_since
from ssmtui.store.redact import scrub

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "History",
    "HistoryQuery",
    "SessionKindName",
    "SessionRecord",
    "default_history_path",
    "kind_for_document",
    "parse_since",
]

#: Schema migrations: ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            instance_id TEXT NOT NULL,
            instance_name TEXT NOT NULL DEFAULT '',
            profile TEXT NOT NULL DEFAULT '',
            region TEXT NOT NULL DEFAULT '',
            account_id TEXT,
            document TEXT,
            parameters TEXT NOT NULL DEFAULT '{}',
            started_at REAL NOT NULL,
            ended_at REAL,
            duration REAL,
            exit_status INTEGER,
            end_reason TEXT,
            bytes_in INTEGER NOT NULL DEFAULT 0,
            bytes_out INTEGER NOT NULL DEFAULT 0,
            session_id TEXT
        )""",
        "CREATE INDEX sessions_started ON sessions(started_at)",
    ),
    (
        "ALTER TABLE sessions ADD COLUMN transcript TEXT",
        "CREATE INDEX sessions_instance ON sessions(instance_id)",
        "CREATE INDEX sessions_kind ON sessions(kind)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Parameter names never stored (their values are dropped, the name is kept as a marker).
_SECRET_NAME = re.compile(r"(?i)token|secret|passw|credential|signature|private|api_?key|data_?key")
_BUSY_TIMEOUT_MS = 10_000
_COLUMNS = (
    "id, kind, instance_id, instance_name, profile, region, account_id, document, parameters, "
    "started_at, ended_at, duration, exit_status, end_reason, bytes_in, bytes_out, session_id, "
    "transcript"
)
_DOCUMENT_KINDS: dict[str, SessionKindName] = {
    "SSM-SessionManagerRunShell": "shell",
    "AWS-StartPortForwardingSession": "tunnel",
    "AWS-StartPortForwardingSessionToRemoteHost": "tunnel",
    "AWS-StartSSHSession": "proxy",
    "AWS-StartInteractiveCommand": "command",
    "AWS-StartNonInteractiveCommand": "command",
}


def default_history_path(env: Mapping[str, str] | None = None) -> Path:
    """``<data dir>/history.sqlite3``."""
    return data_dir(env) / "history.sqlite3"


def kind_for_document(document: str | None) -> SessionKindName:
    """The record kind of a session document (None: the default shell).

    AWS documents map exactly; custom documents by name (``…Shell…`` → shell, ``…Port…`` →
    tunnel, ``…Command…`` → command, ``…SSH…`` → proxy), anything else is ``plugin``.
    """
    if not document:
        return "shell"
    if document in _DOCUMENT_KINDS:
        return _DOCUMENT_KINDS[document]
    lowered = document.lower()
    for needle, kind in (
        ("shell", "shell"),
        ("port", "tunnel"),
        ("command", "command"),
        ("ssh", "proxy"),
    ):
        if needle in lowered:
            return kind  # type: ignore[return-value]
    return "plugin"


def _safe_parameters(parameters: Mapping[str, Any] | None) -> str:
    """Parameters as JSON, with secret-named values dropped and secret shapes scrubbed."""
    clean: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        key = str(name)
        if _SECRET_NAME.search(key):
            clean[key] = "[redacted]"
        elif isinstance(value, str | int | float | bool) or value is None:
            clean[key] = scrub(value) if isinstance(value, str) else value
        elif isinstance(value, Sequence):
            clean[key] = [scrub(str(v)) for v in value]
        else:
            clean[key] = scrub(str(value))
    return json.dumps(clean, sort_keys=True, separators=(",", ":"))


def _epoch(value: datetime | timedelta | float | None) -> float:
    """Epoch seconds: now for None, that long ago for a timedelta, naive datetimes as local."""
    if value is None:
        return time.time()
    if isinstance(value, timedelta):
        return time.time() - value.total_seconds()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return value.timestamp()
    return float(value)


def _datetime(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One recorded session (or tunnel run). Times are timezone-aware (UTC)."""

    id: int
    kind: str
    instance_id: str
    instance_name: str = ""
    profile: str = ""
    region: str = ""
    account_id: str | None = None
    document: str | None = None
    #: Document parameters (secret-named values dropped, secret shapes scrubbed).
    parameters: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    #: Seconds from start to end (None while running / if the end was never recorded).
    duration: float | None = None
    exit_status: int | None = None
    end_reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    #: The AWS session id.
    session_id: str | None = None
    #: The asciicast transcript of the session, if one was recorded.
    transcript: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the end of the session was recorded."""
        return self.ended_at is not None

    @property
    def display_instance(self) -> str:
        """``name (i-…)``, or the id alone."""
        if self.instance_name and self.instance_name != self.instance_id:
            return f"{self.instance_name} ({self.instance_id})"
        return self.instance_id

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "instance_id": self.instance_id,
            "instance_name": self.instance_name,
            "profile": self.profile,
            "region": self.region,
            "account_id": self.account_id,
            "document": self.document,
            "parameters": dict(self.parameters),
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration": self.duration,
            "exit_status": self.exit_status,
            "end_reason": self.end_reason,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "session_id": self.session_id,
            "transcript": self.transcript,
        }

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> SessionRecord:
        try:
            params = json.loads(row["parameters"] or "{}")
        except ValueError:
            params = {}
        return cls(
            id=row["id"],
            kind=row["kind"],
            instance_id=row["instance_id"],
            instance_name=row["instance_name"],
            profile=row["profile"],
            region=row["region"],
            account_id=row["account_id"],
            document=row["document"],
            parameters=params if isinstance(params, dict) else {},
            started_at=_datetime(row["started_at"]) or datetime.now(UTC),
            ended_at=_datetime(row["ended_at"]),
            duration=row["duration"],
            exit_status=row["exit_status"],
            end_reason=row["end_reason"],
            bytes_in=row["bytes_in"],
            bytes_out=row["bytes_out"],
            session_id=row["session_id"],
            transcript=row["transcript"],
        )


class History:
    """The session history database at ``path`` (created, and migrated, on first use)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_history_path()
        ensure_private_dir(self.path.parent)
        self._create_private(self.path)
        with self._connect() as conn:
            self._migrate(conn)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _create_private(path: Path) -> None:
        """Create the file 0600 before sqlite does (sqlite copies its mode to the -wal/-shm)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the history at {self.path}: {exc}", cause=exc) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"history database {self.path}: {exc}", cause=exc) from exc
        finally:
            conn.close()

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # one migrator at a time across processes
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = int(row[0] or 0)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the history database has schema version {version}, newer than this "
                    f"ssmtui's {SCHEMA_VERSION}",
                    hint="upgrade ssmtui, or point SSMTUI_DATA_DIR elsewhere",
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The database's schema version."""
        with self._connect() as conn:
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ writing

    def record_start(
        self,
        *,
        kind: str,
        instance_id: str,
        instance_name: str = "",
        profile: str = "",
        region: str = "",
        account_id: str | None = None,
        document: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        transcript: str | os.PathLike[str] | None = None,
        started_at: datetime | float | None = None,
    ) -> int:
        """Record that a session started; returns the record id for :meth:`record_end`."""
        if kind not in KINDS:
            raise ValueError(f"unknown session kind {kind!r}")
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO sessions (kind, instance_id, instance_name, profile, region, "
                "account_id, document, parameters, started_at, session_id, transcript) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    instance_id,
                    instance_name,
                    profile,
                    region,
                    account_id,
                    document,
                    _safe_parameters(parameters),
                    _epoch(started_at),
                    session_id,
                    os.fspath(transcript) if transcript is not None else None,
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def record_end(
        self,
        record_id: int,
        *,
        exit_status: int | None = None,
        end_reason: str | None = None,
        bytes_in: int = 0,
        bytes_out: int = 0,
        session_id: str | None = None,
        transcript: str | os.PathLike[str] | None = None,
        ended_at: datetime | float | None = None,
    ) -> None:
        """Record the end of session ``record_id`` (``session_id`` / ``transcript``: if known
        only now). Recording an end twice keeps the last one."""
        end = _epoch(ended_at)
        with self._connect() as conn:
            conn.execute(
                "UPDATE sessions SET ended_at = ?, duration = MAX(0, ? - started_at), "
                "exit_status = ?, end_reason = ?, bytes_in = ?, bytes_out = ?, "
                "session_id = COALESCE(?, session_id), transcript = COALESCE(?, transcript) "
                "WHERE id = ?",
                (
                    end,
                    end,
                    exit_status,
                    scrub(end_reason) if end_reason else end_reason,
                    int(bytes_in),
                    int(bytes_out),
                    session_id,
                    os.fspath(transcript) if transcript is not None else None,
                    record_id,
                ),
            )

    def set_transcript(self, record_id: int, transcript: str | os.PathLike[str] | None) -> None:
        """Attach (or, with None, detach) a transcript file to a record."""
        value = os.fspath(transcript) if transcript is not None else None
        with self._connect() as conn:
            conn.execute("UPDATE sessions SET transcript = ? WHERE id = ?", (value, record_id))

    # ------------------------------------------------------------------ reading

    def get(self, record_id: int) -> SessionRecord | None:
        """The record ``record_id``, or None."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (record_id,)
            ).fetchone()
        return SessionRecord._from_row(row) if row is not None else None

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        kind: str | None = None,
        instance: str | None = None,
        text: str | None = None,
        since: datetime | timedelta | float | None = None,
        profile: str | None = None,
        region: str | None = None,
    ) -> builtins.list[SessionRecord]:
        """Records, newest first.

        ``kind``: exact; ``instance``: substring of the id or name; ``text``: every word is a
        substring of some field (case-insensitive); ``since``: started at or after (epoch,
        datetime, or a timedelta meaning "that long ago"); ``profile`` / ``region``: substrings.
        """
        query = HistoryQuery(
            words=tuple(text.split()) if text else (),
            kind=kind,
            instance=instance,
            profile=profile,
            region=region,
            since=_epoch(since) if since is not None else None,
        )
        return self.query(query, limit=limit, offset=offset)

    def query(
        self, query: HistoryQuery, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[SessionRecord]:
        """Records matching a parsed :class:`HistoryQuery`, newest first."""
        where, args = query.where()
        sql = f"SELECT {_COLUMNS} FROM sessions"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        args += [max(0, int(limit)), max(0, int(offset))]
        with self._connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [SessionRecord._from_row(r) for r in rows]

    def search(self, text: str, limit: int = 100) -> builtins.list[SessionRecord]:
        """Records matching the search syntax of :class:`HistoryQuery` (``web kind:shell``)."""
        return self.query(HistoryQuery.parse(text), limit=limit)

    def count(self) -> int:
        """How many records there are."""
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    # ------------------------------------------------------------------ pruning

    def prune(
        self,
        *,
        older_than_days: float | None = None,
        keep_last: int | None = None,
        delete_transcripts: bool = True,
        now: float | None = None,
    ) -> int:
        """Delete records started more than ``older_than_days`` ago and/or all but the newest
        ``keep_last``; returns how many were deleted. Their ``.cast`` transcripts go too unless
        ``delete_transcripts`` is false."""
        if older_than_days is None and keep_last is None:
            raise ValueError("prune needs older_than_days and/or keep_last")
        conds: builtins.list[str] = []
        args: builtins.list[Any] = []
        if older_than_days is not None:
            cutoff = (time.time() if now is None else now) - older_than_days * 86400
            conds.append("started_at < ?")
            args.append(cutoff)
        if keep_last is not None:
            conds.append(
                "id NOT IN (SELECT id FROM sessions ORDER BY started_at DESC, id DESC LIMIT ?)"
            )
            args.append(max(0, int(keep_last)))
        where = " OR ".join(conds)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                files = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT transcript FROM sessions WHERE ({where}) "
                        "AND transcript IS NOT NULL",
                        args,
                    )
                ]
                deleted = conn.execute(f"DELETE FROM sessions WHERE {where}", args).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if delete_transcripts:
            for name in files:
                if name.endswith(".cast"):
                    with contextlib.suppress(OSError):
                        os.unlink(name)
        return deleted
