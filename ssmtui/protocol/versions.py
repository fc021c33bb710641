"""Version comparisons that decide port mode and keepalive, as each real side computes them.

Both sides decide independently (PROTOCOL.md §5.3, §7.2–§7.4); a client must pick the same
answer the agent will pick from the ClientVersion it reported, so both rules live here.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "agent_compare",
    "agent_uses_mux",
    "agent_wants_keepalive",
    "client_port_mode",
    "plugin_version_gt",
]

MUX_MIN_CLIENT = "1.1.70"
KEEPALIVE_OFF_ABOVE_CLIENT = "1.2.331.0"
MUX_ABOVE_AGENT = "3.0.196.0"
KEEPALIVE_OFF_ABOVE_AGENT = "3.1.1511.0"
TERMINATE_FLAG_ABOVE_AGENT = "2.3.722.0"

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def agent_compare(a: str, b: str) -> int:
    """The agent's versionutil.Compare: semver when both parse, else dotted components compared
    numerically when both are numbers and as byte strings otherwise; a missing component is
    shorter and compares lower."""
    ma, mb = _SEMVER.match(a), _SEMVER.match(b)
    if ma and mb:
        return _cmp(tuple(map(int, ma.groups())), tuple(map(int, mb.groups())))
    pa, pb = a.split("."), b.split(".")
    for x, y in zip(pa, pb, strict=False):
        if x.isdigit() and y.isdigit():
            c = _cmp(int(x), int(y))
        else:
            c = _cmp(x.encode(), y.encode())
        if c:
            return c
    return _cmp(len(pa), len(pb))


def plugin_version_gt(a: str, b: str) -> bool:
    """The plugin's strict ``a > b``: four numeric components required, otherwise False."""
    try:
        xa = [int(p) for p in a.split(".")]
        xb = [int(p) for p in b.split(".")]
    except ValueError:
        return False
    if len(xa) != 4 or len(xb) != 4:
        return False
    return xa > xb


def agent_uses_mux(properties: Any, client_version: str) -> bool:
    """Agent side: smux iff type is LocalPortForwarding and ClientVersion >= 1.1.70."""
    is_lpf = isinstance(properties, dict) and properties.get("type") == "LocalPortForwarding"
    return is_lpf and bool(client_version) and agent_compare(client_version, MUX_MIN_CLIENT) >= 0


def agent_wants_keepalive(client_version: str) -> bool:
    """Agent side: smux keepalive stays on unless ClientVersion > 1.2.331.0."""
    return not (client_version and agent_compare(client_version, KEEPALIVE_OFF_ABOVE_CLIENT) > 0)


def client_port_mode(properties: Any, agent_version: str, client_version: str) -> str:
    """Which port mode a client must use: "mux", "basic" or "stream" (SSH-style stdin/stdout).

    The reference client looks only at AgentVersion; we also honour what the agent will decide
    from our ClientVersion, so both sides always agree.
    """
    if not (isinstance(properties, dict) and properties.get("type") == "LocalPortForwarding"):
        return "stream"
    agent_mux = agent_uses_mux(properties, client_version)
    plugin_mux = plugin_version_gt(agent_version, MUX_ABOVE_AGENT)
    return "mux" if agent_mux and (plugin_mux or not agent_version) else "basic"


def client_smux_keepalive(agent_version: str) -> bool:
    """Client side: keep smux keepalive on (send NOPs) unless AgentVersion > 3.1.1511.0."""
    return not plugin_version_gt(agent_version, KEEPALIVE_OFF_ABOVE_AGENT)


def agent_supports_terminate_flag(agent_version: str) -> bool:
    return plugin_version_gt(agent_version, TERMINATE_FLAG_ABOVE_AGENT)
