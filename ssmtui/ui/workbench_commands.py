"""Command palette entries for sessions and tunnels (any screen, when the app has services).

"Show fleet / sessions / tunnels", "Switch to / Close session …", "Full terminal: …",
"Stop / Start / Restart / Remove tunnel …", "Start tunnel preset …", and, away from the fleet
screen (which has its own provider), "Open shell on …" / "Forward a port from …".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ssmtui.ui.screens.fleet import FleetScreen

if TYPE_CHECKING:
    from ssmtui.ui.workbench import Workbench

__all__ = ["WorkbenchCommands", "workbench_commands"]

Command = tuple[str, str, Callable[[], object]]
MAX_INSTANCE_HITS = 12


def workbench_commands(bench: Workbench) -> list[Command]:
    """``(title, help, callback)`` for every session and tunnel action available now."""
    cmds: list[Command] = [
        ("Show fleet", "Back to the instance list (alt+1)", bench.show_fleet),
        ("Show tunnels", "Port forwards with live counters (t)", bench.show_tunnels),
    ]
    tabs = bench.sessions.tabs
    if tabs:
        cmds.append(("Show sessions", "The shell tabs (ctrl+pgdn)", bench.show_sessions))
    for tab in tabs:
        label = tab.name_label
        cmds.append((f"Switch to session {label}", tab.state, partial(bench.show_sessions, tab)))
        cmds.append(
            (
                f"Close session {label}",
                "Terminate the session and close its tab",
                partial(bench.sessions.close_tab, tab),
            )
        )
        if tab.state == "ready":
            cmds.append(
                (
                    f"Full terminal: {label}",
                    "Hand the whole terminal to the session (ctrl+] comes back)",
                    partial(_full_terminal, bench, tab),
                )
            )
    for entry in bench.book:
        where = f"{entry.local_address} → {entry.remote}"
        if entry.running:
            cmds.append((f"Stop tunnel {entry.name}", where, partial(bench.stop_tunnel, entry)))
        else:
            cmds.append((f"Start tunnel {entry.name}", where, partial(bench.toggle_tunnel, entry)))
        cmds.append((f"Restart tunnel {entry.name}", where, partial(bench.restart_tunnel, entry)))
        cmds.append((f"Remove tunnel {entry.name}", where, partial(bench.remove_tunnel, entry)))
    for preset in bench.presets:
        cmds.append(
            (
                f"Start tunnel preset {preset.name}",
                f"{preset.local_port or 'any'} → {preset.target} → {preset.remote_port}",
                partial(bench.start_preset, preset),
            )
        )
    return cmds


async def _full_terminal(bench: Workbench, tab: object) -> None:
    await bench.show_sessions(tab)  # type: ignore[arg-type]
    await bench.full_terminal()


class WorkbenchCommands(Provider):
    """Sessions and tunnels in the palette."""

    def _bench(self) -> Workbench | None:
        return getattr(self.app, "workbench", None)

    async def discover(self) -> Hits:
        """Every command, before anything is typed."""
        bench = self._bench()
        if bench is None:
            return
        for title, help_text, callback in workbench_commands(bench):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy-match the commands (and instances, away from the fleet screen)."""
        bench = self._bench()
        if bench is None:
            return
        matcher = self.matcher(query)
        for title, help_text, callback in workbench_commands(bench):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
        if isinstance(self.screen, FleetScreen):
            return  # the fleet screen's provider offers the instances there
        words = query.strip().lower().split()
        forward = bool(words) and words[0] in ("forward", "fwd", "port")
        if words and words[0] in ("forward", "fwd", "port", "shell", "open", "connect", "ssh"):
            words = words[1:]
        needle = " ".join(w for w in words if w not in ("on", "to", "from"))
        if not needle:
            return
        found = 0
        for inst in bench.app.fleet.index.instances:
            name = inst.display_name
            if needle not in name.lower() and needle not in inst.instance_id:
                continue
            action: Callable[[], object]
            if forward:
                title, action = f"Forward a port from {name}", partial(bench.forward, inst)
            else:
                title, action = f"Open shell on {name}", partial(bench.open_shell, inst)
            yield Hit(max(matcher.match(name), 0.5), title, action, text=title)
            found += 1
            if found >= MAX_INSTANCE_HITS:
                return
