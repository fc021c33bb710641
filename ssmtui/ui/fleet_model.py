"""What the fleet screen shows, without any widget: columns, the filter query, sorting, summaries.

Pure and fast: a :class:`FleetIndex` precomputes one lower-cased search text per instance and the
sort keys of each column once, so a filter keystroke over 10,000 instances is one linear scan and
a sort change is one ``sorted`` call. Nothing here imports textual; the widgets read it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ssmtui.errors import SsmtuiError
from ssmtui.models import PING_STATUSES, FleetScope, Instance, InstanceFilter

__all__ = [
    "COLUMNS",
    "COLUMN_KEYS",
    "KEY_TAGS",
    "PING_GLYPHS",
    "Column",
    "FleetIndex",
    "FleetQuery",
    "RowKey",
    "describe_error",
    "fleet_summary",
    "row_key",
]

#: Tags with a column of their own.
KEY_TAGS = ("Role", "Env", "Team")

#: ping status -> (glyph, rich colour, words). Colour is never the only signal: glyphs differ too.
PING_GLYPHS: Mapping[str, tuple[str, str, str]] = {
    "Online": ("●", "green", "online"),
    "ConnectionLost": ("◐", "yellow", "connection lost"),
    "Inactive": ("○", "bright_black", "inactive"),
    "NotRegistered": ("✕", "red", "not registered"),
}
_PING_ORDER = {status: i for i, status in enumerate(PING_STATUSES)}

#: How a row is identified across refreshes: (profile, region, instance id). Two profiles may
#: reach the same account, so the id alone is not unique in a multi-profile listing.
RowKey = tuple[str, str, str]


def row_key(inst: Instance) -> RowKey:
    """The stable identity of ``inst``'s row."""
    return (inst.profile, inst.region, inst.instance_id)


def _platform(inst: Instance) -> str:
    name = inst.platform_name or inst.platform_type
    if inst.platform_version and inst.platform_version not in name:
        return f"{name} {inst.platform_version}".strip()
    return name


def _version_key(version: str) -> tuple[int, ...]:
    """``"3.10.2"`` -> ``(3, 10, 2)`` (non-numeric parts count as 0)."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _ip_key(ip: str | None) -> tuple[int, int]:
    if not ip:
        return (1, 0)
    try:
        return (0, int(ipaddress.ip_address(ip)))
    except ValueError:
        return (1, 0)


def _text_key(text: str | None) -> tuple[bool, str]:
    """Empty values sort last in ascending order."""
    value = (text or "").lower()
    return (not value, value)


@dataclass(frozen=True, slots=True)
class Column:
    """One fleet table column: how to show a cell and how to sort by it."""

    key: str
    label: str
    value: Callable[[Instance], str]
    sort_key: Callable[[Instance], Any]
    #: Cells wider than this are cut with "…".
    max_width: int = 30
    min_width: int = 1
    #: A longer name for menus and the status line (default: the label).
    title: str = ""

    @property
    def name(self) -> str:
        """How the column is called outside the header."""
        return self.title or self.label


def _tag_column(tag: str) -> Column:
    return Column(
        key=tag.lower(),
        label=tag,
        value=lambda i: i.tag(tag) or "",
        sort_key=lambda i: _text_key(i.tag(tag)),
        max_width=16,
    )


COLUMNS: tuple[Column, ...] = (
    Column(
        "status",
        "●",
        lambda i: PING_GLYPHS.get(i.ping_status, ("?", "", ""))[0],
        lambda i: _PING_ORDER.get(i.ping_status, len(_PING_ORDER)),
        max_width=1,
        title="Ping",
    ),
    Column("name", "Name", lambda i: i.display_name, lambda i: i.display_name.lower(), 32, 4),
    Column("id", "Instance", lambda i: i.instance_id, lambda i: i.instance_id, 20, 8),
    Column("platform", "Platform", _platform, lambda i: _platform(i).lower(), 24, 8),
    Column(
        "agent", "Agent", lambda i: i.agent_version, lambda i: _version_key(i.agent_version), 12
    ),
    Column("ip", "Private IP", lambda i: i.private_ip or "", lambda i: _ip_key(i.private_ip), 15),
    Column(
        "scope", "Profile/Region", lambda i: f"{i.profile}/{i.region}", lambda i: (i.scope,), 24, 14
    ),
    Column(
        "account", "Account", lambda i: i.account_id or "", lambda i: _text_key(i.account_id), 12
    ),
    *(_tag_column(t) for t in KEY_TAGS),
)
COLUMN_KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS)
_COLUMN_BY_KEY = {c.key: c for c in COLUMNS}


def column(key: str) -> Column:
    """The column called ``key`` (KeyError if none)."""
    return _COLUMN_BY_KEY[key]


# --------------------------------------------------------------------------- query


_PING_WORDS = ("online", "connectionlost", "inactive", "notregistered")


def _complete_ping(token: str) -> str:
    """``ping:on`` -> ``ping:online`` while typing (a unique prefix of a status)."""
    prefix, _, rest = token.partition(":")
    if prefix.lower() != "ping" or not rest:
        return token
    want = rest.lower().replace("-", "").replace("_", "")
    hits = [w for w in _PING_WORDS if w.startswith(want)]
    return f"ping:{hits[0]}" if len(hits) == 1 else token


def _fuzzy_pattern(term: str) -> re.Pattern[str] | None:
    """A subsequence pattern for ``term`` (``wbd1`` finds ``web-dev-1``), None if too short."""
    if len(term) < 2:
        return None
    return re.compile(".*?".join(re.escape(ch) for ch in term))


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """A parsed filter-bar query: free-text terms and ``key:value`` tokens, all AND-ed.

    Free text matches as a substring of the name, id, IPs, platform, profile/region and tags, or
    fuzzily (as a subsequence) of the name. Tokens are :class:`~ssmtui.models.InstanceFilter`\\ s:
    ``tag:K=V``, ``tag:K``, ``ping:online``, ``name:``, ``id:``, ``ip:``, ``profile:``,
    ``region:``, ``platform:``. Bad tokens do not raise: they are skipped and :attr:`error` says
    why, in one line.
    """

    text: str = ""
    filters: tuple[InstanceFilter, ...] = ()
    terms: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def parse(cls, text: str) -> FleetQuery:
        """Parse the filter bar's text (never raises)."""
        errors: list[str] = []
        try:
            tokens = shlex.split(text)
        except ValueError:
            tokens = text.split()
            errors.append("unbalanced quote in the filter")
        filters: list[InstanceFilter] = []
        terms: list[str] = []
        for token in tokens:
            try:
                flt = InstanceFilter.parse(_complete_ping(token))
            except SsmtuiError as err:
                errors.append(err.message + (f" ({err.hint})" if err.hint else ""))
                continue
            except ValueError as err:  # defensive: a filter must never crash the screen
                errors.append(f"bad filter {token!r}: {err}")
                continue
            if flt.kind == "text":
                terms.append(flt.value)
            else:
                filters.append(flt)
        return cls(text, tuple(filters), tuple(terms), "; ".join(errors) or None)

    @property
    def is_empty(self) -> bool:
        """True when the query filters nothing out."""
        return not self.filters and not self.terms


def _haystack(inst: Instance) -> str:
    parts = [
        inst.display_name,
        inst.name,
        inst.instance_id,
        inst.private_ip or "",
        inst.public_ip or "",
        inst.computer_name,
        _platform(inst),
        f"{inst.profile}/{inst.region}",
        inst.account_id or "",
    ]
    parts.extend(f"{k}={v}" for k, v in inst.tags)
    return "\x00".join(parts).lower()


#: Selections remembered per index (typing then deleting finds them again).
_SELECT_CACHE = 64


def _narrows(query: FleetQuery, filters: tuple[Any, ...], terms: tuple[str, ...]) -> bool:
    """Whether every match of ``query`` also matches (filters, terms): same filters, and each
    earlier free-text term contained in the term at its place (a substring of a substring, a
    subsequence of a subsequence; a 1-character term's match in the name is in the haystack)."""
    if query.filters != filters or len(query.terms) < len(terms):
        return False
    return all(old in new for old, new in zip(terms, query.terms, strict=False))


class FleetIndex:
    """The loaded fleet, indexed for fast filtering and sorting.

    Build a new index when the data changes; keep it while the query or sort changes.
    """

    def __init__(self, instances: Iterable[Instance]) -> None:
        self.instances: list[Instance] = list(instances)
        self._hay = [_haystack(i) for i in self.instances]
        self._names = [i.display_name.lower() for i in self.instances]
        #: Every name on its own line, for one regex scan per fuzzy term (not one per name);
        #: :attr:`_starts` holds where each line starts.
        self._name_lines = "\n".join(name.replace("\n", " ") for name in self._names)
        self._starts: list[int] = []
        offset = 0
        for name in self._names:
            self._starts.append(offset)
            offset += len(name) + 1
        self._orders: dict[str, list[int]] = {}
        #: Recent selections: (sort column, reverse, filters, terms) -> positions, newest last.
        self._selected: dict[tuple[Any, ...], list[int]] = {}
        self.by_key: dict[RowKey, Instance] = {row_key(i): i for i in self.instances}

    def __len__(self) -> int:
        return len(self.instances)

    def order(self, column_key: str) -> list[int]:
        """Positions of the instances sorted ascending by ``column_key`` (cached), ties by name."""
        cached = self._orders.get(column_key)
        if cached is None:
            key = column(column_key).sort_key
            keys = [
                (key(inst), name, inst.instance_id, inst.profile, inst.region)
                for inst, name in zip(self.instances, self._names, strict=True)
            ]
            cached = sorted(range(len(keys)), key=keys.__getitem__)
            self._orders[column_key] = cached
        return cached

    def select(
        self, query: FleetQuery, sort_column: str = "name", reverse: bool = False
    ) -> list[Instance]:
        """The instances passing ``query``, sorted by ``sort_column``."""
        insts = self.instances
        if query.is_empty:
            order = self.order(sort_column)
            return list(map(insts.__getitem__, reversed(order) if reverse else order))
        key = (sort_column, reverse, query.filters, query.terms)
        cached = self._selected.pop(key, None)
        if cached is None:
            cached = self._select(query, sort_column, reverse)
        self._selected[key] = cached  # newest last
        while len(self._selected) > _SELECT_CACHE:
            del self._selected[next(iter(self._selected))]
        return list(map(insts.__getitem__, cached))

    def _select(self, query: FleetQuery, sort_column: str, reverse: bool) -> list[int]:
        """Positions passing ``query`` in sort order; narrows a cached selection when it can."""
        base: list[int] | None = None
        for (col, rev, filters, terms), positions in reversed(self._selected.items()):
            if (
                col == sort_column
                and rev == reverse
                and (base is None or len(positions) < len(base))
                and _narrows(query, filters, terms)
            ):
                base = positions
        if base is None:
            order = self.order(sort_column)
            base = order[::-1] if reverse else order
        # One pass per term / the filters, each a plain comprehension (no call per instance:
        # the first keystroke on 10,000 rows scans them all).
        hay = self._hay
        positions = base
        for term in query.terms:
            pattern = _fuzzy_pattern(term)
            if pattern is None:
                positions = [n for n in positions if term in hay[n]]
            else:
                fuzzy = self._fuzzy_hits(pattern)
                positions = [n for n in positions if term in hay[n] or n in fuzzy]
        if query.filters:
            insts, filters = self.instances, query.filters
            positions = [n for n in positions if all(f.matches(insts[n]) for f in filters)]
        return positions if positions is not base else list(base)

    def _fuzzy_hits(self, pattern: re.Pattern[str]) -> set[int]:
        """Positions whose name has a match of ``pattern`` (``.`` never crosses a line, so each
        match lies within one name)."""
        starts = self._starts
        return {
            bisect_right(starts, match.start()) - 1 for match in pattern.finditer(self._name_lines)
        }

    def widths(self) -> dict[str, int]:
        """Column widths fitting the content (between each column's min and max width)."""
        out: dict[str, int] = {}
        for col in COLUMNS:
            widest = max((len(col.value(i)) for i in self.instances), default=0)
            out[col.key] = max(col.min_width, len(col.label), min(widest, col.max_width))
        return out


# --------------------------------------------------------------------------- summaries


_PING_STATUS = attrgetter("ping_status")


def fleet_summary(instances: Sequence[Instance]) -> str:
    """``"26 instances · 19 online · 3 lost · 2 inactive · 2 not registered"``."""
    counts = Counter(map(_PING_STATUS, instances))
    parts = [f"{len(instances)} instance{'s' if len(instances) != 1 else ''}"]
    for status in PING_STATUSES:
        if counts.get(status):
            parts.append(f"{counts[status]} {PING_GLYPHS[status][2]}")
    return " · ".join(parts)


def describe_error(scope: FleetScope, err: BaseException) -> str:
    """One line for a scope's failure: ``prod/eu-west-1: … — run: aws sso login --profile prod``."""
    message = err.message if isinstance(err, SsmtuiError) else (str(err) or type(err).__name__)
    text = message if message.startswith(str(scope)) else f"{scope}: {message}"
    hint = err.hint if isinstance(err, SsmtuiError) else None
    return f"{text} — {hint}" if hint else text
