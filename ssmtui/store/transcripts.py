"""Opt-in session transcripts as asciicast v2 files, and a reader to replay them.

A transcript is one JSON header line (``{"version": 2, "width": …, "height": …, "timestamp": …,
"title": …}``) then one event per line: ``[seconds, "o", text]`` for output,
``[t, "r", "COLSxROWS"]`` for a resize and, only when explicitly enabled, ``[t, "i", text]`` for
input. Files are 0600 in a 0700 directory (``<data dir>/transcripts`` by default).

Redaction: input is never recorded unless ``record_input=True`` (keystrokes may be passwords
typed without echo), and output goes through :class:`~ssmtui.store.redact.StreamRedactor`, which
scrubs AWS access key ids, secret keys and session tokens, ``Bearer`` tokens, ``password=`` and
secret-looking URL parameters (the full list is in :mod:`ssmtui.store.redact`). Text is released at
whitespace boundaries so a secret split across chunks is still caught; the event time is when it
was released. A writer never breaks the session it records: a failed write disables it (and is
logged).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ssmtui.fsutil import FILE_MODE, ensure_private_dir
from ssmtui.store import StoreError, data_dir
from ssmtui.store.redact import StreamRedactor

__all__ = [
    "AnsiStripper",
    "TranscriptEvent",
    "TranscriptHeader",
    "TranscriptReader",
    "TranscriptWriter",
    "new_transcript_path",
    "output_text",
    "paced",
    "transcripts_dir",
]

log = logging.getLogger(__name__)

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def transcripts_dir(env: Mapping[str, str] | None = None) -> Path:
    """``<data dir>/transcripts``."""
    return data_dir(env) / "transcripts"


def new_transcript_path(
    instance_id: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    when: datetime | None = None,
) -> Path:
    """A fresh file name ``YYYYmmdd-HHMMSS-<instance>-<n>.cast`` in ``directory`` (not created)."""
    base = Path(directory) if directory is not None else transcripts_dir()
    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = _UNSAFE_NAME.sub("_", instance_id)[:64] or "session"
    for n in range(1, 10_000):
        candidate = base / f"{stamp}-{name}-{n}.cast"
        if not candidate.exists():
            return candidate
    raise StoreError(f"no free transcript name in {base}")


@dataclass(frozen=True, slots=True)
class TranscriptHeader:
    """The asciicast v2 header."""

    width: int
    height: int
    #: Unix time the recording started.
    timestamp: int | None = None
    title: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The header line as a dict."""
        out: dict[str, Any] = {"version": 2, "width": self.width, "height": self.height}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.title:
            out["title"] = self.title
        if self.env:
            out["env"] = dict(self.env)
        return out


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    """One event: seconds since the start, ``"o"`` / ``"i"`` / ``"r"`` / ``"m"``, and text."""

    time: float
    code: str
    data: str


class TranscriptWriter:
    """Writes one asciicast v2 file; feed it with :meth:`output` (or :meth:`tee`), then close."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int = 80,
        height: int = 24,
        title: str | None = None,
        record_input: bool = False,
        clock: Callable[[], float] = time.monotonic,
        timestamp: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.record_input = record_input
        self.failed: str | None = None
        self.events_written = 0
        self._clock = clock
        self._start = clock()
        self._out_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._out = StreamRedactor()
        self._in = StreamRedactor()
        ensure_private_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except OSError as exc:
            raise StoreError(f"cannot create the transcript {self.path}: {exc}", cause=exc) from exc
        os.fchmod(fd, FILE_MODE)
        self._fh: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        header = TranscriptHeader(
            width=max(1, int(width)),
            height=max(1, int(height)),
            timestamp=int(time.time()) if timestamp is None else timestamp,
            title=title,
            env={"TERM": "xterm-256color"},
        )
        self._write_line(json.dumps(header.to_json(), ensure_ascii=False))

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether the file is closed (or writing failed)."""
        return self._fh is None

    def _write_line(self, line: str) -> None:
        fh = self._fh
        if fh is None:
            return
        try:
            fh.write(line + "\n")
            fh.flush()
        except (OSError, ValueError) as exc:
            self.failed = str(exc)
            log.warning("transcript %s disabled: %s", self.path, exc)
            self._fh = None
            with contextlib.suppress(OSError, ValueError):
                fh.close()

    def _event(self, code: str, text: str) -> None:
        if not text:
            return
        t = round(max(0.0, self._clock() - self._start), 6)
        self._write_line(json.dumps([t, code, text], ensure_ascii=False))
        self.events_written += 1

    def output(self, data: bytes | str) -> None:
        """Record session output (scrubbed; UTF-8 split across chunks is handled)."""
        text = data if isinstance(data, str) else self._out_decoder.decode(data)
        self._event("o", self._out.feed(text))

    def input(self, data: bytes | str) -> None:
        """Record input: a no-op unless the writer was created with ``record_input=True``."""
        if not self.record_input:
            return
        text = data if isinstance(data, str) else self._in_decoder.decode(data)
        self._event("i", self._in.feed(text))

    def resize(self, width: int, height: int) -> None:
        """Record a terminal size change."""
        self._event("o", self._out.flush())
        self._event("r", f"{int(width)}x{int(height)}")

    def tee(self, data: bytes) -> bytes:
        """Record ``data`` as output and return it unchanged (an ``output_filter`` for the shell).

        Never raises: a transcript must not break the session.
        """
        try:
            self.output(data)
        except Exception as exc:  # a bug here must not cost the user their session
            log.warning("transcript %s: %s", self.path, exc)
        return data

    def close(self) -> None:
        """Flush pending text and close the file (idempotent)."""
        if self._fh is None:
            return
        self._event("o", self._out.feed(self._out_decoder.decode(b"", final=True)))
        self._event("o", self._out.flush())
        if self.record_input:
            self._event("i", self._in.feed(self._in_decoder.decode(b"", final=True)))
            self._event("i", self._in.flush())
        fh, self._fh = self._fh, None
        with contextlib.suppress(OSError, ValueError):
            fh.close()


class TranscriptReader:
    """Reads an asciicast v2 file: :attr:`header`, then iterate for the events.

    Malformed event lines are skipped (counted in :attr:`skipped`); a missing or bad header
    raises :class:`~ssmtui.store.StoreError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.skipped = 0
        try:
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                first = fh.readline()
        except OSError as exc:
            raise StoreError(f"cannot read the transcript {self.path}: {exc}", cause=exc) from exc
        try:
            raw = json.loads(first)
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or raw.get("version") != 2:
            raise StoreError(f"{self.path} is not an asciicast v2 file")
        env = raw.get("env")
        self.header = TranscriptHeader(
            width=int(raw.get("width") or 80),
            height=int(raw.get("height") or 24),
            timestamp=raw.get("timestamp"),
            title=raw.get("title"),
            env=env if isinstance(env, dict) else {},
        )

    def __iter__(self) -> Iterator[TranscriptEvent]:
        return self.events()

    def events(self) -> Iterator[TranscriptEvent]:
        """The events in file order."""
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            fh.readline()
            for line in fh:
                if not line.strip():
                    continue
                try:
                    t, code, data = json.loads(line)
                    event = TranscriptEvent(float(t), str(code), str(data))
                except (ValueError, TypeError):
                    self.skipped += 1
                    continue
                yield event


def output_text(path: str | os.PathLike[str]) -> str:
    """Every output event's text, concatenated (escape sequences kept)."""
    return "".join(e.data for e in TranscriptReader(path) if e.code == "o")


def paced(
    events: Iterator[TranscriptEvent] | list[TranscriptEvent],
    *,
    speed: float = 1.0,
    max_idle: float | None = 2.0,
) -> Iterator[tuple[float, TranscriptEvent]]:
    """``(seconds to wait before it, event)`` for a replay at ``speed``, idle gaps capped at
    ``max_idle`` seconds (like asciinema's ``idle_time_limit``)."""
    last = 0.0
    for event in events:
        gap = max(0.0, event.time - last)
        last = event.time
        if max_idle is not None:
            gap = min(gap, max_idle)
        yield (gap / speed if speed > 0 else 0.0), event


_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI … final
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC … BEL / ST
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS / SOS / PM / APC … ST
    r"|\x1b[()*+][0-9A-Za-z]"  # charset designation
    r"|\x1b[@-Z\\-_=>78]"  # two-byte escapes
)
_INCOMPLETE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|[PX^_][^\x1b]*|[()*+])?\Z")
_CONTROL = re.compile(r"[\x00-\x07\x0b-\x1f\x7f]")


class AnsiStripper:
    """Terminal output → plain text for a simple log view: escape sequences (also split across
    chunks) and control characters removed, CR dropped, backspace erases within a chunk."""

    def __init__(self) -> None:
        self._carry = ""

    def feed(self, text: str) -> str:
        """Plain text for this chunk (an unfinished escape sequence waits for the next one)."""
        buf = self._carry + text
        tail = _INCOMPLETE.search(buf)
        if tail is not None and len(buf) - tail.start() < 256:
            buf, self._carry = buf[: tail.start()], buf[tail.start() :]
        else:
            self._carry = ""
        plain = _ESCAPE.sub("", buf).replace("\r", "")
        if "\b" in plain:
            out: list[str] = []
            for ch in plain:
                if ch == "\b":
                    if out and out[-1] != "\n":
                        out.pop()
                else:
                    out.append(ch)
            plain = "".join(out)
        return _CONTROL.sub("", plain)
