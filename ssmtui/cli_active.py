"""``ssmtui sessions`` and ``ssmtui terminate``: sessions running in the fleet, whoever started
them and from wherever (SSM DescribeSessions), and TerminateSession by id.

The cell texts (:func:`session_cells`) are shared with the Active Sessions pane of the TUI
(:mod:`ssmtui.ui.screens.active_sessions`), so both say the same thing the same way. Nothing
heavy is imported at module level: the AWS SDK loads when a verb runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from ssmtui.errors import SsmtuiError, UsageError
from ssmtui.textfmt import format_age, format_duration

if TYPE_CHECKING:
    import argparse

    from ssmtui.aws.clients import AwsClients
    from ssmtui.models import FleetScope, RemoteSession
    from ssmtui.runtime import AppContext
    from ssmtui.services import SessionListing

__all__ = [
    "COLUMNS",
    "confirm_question",
    "format_started",
    "owner_label",
    "render_table",
    "session_cells",
    "sessions_main",
    "target_names",
    "terminate_main",
    "valid_session_id",
]

PROG = "ssmtui"
COLUMNS = (
    "Status",
    "Session",
    "Target",
    "Owner",
    "What",
    "Started",
    "Duration",
    "Profile/Region",
    "Reason",
)
#: AWS session ids: ``<principal name>-<hex>``, at most 96 characters.
_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._@+=,:/-]{1,96}$")


# --------------------------------------------------------------------------- text


def format_started(start: datetime | None, now: datetime) -> str:
    """Local time (the date too when not today) and how long ago: ``14:03:12 (25m ago)``."""
    if start is None:
        return "—"
    local, today = start.astimezone(), now.astimezone()
    when = local.strftime("%H:%M:%S" if local.date() == today.date() else "%Y-%m-%d %H:%M")
    return f"{when} ({format_age((now - start).total_seconds())})"


def owner_label(session: RemoteSession, mine: bool) -> str:
    """``you`` for the caller's own sessions, else the owner's short name."""
    return "you" if mine else (session.owner_name or "—")


def target_label(session: RemoteSession, names: Mapping[str, str]) -> str:
    """The instance's Name when known, else the target id."""
    return names.get(session.target) or session.target


def session_cells(
    session: RemoteSession, *, names: Mapping[str, str], mine: bool, now: datetime
) -> tuple[str, ...]:
    """One table row, in :data:`COLUMNS` order."""
    return (
        session.status or "—",
        session.session_id,
        target_label(session, names),
        owner_label(session, mine),
        session.what,
        format_started(session.start, now),
        format_duration(session.duration(now)),
        f"{session.profile}/{session.region}",
        session.reason or "",
    )


def confirm_question(session: RemoteSession, *, names: Mapping[str, str], mine: bool) -> str:
    """What to ask before TerminateSession; plainer for one's own session than for another's."""
    target = target_label(session, names)
    if target != session.target:
        target = f"{target} ({session.target})"
    if mine:
        return f"Terminate session {session.session_id} on {target} (you)?"
    owner = session.owner_name or "someone else"
    return (
        f"This is {owner}'s session, started elsewhere.\n"
        f"Terminate session {session.session_id} on {target}, started by {owner}? "
        "It ends for them at once."
    )


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str] = COLUMNS) -> str:
    """Left-aligned columns separated by two spaces (trailing blanks trimmed)."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines) + "\n"


def valid_session_id(text: str) -> str:
    """``text`` stripped, if it can be a session id; else :class:`UsageError`."""
    value = text.strip()
    if not _SESSION_ID_RE.match(value):
        raise UsageError(
            f"bad session id {text!r}", hint=f"see the ids with: {PROG} sessions (or --history)"
        )
    return value


# --------------------------------------------------------------------------- lookups


async def target_names(clients: AwsClients, sessions: Sequence[RemoteSession]) -> dict[str, str]:
    """Instance id -> Name tag (or managed node name) for the sessions' targets; best effort
    (a scope that does not answer leaves its ids unnamed)."""
    from ssmtui.aws.fleet import describe_instance_information, describe_instances

    by_scope: dict[FleetScope, list[str]] = {}
    for s in sessions:
        ids = by_scope.setdefault(s.scope, [])
        if s.target not in ids:
            ids.append(s.target)

    async def one(scope: FleetScope, ids: list[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        info, ec2 = await asyncio.gather(
            describe_instance_information(clients, scope, ids),
            describe_instances(clients, scope, ids),
            return_exceptions=True,
        )
        if isinstance(info, list):
            for item in info:
                name = item.get("Name") or item.get("ComputerName")
                if name:
                    names[str(item.get("InstanceId"))] = str(name)
        if isinstance(ec2, list):
            for inst, _owner in ec2:
                tag = next(
                    (t.get("Value") for t in inst.get("Tags") or [] if t["Key"] == "Name"), ""
                )
                if tag:
                    names[str(inst.get("InstanceId"))] = str(tag)
        return names

    found: dict[str, str] = {}
    for part in await asyncio.gather(*(one(sc, ids) for sc, ids in by_scope.items())):
        found.update(part)
    return found


def _report(err: SsmtuiError, scope: FleetScope) -> None:
    msg = err.message if str(scope) in err.message else f"{scope}: {err.message}"
    sys.stderr.write(f"{PROG}: {msg}\n" + (f"hint: {err.hint}\n" if err.hint else ""))
    sys.stderr.flush()


# --------------------------------------------------------------------------- sessions


def sessions_main(ctx: AppContext, args: argparse.Namespace) -> int:
    """``ssmtui sessions [--history] [--json]``: exit 1 when a scope failed, else 0."""
    return int(asyncio.run(_sessions(ctx, history=args.history, as_json=args.json)))


async def _sessions(ctx: AppContext, *, history: bool, as_json: bool) -> int:
    from ssmtui.runtime import open_runtime
    from ssmtui.services import RemoteSessions

    async with open_runtime(ctx) as rt:
        listing = await RemoteSessions(rt.clients).list(rt.scopes, history=history)
        names = await target_names(rt.clients, listing.sessions)
    write_listing(listing, names, sys.stdout, as_json=as_json)
    for scope, err in listing.errors.items():
        _report(err, scope)
    if not listing.sessions and not listing.errors and not as_json:
        what = "recent" if history else "active"
        print(f"{PROG}: no {what} sessions", file=sys.stderr)
    return 1 if listing.errors else 0


def write_listing(
    listing: SessionListing, names: Mapping[str, str], out: TextIO, *, as_json: bool
) -> None:
    """The listing as a table or as JSON on ``out``."""
    from datetime import UTC

    now = datetime.now(UTC)
    if as_json:
        doc: dict[str, Any] = {
            "state": "History" if listing.history else "Active",
            "sessions": [
                {
                    **s.to_json(),
                    "target_name": names.get(s.target),
                    "mine": listing.is_mine(s),
                }
                for s in listing.sessions
            ],
            "errors": [
                {"scope": str(scope), "error": err.message, "hint": err.hint}
                for scope, err in listing.errors.items()
            ],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
    elif listing.sessions:
        rows = [
            session_cells(s, names=names, mine=listing.is_mine(s), now=now)
            for s in listing.sessions
        ]
        out.write(render_table(rows))
    out.flush()


# --------------------------------------------------------------------------- terminate


def terminate_main(ctx: AppContext, args: argparse.Namespace) -> int:
    """``ssmtui terminate SESSION_ID [--yes]``."""
    session_id = valid_session_id(args.session_id)
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(
            "terminate asks for confirmation, and stdin is not a terminal",
            hint=f"add --yes: {PROG} terminate {session_id} --yes",
        )
    return int(asyncio.run(_terminate(ctx, session_id, assume_yes=args.yes)))


async def _terminate(ctx: AppContext, session_id: str, *, assume_yes: bool) -> int:
    from ssmtui.runtime import open_runtime
    from ssmtui.services import RemoteSessions

    async with open_runtime(ctx) as rt:
        service = RemoteSessions(rt.clients)
        listing = await service.find(session_id, rt.scopes)
        session = listing.find(session_id)
        if session is None:
            if listing.errors:
                scope, err = next(iter(listing.errors.items()))
                _report(err, scope)
            where = ", ".join(str(s) for s in rt.scopes)
            raise SsmtuiError(
                f"no session {session_id} in {where}",
                hint=f"see the active ones with: {PROG} sessions",
            )
        if not session.active:
            raise SsmtuiError(f"session {session_id} has already ended ({session.status})")
        names = await target_names(rt.clients, [session])
        mine = listing.is_mine(session)
        if not assume_yes and not await asyncio.to_thread(_ask, session, names, mine):
            print("not terminated", file=sys.stderr)
            return 1
        await service.terminate(session.scope, session_id)
    print(f"terminated {session_id} on {target_label(session, names)}")
    return 0


def _ask(session: RemoteSession, names: Mapping[str, str], mine: bool) -> bool:
    owner = owner_label(session, mine)
    target = target_label(session, names)
    if not mine:
        sys.stderr.write(f"This is {owner}'s session, started elsewhere.\n")
    sys.stderr.write(f"Terminate {session.session_id} on {target} ({owner})? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
