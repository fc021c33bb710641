"""A small IAM identity-policy evaluator, as the simulated IAM policy simulator and SSM use it.

Supported: ``Effect`` Allow/Deny; ``Action``/``NotAction`` (case-insensitive, ``*``/``?``
wildcards); ``Resource``/``NotResource`` (wildcards); ``Condition`` with StringEquals,
StringNotEquals, StringLike, DateLessThan, DateGreaterThan and Bool, each optionally suffixed
``IfExists``. As in the real simulator, nothing is looked up: every condition key (e.g.
``ssm:resourceTag/Team``, ``aws:CurrentTime``) comes from the caller's context; a condition whose
key is missing evaluates false and the key is reported as missing. An explicit Deny wins over any
Allow; without a matching Allow the decision is an implicit deny.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "Decision",
    "PolicySource",
    "evaluate",
    "wildcard_match",
]

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A policy document with where it came from (for ``MatchedStatements``)."""

    policy_id: str
    #: ``user``, ``role``, ``aws-managed``, ``user-managed``, ...
    policy_type: str
    document: Mapping[str, Any]


@dataclass(slots=True)
class Decision:
    """The outcome for one action on one resource."""

    decision: str
    #: Policies whose statements decided it (deny statements for a deny, allows for an allow).
    matched: list[PolicySource] = field(default_factory=list)
    #: Condition keys the evaluation needed but the context did not provide (sorted).
    missing: list[str] = field(default_factory=list)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` one character, nothing else."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _test(operator: str, actual: list[str], wanted: list[str]) -> bool:
    """One condition operator over the context values (any actual value may match)."""
    if operator == "StringEquals":
        return any(a == w for a in actual for w in wanted)
    if operator == "StringNotEquals":
        return all(a != w for a in actual for w in wanted)
    if operator == "StringLike":
        return any(wildcard_match(w, a) for a in actual for w in wanted)
    if operator == "StringNotLike":
        return not any(wildcard_match(w, a) for a in actual for w in wanted)
    if operator in ("DateLessThan", "DateGreaterThan"):
        for a in actual:
            left = _parse_date(a)
            for w in wanted:
                right = _parse_date(w)
                if left is None or right is None:
                    continue
                if (left < right) if operator == "DateLessThan" else (left > right):
                    return True
        return False
    if operator == "Bool":
        return any(a.lower() == w.lower() for a in actual for w in wanted)
    return False  # unsupported operators never match


def _lookup(context: Mapping[str, list[str]], key: str) -> list[str] | None:
    """Condition keys are case-insensitive."""
    lowered = key.lower()
    for name, values in context.items():
        if name.lower() == lowered:
            return values
    return None


def _conditions_hold(
    conditions: Mapping[str, Any], context: Mapping[str, list[str]], missing: set[str]
) -> bool:
    ok = True
    for raw_operator, block in conditions.items():
        operator = str(raw_operator)
        if_exists = operator.endswith("IfExists")
        if if_exists:
            operator = operator[: -len("IfExists")]
        for key, wanted in dict(block).items():
            actual = _lookup(context, str(key))
            if actual is None:
                if not if_exists:
                    missing.add(str(key))
                    ok = False
                continue
            if not _test(operator, actual, _as_list(wanted)):
                ok = False
    return ok


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        patterns = _as_list(statement["Action"])
        hit = any(wildcard_match(p, action, ignore_case=True) for p in patterns)
    else:
        patterns = _as_list(statement.get("NotAction"))
        hit = not any(wildcard_match(p, action, ignore_case=True) for p in patterns)
    if not hit:
        return False
    if "Resource" in statement:
        return any(wildcard_match(p, resource) for p in _as_list(statement["Resource"]))
    return not any(wildcard_match(p, resource) for p in _as_list(statement.get("NotResource")))


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("Statement", [])
    return [raw] if isinstance(raw, Mapping) else list(raw)


def evaluate(
    policies: Sequence[PolicySource],
    action: str,
    resource: str = "*",
    context: Mapping[str, Iterable[str]] | None = None,
) -> Decision:
    """Evaluate identity policies for ``action`` on ``resource`` with condition ``context``."""
    ctx = {k: list(v) for k, v in (context or {}).items()}
    missing: set[str] = set()
    allows: list[PolicySource] = []
    denies: list[PolicySource] = []
    for policy in policies:
        for statement in _statements(policy.document):
            if not _statement_applies(statement, action, resource):
                continue
            if not _conditions_hold(dict(statement.get("Condition", {})), ctx, missing):
                continue
            bucket = denies if statement.get("Effect") == "Deny" else allows
            if policy not in bucket:
                bucket.append(policy)
    if denies:
        return Decision(EXPLICIT_DENY, denies, sorted(missing))
    if allows:
        return Decision(ALLOWED, allows, sorted(missing))
    return Decision(IMPLICIT_DENY, [], sorted(missing))
