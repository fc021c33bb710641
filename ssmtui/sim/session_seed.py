"""Sessions "started elsewhere": the fleet file's ``[[sessions]]`` seeded into a new server.

Each table names ``profile``, ``region``, ``owner`` (an IAM/STS ARN), ``target``, optional
``document`` and ``parameters``, ``started_minutes_ago``, ``status`` (``Connected`` = active;
``Terminated``/``Failed`` = history, with ``ended_minutes_ago``), ``reason`` and ``details``.
Session ids follow AWS: ``<user name>-<17 hex>`` (the user name being the owner ARN's last part).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ssmtui.sim.documents import DEFAULT_DOCUMENT, SESSION_DOCUMENTS, normalize_document_name

if TYPE_CHECKING:
    from ssmtui.sim.state import SimSession, SimState

__all__ = ["seed_sessions", "seeded_session"]

_STATUSES = ("Connected", "Terminated", "Failed")


def seeded_session(state: SimState, raw: Mapping[str, Any]) -> SimSession:
    """Build one seeded :class:`SimSession` (ValueError on a bad table)."""
    from ssmtui.sim.state import SimSession

    profile = str(raw.get("profile", ""))
    if profile not in state.fleet.accounts:
        raise ValueError(f"sessions: unknown profile {profile!r}")
    status = str(raw.get("status", "Connected"))
    if status not in _STATUSES:
        raise ValueError(f"sessions: bad status {status!r} (want one of {_STATUSES})")
    owner = str(raw["owner"])
    target = str(raw["target"])
    document = normalize_document_name(raw.get("document"))
    if document != DEFAULT_DOCUMENT and document not in SESSION_DOCUMENTS:
        raise ValueError(f"sessions: unknown document {document!r}")
    region = str(raw.get("region", "us-east-1"))
    account_id = state.fleet.account_for(profile)
    now = state.now()
    start = now - timedelta(minutes=float(raw.get("started_minutes_ago", 5)))
    user = owner.rsplit("/", 1)[-1].split(":")[-1] or "user"
    digest = hashlib.sha256(f"{owner}|{target}|{raw.get('started_minutes_ago')}".encode())
    session_id = f"{user}-{digest.hexdigest()[:17]}"
    params = {str(k): [str(x) for x in v] for k, v in dict(raw.get("parameters", {})).items()}
    token = secrets.token_urlsafe(48)
    doc = SESSION_DOCUMENTS.get(document, {})
    session = SimSession(
        session_id=session_id,
        target=target,
        document_name=document,
        parameters=params,
        resolved_parameters={k: v[0] for k, v in params.items() if v},
        token=token,
        tokens=[token],
        owner=owner,
        account_id=account_id,
        region=region,
        profile=profile,
        start_date=start,
        status=status,
        reason=str(raw["reason"]) if raw.get("reason") else None,
        details=str(raw["details"]) if raw.get("details") else None,
        session_type=str(doc.get("sessionType", "Standard_Stream")),
        preferences=state.session_preferences(account_id, region),
    )
    if status != "Connected":
        ended = float(raw.get("ended_minutes_ago", 0))
        session.end_date = max(start, now - timedelta(minutes=ended))
    return session


def seed_sessions(state: SimState) -> None:
    """Add the fleet's seeded sessions to ``state.sessions`` (oldest first)."""
    seeded = [seeded_session(state, raw) for raw in state.fleet.sessions]
    for session in sorted(seeded, key=lambda s: s.start_date):
        state.sessions[session.session_id] = session
