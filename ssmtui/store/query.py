"""The history search syntax and its SQL: ``web kind:shell instance:i-01 since:1d``.

Free words must all match (case-insensitive substrings of any field); ``kind:`` (or ``type:``),
``instance:`` (id or name), ``profile:``, ``region:`` and ``since:`` (``30m``, ``2h``, ``1d``,
``1w`` or a date) narrow it down. Used by :meth:`ssmtui.store.history.History.search`, the UI's
search box and the CLI.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from ssmtui.errors import UsageError

__all__ = ["KINDS", "HistoryQuery", "SessionKindName", "parse_since"]

SessionKindName = Literal["shell", "tunnel", "command", "proxy", "plugin"]
#: Every record kind.
KINDS: tuple[str, ...] = get_args(SessionKindName)

_SINCE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_QUERY_KEYS = ("kind", "type", "instance", "profile", "region", "since")
# Every searchable field, as one string (for the free words).
_HAYSTACK = (
    "(kind || ' ' || instance_id || ' ' || instance_name || ' ' || profile || ' ' || region"
    " || ' ' || COALESCE(account_id, '') || ' ' || COALESCE(document, '') || ' ' || parameters"
    " || ' ' || COALESCE(end_reason, '') || ' ' || COALESCE(session_id, ''))"
)


def parse_since(text: str, now: float | None = None) -> float:
    """``30m`` / ``2h`` / ``1d`` / ``1w`` ago, or a date ``2024-05-01`` (local time), as epoch."""
    raw = text.strip().lower()
    now = time.time() if now is None else now
    m = _SINCE_RE.match(raw)
    if m:
        return now - float(m.group(1)) * _SINCE_UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"bad since:{text}", hint="use since:30m, since:2h, since:1d, since:1w or a date"
        ) from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere (``%``, ``_`` and ``\\`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history search: free words (all must match) and ``key:value`` filters.

    ``kind:shell`` (or ``type:``), ``instance:web`` (id or name substring), ``profile:prod``,
    ``region:eu-west-1``, ``since:1d`` (``30m``, ``2h``, ``1w``, or a date).
    """

    words: tuple[str, ...] = ()
    kind: str | None = None
    instance: str | None = None
    profile: str | None = None
    region: str | None = None
    #: Started at or after (epoch seconds).
    since: float | None = None

    @classmethod
    def parse(cls, text: str, now: float | None = None) -> HistoryQuery:
        """Parse the search syntax; raises :class:`~ssmtui.errors.UsageError` on a bad token.

        Words with an unknown ``prefix:`` (a URL, ``i-…:22``) are plain words.
        """
        words: list[str] = []
        found: dict[str, Any] = {}
        for token in text.split():
            key, sep, value = token.partition(":")
            if not sep or key.lower() not in _QUERY_KEYS:
                words.append(token)
                continue
            key = key.lower()
            if not value:
                raise UsageError(f"bad filter {token!r}: nothing after {key}:")
            if key in ("kind", "type"):
                kind = value.lower()
                if kind not in KINDS:
                    raise UsageError(f"unknown kind {value!r}", hint="one of: " + ", ".join(KINDS))
                found["kind"] = kind
            elif key == "since":
                found["since"] = parse_since(value, now)
            else:
                found[key] = value
        return cls(words=tuple(words), **found)

    @property
    def is_empty(self) -> bool:
        """No filter at all."""
        return not self.words and all(
            v is None for v in (self.kind, self.instance, self.profile, self.region, self.since)
        )

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition over the ``sessions`` table ('' for none) and its parameters."""
        conds: list[str] = []
        args: list[Any] = []
        if self.kind:
            conds.append("kind = ?")
            args.append(self.kind)
        if self.instance:
            conds.append("(instance_id LIKE ? ESCAPE '\\' OR instance_name LIKE ? ESCAPE '\\')")
            args += [_like(self.instance)] * 2
        if self.profile:
            conds.append("profile LIKE ? ESCAPE '\\'")
            args.append(_like(self.profile))
        if self.region:
            conds.append("region LIKE ? ESCAPE '\\'")
            args.append(_like(self.region))
        if self.since is not None:
            conds.append("started_at >= ?")
            args.append(self.since)
        for word in self.words:
            conds.append(f"{_HAYSTACK} LIKE ? ESCAPE '\\'")
            args.append(_like(word))
        return " AND ".join(conds), args
