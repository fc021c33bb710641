"""Plain-text and JSON renderings of the fleet for ``ssmtui list``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ssmtui.errors import AwsError, SsmtuiError
from ssmtui.models import FleetResult, FleetScope, Instance

__all__ = ["PING_GLYPHS", "error_json", "render_json", "render_table"]

#: Ping status -> (unicode glyph, ASCII glyph).
PING_GLYPHS: dict[str, tuple[str, str]] = {
    "Online": ("●", "*"),
    "ConnectionLost": ("◐", "!"),
    "Inactive": ("○", "o"),
    "NotRegistered": ("·", "-"),
}
_MAX_NAME = 40


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _platform(inst: Instance) -> str:
    if inst.platform_name:
        return f"{inst.platform_name} {inst.platform_version}".strip()
    return inst.platform_type or "-"


def _status(inst: Instance, unicode: bool) -> str:
    glyphs = PING_GLYPHS.get(inst.ping_status, ("?", "?"))
    status = inst.ping_status
    if inst.state and inst.state != "running":
        status = f"{status} ({inst.state})"
    return f"{glyphs[0] if unicode else glyphs[1]} {status}"


def render_table(
    instances: Sequence[Instance], *, unicode: bool = True, footer: bool = False
) -> str:
    """A fixed-width table: status, Name, id, platform, agent, private IP, profile/region."""
    header = ("STATUS", "NAME", "INSTANCE", "PLATFORM", "AGENT", "PRIVATE IP", "PROFILE/REGION")
    rows = [
        (
            _status(i, unicode),
            _cut(i.display_name, _MAX_NAME),
            i.instance_id,
            _cut(_platform(i), 32),
            i.agent_version or "-",
            i.private_ip or "-",
            f"{i.profile}/{i.region}",
        )
        for i in instances
    ]
    if not rows:
        return ""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    if footer:
        counts = Counter(i.ping_status for i in instances)
        scopes = len({(i.profile, i.region) for i in instances})
        lines.append(
            f"{len(instances)} instances ({counts.get('Online', 0)} online) "
            f"in {scopes} profile/region{'s' if scopes != 1 else ''}"
        )
    return "\n".join(lines) + "\n"


def error_json(scope: FleetScope, err: SsmtuiError) -> dict[str, Any]:
    """A scope error as JSON."""
    data: dict[str, Any] = {
        "profile": scope.profile,
        "region": scope.region,
        "type": type(err).__name__,
        "message": err.message,
        "hint": err.hint,
    }
    if isinstance(err, AwsError):
        data.update(code=err.code, request_id=err.request_id, operation=err.operation)
    return data


def render_json(result: FleetResult, shown: Sequence[Instance] | None = None) -> str:
    """``{"count", "instances", "errors", "scopes"}`` as indented JSON."""
    instances = list(result.instances if shown is None else shown)
    doc = {
        "count": len(instances),
        "instances": [i.to_json() for i in instances],
        "errors": [error_json(s, e) for s, e in result.errors.items()],
        "scopes": [str(s) for s in result.scopes],
    }
    return json.dumps(doc, indent=2)
