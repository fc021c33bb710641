"""What the app does with sessions and tunnels: one object the app, screens and palette call.

The :class:`Workbench` owns the :class:`~ssmtui.ui.screens.sessions.SessionsScreen` and the
:class:`~ssmtui.ui.screens.tunnels.TunnelsScreen` (installed, so they live while hidden), the
:class:`~ssmtui.ui.tunnel_book.TunnelBook`, the tunnel presets, and navigation between the fleet,
the session tabs and the tunnels (``ctrl+pgup/pgdn`` cycle: fleet, tab 1…n, tunnels).
It talks to AWS only through the :class:`~ssmtui.services.SessionService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from textual.screen import ModalScreen, Screen
from textual.timer import Timer

from ssmtui.config import TunnelPreset
from ssmtui.models import FleetScope, Instance, Target
from ssmtui.services import SessionService
from ssmtui.transport.tunnel import TunnelSpec
from ssmtui.transport.websocket import DataChannelConnection
from ssmtui.ui.screens.sessions import SessionsScreen, ShellTab
from ssmtui.ui.screens.tunnels import TunnelsScreen
from ssmtui.ui.text import one_line
from ssmtui.ui.tunnel_book import TunnelBook, TunnelEntry
from ssmtui.ui.widgets.tunnel_form import PresetPicker, TunnelForm

if TYPE_CHECKING:
    from ssmtui.ui.app import SsmtuiApp

__all__ = ["Resolver", "Workbench"]

#: ``(target, profile, region) -> Instance``: how presets find their instance.
Resolver = Callable[[str, str | None, str | None], Awaitable[Instance]]
#: Seconds between tunnel samples (throughput, table refresh).
SAMPLE_EVERY = 1.0


def _settle_heap() -> None:
    """Take what is alive now (the AWS SDK's models, the fleet, the app) out of the garbage
    collector's full passes (``gc.collect`` then ``gc.freeze``). Output floods allocate fast;
    without this each full collection walks the whole heap and stalls the UI for ~150 ms."""
    gc.collect()
    gc.freeze()


class Workbench:
    """Sessions in tabs and tunnels, for one app."""

    def __init__(
        self,
        app: SsmtuiApp,
        services: SessionService,
        *,
        presets: Sequence[TunnelPreset] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.presets = tuple(presets)
        self.resolver = resolver
        self.book = TunnelBook(services)
        self.sessions = SessionsScreen(self)
        self.tunnels = TunnelsScreen(self)
        #: Sessions opened and not ended yet: tab id -> (instance, session id, connection).
        self.live: dict[str, tuple[Instance, str, DataChannelConnection | None]] = {}
        self._installed = False
        self._ticker: Timer | None = None
        self._heap_settled = False

    # ------------------------------------------------------------------ navigation

    def _install(self) -> None:
        if not self._installed:
            self.app.install_screen(self.sessions, "sessions")
            self.app.install_screen(self.tunnels, "tunnels")
            self._installed = True

    @property
    def base(self) -> Screen[object]:
        """The top screen that is not a modal (what the user is "on")."""
        stack: list[Screen[object]] = list(self.app.screen_stack)
        for screen in reversed(stack):
            if not isinstance(screen, ModalScreen):
                return screen
        return stack[0]

    async def _show(self, screen: Screen[None] | None) -> None:
        """Show ``screen`` over the fleet (None: the fleet itself)."""
        self._install()
        app = self.app
        if app.screen is screen:
            return
        while len(app.screen_stack) > 1:
            await app.pop_screen()
        if screen is not None:
            await app.push_screen(screen)

    async def show_fleet(self) -> None:
        """The fleet screen."""
        await self._show(None)

    async def show_sessions(self, tab: ShellTab | None = None) -> None:
        """The sessions screen (on ``tab``)."""
        await self._show(self.sessions)
        if tab is not None:
            self.sessions.activate(tab)

    async def show_tunnels(self, select: str | None = None) -> None:
        """The tunnels screen (cursor on tunnel ``select``)."""
        await self._show(self.tunnels)
        self.tunnels.update_view(select)

    def _ring(self) -> list[str]:
        return ["fleet", *[t.id or "" for t in self.sessions.tabs], "tunnels"]

    def _where(self) -> str:
        base = self.base
        if base is self.tunnels:
            return "tunnels"
        if base is self.sessions:
            tab = self.sessions.active_tab
            return tab.id or "fleet" if tab is not None else "fleet"
        return "fleet"

    async def go(self, where: str) -> None:
        """Show ``fleet``, ``tunnels`` or the session tab with that id."""
        if where == "fleet":
            await self.show_fleet()
        elif where == "tunnels":
            await self.show_tunnels()
        else:
            tab = next((t for t in self.sessions.tabs if t.id == where), None)
            await self.show_sessions(tab)

    async def cycle(self, step: int) -> None:
        """Next / previous in the ring fleet, tab 1…n, tunnels."""
        ring = self._ring()
        where = self._where()
        index = ring.index(where) if where in ring else 0
        await self.go(ring[(index + step) % len(ring)])

    async def goto_number(self, number: int) -> None:
        """``alt+1`` the fleet, ``alt+2…9`` session tab 1…8."""
        if number <= 1:
            await self.show_fleet()
            return
        tabs = self.sessions.tabs
        if number - 2 < len(tabs):
            await self.show_sessions(tabs[number - 2])

    # ------------------------------------------------------------------ sessions

    def _settle(self) -> None:
        if not self._heap_settled:  # once, before the first session of this app
            self._heap_settled = True
            _settle_heap()

    async def open_shell(self, instance: Instance) -> ShellTab:
        """A shell on ``instance`` in a new tab (shown)."""
        self._settle()
        await self._show(self.sessions)
        return await self.sessions.add_session(instance)

    async def run_command(self, instance: Instance, command: str) -> ShellTab:
        """``command`` on ``instance`` in a pty, in a new tab (AWS-StartInteractiveCommand)."""
        from ssmtui.services import SessionKind

        self._settle()
        await self._show(self.sessions)
        kind = SessionKind.command(command, interactive=True)
        return await self.sessions.add_session(instance, kind)

    def ask_command(self, instance: Instance) -> None:
        """Ask for a command, then :meth:`run_command` it."""
        from ssmtui.ui.widgets.command_prompt import CommandPrompt

        async def start(command: str) -> None:
            await self.run_command(instance, command)

        async def done(command: str | None) -> None:
            if command:
                await self._guarded("run the command", start(command))

        self.app.push_screen(CommandPrompt(instance.display_name), done)

    async def connect(self, instance: Instance) -> None:
        """The app's connect intent: :meth:`open_shell`."""
        await self.open_shell(instance)

    def session_live(self, tab: ShellTab, live: bool) -> None:
        """Sessions report when they start and when they are over (for the cleanup at exit)."""
        if tab.id is None:
            return
        if live:
            self.live[tab.id] = (tab.instance, tab.session_id, tab.conn)
        else:
            self.live.pop(tab.id, None)

    async def full_terminal(self) -> None:
        """The whole terminal for the active session tab."""
        tab = self.sessions.active_tab
        if tab is None:
            self.app.notify("No session tab open.", severity="warning")
            return
        await self.show_sessions(tab)
        await tab.run_full_terminal()

    # ------------------------------------------------------------------ tunnels

    async def forward(self, instance: Instance) -> None:
        """Ask for the ports in a form, then start the tunnel (the form shows start errors)."""

        async def done(result: object) -> None:
            if isinstance(result, TunnelEntry):
                self.app.notify(
                    f"{result.remote} on {result.local_address}", title="Tunnel started"
                )
                await self.show_tunnels(result.key)

        self.app.push_screen(TunnelForm(instance, partial(self.start_tunnel, instance)), done)

    async def start_tunnel(
        self, instance: Instance, spec: TunnelSpec, name: str | None = None
    ) -> TunnelEntry:
        """Start a tunnel now (raises with one clear line if its listener cannot open)."""
        self._settle()
        entry = await self.book.start(instance, spec, name=name)
        self._ensure_ticker()
        self.tunnels.update_view()
        return entry

    def _ensure_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = self.app.set_interval(SAMPLE_EVERY, self._tick, name="tunnel-sample")

    def _tick(self) -> None:
        self.book.sample()
        # The timer may fire while the app shuts down (screen stack already empty).
        if self.app.screen_stack and self.base is self.tunnels:
            self.tunnels.update_view()

    async def _guarded(self, what: str, action: Awaitable[None]) -> None:
        try:
            await action
        except Exception as err:  # one line, never a traceback
            self.app.notify(one_line(err), title=what, severity="error", timeout=8)
        self.tunnels.update_view()

    async def toggle_tunnel(self, entry: TunnelEntry) -> None:
        """Stop a running tunnel or start a stopped one."""
        if entry.running:
            await self._guarded(f"Stop {entry.name}", self.book.stop(entry))
        else:
            await self._guarded(f"Start {entry.name}", self.book.restart(entry))

    async def restart_tunnel(self, entry: TunnelEntry) -> None:
        """Stop and start again on the same local port."""
        await self._guarded(f"Restart {entry.name}", self.book.restart(entry))

    async def stop_tunnel(self, entry: TunnelEntry) -> None:
        """Stop (the row stays)."""
        await self._guarded(f"Stop {entry.name}", self.book.stop(entry))

    async def remove_tunnel(self, entry: TunnelEntry) -> None:
        """Stop and remove the row."""
        await self._guarded(f"Remove {entry.name}", self.book.remove(entry))

    # ------------------------------------------------------------------ presets

    def pick_preset(self) -> None:
        """Choose a preset from the config file, then start it."""
        if not self.presets:
            self.app.notify("No tunnel presets: add [[tunnels]] to the config file.")
            return

        async def chosen(preset: TunnelPreset | None) -> None:
            if preset is not None:
                await self.start_preset(preset)

        self.app.push_screen(PresetPicker(self.presets), chosen)

    async def start_preset(self, preset: TunnelPreset) -> TunnelEntry | None:
        """Resolve the preset's target and start it; errors are one notification line."""
        try:
            instance = await self.resolve(preset)
            spec = TunnelSpec(
                instance.instance_id, preset.local_port, preset.remote_port, preset.remote_host
            )
            entry = await self.start_tunnel(instance, spec, name=preset.name)
        except Exception as err:  # unknown target, port in use, AWS errors
            self.app.notify(one_line(err), title=f"Preset {preset.name}", severity="error")
            return None
        self.app.notify(f"{entry.remote} on {entry.local_address}", title=f"Preset {preset.name}")
        await self.show_tunnels(entry.key)
        return entry

    async def resolve(self, preset: TunnelPreset) -> Instance:
        """The one instance a preset names (the listed fleet first, then AWS)."""
        if self.resolver is not None:
            return await self.resolver(preset.target, preset.profile, preset.region)
        target = Target.parse(preset.target)
        listed = [
            inst
            for inst in self.app.fleet.index.instances
            if target.matches(inst)
            and preset.profile in (None, inst.profile)
            and preset.region in (None, inst.region)
        ]
        if len(listed) == 1:
            return listed[0]
        from ssmtui.aws.fleet import resolve_target

        return await resolve_target(self.services.clients, self._scopes(preset), target)

    def _scopes(self, preset: TunnelPreset) -> list[FleetScope]:
        scopes = list(self.app.source.scopes)
        profiles = [preset.profile] if preset.profile else sorted({s.profile for s in scopes})
        regions = [preset.region] if preset.region else sorted({s.region for s in scopes})
        return [FleetScope(p, r) for p in profiles for r in regions]

    # ------------------------------------------------------------------ the end

    async def aclose(self) -> None:
        """Stop every tunnel; close and TerminateSession every session still open."""
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        await self.book.aclose()
        live = list(self.live.values())
        self.live.clear()

        async def end(
            instance: Instance, session_id: str, conn: DataChannelConnection | None
        ) -> None:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            if session_id:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.services.terminate(instance, session_id), 3)

        await asyncio.gather(*(end(*item) for item in live))
