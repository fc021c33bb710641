"""Command palette (ctrl+p) entries: every fleet-screen action, plus "Open shell on <instance>".

The provider only calls the fleet screen's public methods (which post intents or change the
view); it never talks to AWS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ssmtui.errors import SsmtuiError
from ssmtui.models import Instance, Target
from ssmtui.ui.fleet_model import COLUMNS
from ssmtui.ui.screens.fleet import FleetScreen

__all__ = ["FleetCommands", "fleet_commands"]

#: How many "Connect to …" / "Forward from …" hits a search shows at most.
MAX_INSTANCE_HITS = 12

Command = tuple[str, str, Callable[[], object]]


def fleet_commands(screen: FleetScreen) -> list[Command]:
    """``(title, help, callback)`` for every fleet action the palette offers."""
    cmds: list[Command] = [
        ("Refresh fleet", "List every profile/region again now", screen.action_refresh),
        (
            "Filter: online only",
            "Show instances whose agent is Online",
            partial(screen.set_filter, "ping:online"),
        ),
        (
            "Filter: connection lost",
            "Show instances that stopped pinging",
            partial(screen.set_filter, "ping:connectionlost"),
        ),
        (
            "Filter: inactive",
            "Show Inactive instances",
            partial(screen.set_filter, "ping:inactive"),
        ),
        (
            "Filter: not registered",
            "EC2 instances without an SSM agent",
            partial(screen.set_filter, "ping:notregistered"),
        ),
        ("Filter: clear", "Show every instance", partial(screen.set_filter, "")),
        ("Focus filter bar", "Type a filter (/)", screen.action_focus_filter),
        ("Reverse sort order", "Flip ascending/descending (S)", screen.action_sort_reverse),
        ("Toggle details panel", "Show every field and tag (d)", screen.action_toggle_details),
        ("Show keys", "List every key binding (?)", partial(screen.app.run_action, "help")),
        (
            "Show history",
            "Past sessions: search, re-launch, replay (h)",
            partial(screen.app.run_action, "history"),
        ),
        (
            "Active sessions",
            "Sessions running in the fleet, anyone's; terminate them (a)",
            partial(screen.app.run_action, "active_sessions"),
        ),
        (
            "Doctor: why can't I connect?",
            "Unregistered instances, offline agents, roles, network, preferences (D)",
            partial(screen.app.run_action, "doctor"),
        ),
    ]
    for col in COLUMNS:
        cmds.append(
            (
                f"Sort by {col.name.lower()}",
                "Click the header to sort too",
                partial(screen.sort_by, col.key, False),
            )
        )
    profiles = sorted({s.profile for s in screen.source.scopes})
    regions = sorted({s.region for s in screen.source.scopes})
    for profile in profiles:
        cmds.append(
            (
                f"Filter: profile {profile}",
                "Only this AWS profile",
                partial(screen.set_filter, f"profile:{profile}"),
            )
        )
    for region in regions:
        cmds.append(
            (
                f"Filter: region {region}",
                "Only this region",
                partial(screen.set_filter, f"region:{region}"),
            )
        )
    return cmds


def _instance_help(inst: Instance) -> str:
    return f"{inst.instance_id} · {inst.profile}/{inst.region} · {inst.ping_status}"


class FleetCommands(Provider):
    """Fleet actions and per-instance connect/forward entries."""

    def _screen(self) -> FleetScreen | None:
        screen = self.screen
        return screen if isinstance(screen, FleetScreen) else None

    async def discover(self) -> Hits:
        """The fleet actions, before anything is typed."""
        screen = self._screen()
        if screen is None:
            return
        for inst in self._favourites(screen):
            title = f"★ Connect to {inst.display_name}"
            yield DiscoveryHit(
                title, partial(screen.request_connect, inst), help=_instance_help(inst)
            )
        for title, help_text, callback in fleet_commands(screen):
            yield DiscoveryHit(title, callback, help=help_text)

    def _favourites(self, screen: FleetScreen) -> list[Instance]:
        """The configured favourites that are in the fleet, in their configured order."""
        found: list[Instance] = []
        for text in getattr(self.app, "favourites", ()):
            try:
                target = Target.parse(text)
            except SsmtuiError:
                continue
            found.extend(i for i in screen.index.instances if target.matches(i) and i not in found)
        return found[:MAX_INSTANCE_HITS]

    async def search(self, query: str) -> Hits:
        """Fuzzy-match the actions; "connect NAME" / "forward NAME" find instances."""
        screen = self._screen()
        if screen is None:
            return
        matcher = self.matcher(query)
        for title, help_text, callback in fleet_commands(screen):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
        async for hit in self._instance_hits(screen, query):
            yield hit

    async def _instance_hits(self, screen: FleetScreen, query: str) -> Hits:
        words = query.strip().lower().split()
        verb = "connect"
        said = words[0] if words else ""
        if said in ("connect", "conn", "ssh", "shell", "open", "forward", "fwd", "port"):
            verb = "forward" if said in ("forward", "fwd", "port") else "connect"
            words = words[1:]
        elif said in ("run", "exec", "command", "cmd"):
            verb = "run"
            words = words[1:]
        elif said in ("doctor", "diagnose", "why", "check"):
            verb = "doctor"
            words = words[1:]
        if words and words[0] in ("to", "on", "from"):
            words = words[1:]
        needle = " ".join(words)
        if not needle:
            return
        by_tag: Target | None = None
        if needle.startswith("tag:") and "=" in needle:  # "connect tag:Role=web"
            with contextlib.suppress(SsmtuiError):
                by_tag = Target.parse(query.split()[-1])  # tags are case-sensitive
        matcher = self.matcher(needle)
        found = 0
        for inst in screen.index.instances:
            name = inst.display_name
            if by_tag is not None:
                if not by_tag.matches(inst):
                    continue
            elif needle not in name.lower() and needle not in inst.instance_id:
                continue
            if verb == "connect":
                # "connect web" -> "Connect to web-1"; otherwise say what happens
                verb_text = "Connect to" if said in ("connect", "conn") else "Open shell on"
                title = f"{verb_text} {name}"
                action = partial(screen.request_connect, inst)
            elif verb == "run":
                title = f"Run a command on {name}"
                action = partial(_ask_command, screen, inst)
            elif verb == "doctor":
                title = f"Diagnose {name}"
                action = partial(_diagnose, screen, inst)
            else:
                title = f"Forward a port from {name}"
                action = partial(screen.request_forward, inst)
            score = max(matcher.match(name), 0.5)
            yield Hit(score, title, action, text=title, help=_instance_help(inst))
            found += 1
            if found >= MAX_INSTANCE_HITS:
                break


def _diagnose(screen: FleetScreen, inst: Instance) -> None:
    opener = getattr(screen.app, "open_doctor", None)
    if opener is not None:
        opener(inst)


def _ask_command(screen: FleetScreen, inst: Instance) -> None:
    bench = getattr(screen.app, "workbench", None)
    if bench is None:
        screen.app.notify("commands need a session service (run the app from the CLI)")
        return
    bench.ask_command(inst)
