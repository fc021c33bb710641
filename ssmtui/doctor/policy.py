"""Just enough of IAM policy documents for the doctor: which actions a set of policies allows,
and which conditions guard the statements about one action (dates, resource tags).

This is not an evaluator (IAM's policy simulator decides whether the caller may start a
session); it reads documents to *explain*: "missing ssmmessages:OpenDataChannel", "allowed until
2026-11-29T21:00:00Z", "denied when ssm:resourceTag/Team = hr".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

__all__ = ["Guard", "action_matches", "allowed_actions_missing", "guards_for", "statements"]

_DATE_KEYS = {"aws:currenttime", "aws:epochtime"}


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob),
        re.IGNORECASE,
    )


def action_matches(pattern: str, action: str) -> bool:
    """IAM action wildcard match (``ssm:*``, ``ssmmessages:Open*``; case-insensitive)."""
    return _pattern(pattern).fullmatch(action) is not None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, Iterable) else [str(value)]


def statements(document: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """The statements of a policy document (a single statement object counts as a list)."""
    if not document:
        return
    raw = document.get("Statement")
    for st in [raw] if isinstance(raw, Mapping) else list(raw or []):
        if isinstance(st, Mapping):
            yield st


def _covers(st: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in st:
        return not any(action_matches(p, action) for p in _as_list(st["NotAction"]))
    return any(action_matches(p, action) for p in _as_list(st.get("Action")))


def allowed_actions_missing(
    documents: Iterable[Mapping[str, Any] | None], required: Iterable[str]
) -> list[str]:
    """Which of ``required`` no ``Allow`` statement grants (conditions and resources ignored:
    an instance role's SSM permissions are normally unconditional on ``*``). An explicit
    ``Deny`` without conditions also counts as missing."""
    docs = list(documents)
    missing: list[str] = []
    for action in required:
        allowed = denied = False
        for doc in docs:
            for st in statements(doc):
                if not _covers(st, action):
                    continue
                if st.get("Effect") == "Allow":
                    allowed = True
                elif st.get("Effect") == "Deny" and not st.get("Condition"):
                    denied = True
        if denied or not allowed:
            missing.append(action)
    return missing


@dataclass(frozen=True)
class Guard:
    """One condition on a statement about an action: ``effect`` (Allow/Deny), the policy, the
    operator, key and values; ``until`` / ``since`` for date conditions on the current time."""

    effect: str
    policy: str
    operator: str
    key: str
    values: tuple[str, ...]
    until: datetime | None = None
    since: datetime | None = None

    def describe(self) -> str:
        vals = ", ".join(self.values)
        return f"{self.key} {self.operator} {vals}"


def _parse_date(value: str) -> datetime | None:
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def guards_for(
    policies: Iterable[tuple[str, Mapping[str, Any] | None]], action: str
) -> list[Guard]:
    """Conditions on every statement (of ``(policy name, document)`` pairs) covering ``action``."""
    out: list[Guard] = []
    for name, doc in policies:
        for st in statements(doc):
            if not _covers(st, action):
                continue
            effect = str(st.get("Effect") or "")
            for operator, block in (st.get("Condition") or {}).items():
                if not isinstance(block, Mapping):
                    continue
                for key, value in block.items():
                    values = tuple(_as_list(value))
                    until = since = None
                    if str(key).lower() in _DATE_KEYS and values:
                        when = _parse_date(values[0])
                        op = str(operator).lower()
                        if op.startswith("datelessthan"):
                            until = when
                        elif op.startswith("dategreaterthan"):
                            since = when
                    out.append(Guard(effect, name, str(operator), str(key), values, until, since))
    return out
