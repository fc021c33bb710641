"""The Textual app and its one factory, :func:`create_app` (used by the CLI, tests and screenshots).

The app is a thin shell: it shows the :class:`~ssmtui.ui.screens.fleet.FleetScreen`, owns the
global keys (quit, help, command palette) and decides what connect / forward intents do. With a
:class:`~ssmtui.services.SessionService` (``services=``), a :class:`~ssmtui.ui.workbench.Workbench`
opens shells in tabs and runs tunnels; without one, an intent without a handler shows a notice.
:func:`run_tui` (:mod:`ssmtui.ui.run`) is what the CLI runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen

from ssmtui.errors import ConfigError, SsmtuiError
from ssmtui.models import Instance
from ssmtui.store.history import History
from ssmtui.ui.commands import FleetCommands
from ssmtui.ui.messages import ConnectRequested, ForwardRequested
from ssmtui.ui.screens.fleet import FleetScreen
from ssmtui.ui.screens.help import HelpScreen, KeyRow
from ssmtui.ui.screens.history import HistoryScreen
from ssmtui.ui.screens.sessions import tab_bindings
from ssmtui.ui.source import FleetSource
from ssmtui.ui.workbench import Resolver, Workbench
from ssmtui.ui.workbench_commands import WorkbenchCommands

if TYPE_CHECKING:
    from ssmtui.config import TunnelPreset
    from ssmtui.runtime import AppContext
    from ssmtui.services import SessionService

__all__ = ["InstanceHandler", "SsmtuiApp", "create_app", "run_tui"]

#: What the app calls for a connect / forward intent.
InstanceHandler = Callable[[Instance], Awaitable[None]]

NOT_YET = "shell sessions open in tabs in the next release"


class SsmtuiApp(App[None]):
    """ssmtui: browse the SSM fleet, connect to instances."""

    CSS_PATH = "app.tcss"
    TITLE = "ssmtui"
    favourites: tuple[str, ...] = ()
    COMMANDS = App.COMMANDS | {FleetCommands, WorkbenchCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Keys", key_display="?", id="app.help"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="app.palette"),
        Binding("h", "history", "History", id="app.history"),
        Binding("a", "active_sessions", "Active sessions", id="app.active_sessions"),
        Binding("D", "doctor", "Doctor", key_display="D", id="app.doctor"),
        # sessions & tunnels (active with services=; priority: they reach past a shell tab)
        Binding("t", "tunnels", "Tunnels", id="app.tunnels"),
        *tab_bindings(show=False),  # shown in the footer of the session and tunnel screens
    ]

    def __init__(
        self,
        source: FleetSource,
        *,
        refresh_interval: float = 30.0,
        title: str = "ssmtui",
        subtitle: str | None = None,
        on_connect: InstanceHandler | None = None,
        on_forward: InstanceHandler | None = None,
        history: History | None = None,
        services: SessionService | None = None,
        tunnel_presets: Sequence[TunnelPreset] = (),
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__()
        #: Sessions in tabs and tunnels (None without ``services``).
        self.workbench = (
            Workbench(self, services, presets=tunnel_presets, resolver=resolver)
            if services is not None
            else None
        )
        if self.workbench is not None:
            on_connect = on_connect or self.workbench.connect
            on_forward = on_forward or self.workbench.forward
        #: The session history the ``h`` screen shows (None: history is off).
        self.history = history
        self.source = source
        self.refresh_interval = refresh_interval
        self.title = title
        self.sub_title = subtitle if subtitle is not None else _scopes_subtitle(source)
        self.connect_handler = on_connect
        self.forward_handler = on_forward

    def get_default_screen(self) -> Screen[None]:
        """The fleet screen."""
        return FleetScreen(self.source, refresh_interval=self.refresh_interval)

    @property
    def fleet(self) -> FleetScreen:
        """The fleet screen (the default screen)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, FleetScreen)
        return screen

    def help_rows(self) -> list[KeyRow]:
        """The remappable keys (bindings with ids) of the current screen, after remapping.

        Keys bound to the same action are shown together (``r, ^r``); the table's navigation
        keys are listed by the help screen itself.
        """
        grouped: dict[tuple[str, str], list[str]] = {}
        ids: dict[tuple[str, str], str] = {}
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.system:
                continue
            group = (binding.action, binding.description)
            if binding.id:
                ids.setdefault(group, binding.id)
            shown = binding.key_display or self.get_key_display(binding) or key
            keys = grouped.setdefault(group, [])
            if shown not in keys:
                keys.append(shown)
        rows = [(", ".join(grouped[g]), g[1], ids[g]) for g in grouped if g in ids]
        return sorted(rows, key=lambda row: (not row[2].startswith("fleet."), row[2]))

    def action_help(self) -> None:
        """``?``: list the keys."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_rows()))

    def action_history(self) -> None:
        """``h``: the session history (search, re-launch, replay)."""
        if self.history is None:
            self.notify("Session history is off.", title="History")
        elif not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.history, find_instance=self._find_instance))

    def action_active_sessions(self) -> None:
        """``a``: sessions running in the fleet, anyone's (terminate them there)."""
        from ssmtui.ui.screens.active_sessions import show_active_sessions

        show_active_sessions(self)

    def action_doctor(self) -> None:
        """``D``: why instances are missing or sessions fail (the fleet row under the cursor is
        examined first, with your permission to start sessions on it)."""
        self.open_doctor(self.fleet.table.highlighted if self.screen is self.fleet else None)

    def open_doctor(self, chosen: Instance | None = None) -> None:
        """Show the Doctor pane, examining ``chosen`` first (with the permission check)."""
        from ssmtui.ui.screens.doctor import DoctorScreen

        runner = self.doctor_runner()
        if runner is None:
            self.notify("The doctor needs AWS access (this fleet has none).", title="Doctor")
            return
        if not isinstance(self.screen, DoctorScreen):
            self.push_screen(DoctorScreen(runner, chosen))

    def doctor_runner(self) -> Callable[[str | None], Awaitable[Any]] | None:
        """How the Doctor pane runs its checks: over the fleet source's AWS clients."""
        clients = getattr(self.source, "clients", None)
        if clients is None:
            return None
        scopes = list(self.source.scopes)

        async def run(target: str | None) -> Any:
            from ssmtui.doctor import run_doctor

            return await run_doctor(clients, scopes, target)

        return run

    def _find_instance(self, instance_id: str) -> Instance | None:
        """The instance with this id in the current fleet listing."""
        return self.fleet.result.by_id().get(instance_id)

    # ----------------------------------------------------------------- sessions & tunnels

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Tab and tunnel keys need a workbench (and no dialog open)."""
        if action in ("tunnels", "goto", "cycle"):
            return self.workbench is not None and not isinstance(self.screen, ModalScreen)
        return True

    async def action_tunnels(self) -> None:
        """``t``: the tunnels screen."""
        if self.workbench is not None:
            await self.workbench.show_tunnels()

    async def action_goto(self, number: int) -> None:
        """``alt+1`` the fleet, ``alt+2…9`` session tabs."""
        if self.workbench is not None:
            await self.workbench.goto_number(number)

    async def action_cycle(self, step: int) -> None:
        """``ctrl+pgup/pgdn``: fleet, session tabs, tunnels in turn."""
        if self.workbench is not None:
            await self.workbench.cycle(step)

    @on(events.Unmount)
    async def _close_workbench(self) -> None:
        if self.workbench is not None:
            await self.workbench.aclose()

    @on(ConnectRequested)
    def _connect(self, message: ConnectRequested) -> None:
        self._dispatch(self.connect_handler, message.instance, "Connect")

    @on(ForwardRequested)
    def _forward(self, message: ForwardRequested) -> None:
        self._dispatch(self.forward_handler, message.instance, "Forward")

    def _dispatch(self, handler: InstanceHandler | None, inst: Instance, what: str) -> None:
        title = f"{what}: {inst.display_name}"
        if handler is None:
            self.notify(NOT_YET, title=title)
            return

        async def run() -> None:
            try:
                await handler(inst)
            except SsmtuiError as err:
                self.notify("\n".join(err.lines()), title=title, severity="error", timeout=10)

        self.run_worker(run(), group="intents", name=title, exit_on_error=False)


def _scopes_subtitle(source: FleetSource) -> str:
    scopes = list(source.scopes)
    if len(scopes) <= 2:
        return " · ".join(str(s) for s in scopes)
    profiles = {s.profile for s in scopes}
    regions = {s.region for s in scopes}
    return f"{len(profiles)} profiles × {len(regions)} regions"


def create_app(
    source: FleetSource,
    *,
    refresh_interval: float = 30.0,
    title: str = "ssmtui",
    subtitle: str | None = None,
    on_connect: InstanceHandler | None = None,
    on_forward: InstanceHandler | None = None,
    keymap: Mapping[str, str] | None = None,
    theme: str | None = None,
    history: History | None = None,
    services: SessionService | None = None,
    tunnel_presets: Sequence[TunnelPreset] = (),
    resolver: Resolver | None = None,
    favourites: Sequence[str] = (),
) -> SsmtuiApp:
    """The ssmtui app over ``source``.

    ``refresh_interval`` seconds between background refreshes (0 disables them);
    ``on_connect`` / ``on_forward`` handle the intents (default: a "next release" notice);
    ``keymap`` maps binding ids (see the ``?`` screen) to keys; ``theme`` names a Textual theme;
    ``history`` is shown by the ``h`` screen (None: history is off); ``services`` (a
    :class:`~ssmtui.services.SessionService`) turns on shells in tabs and tunnels, with
    ``tunnel_presets`` from the config and ``resolver`` finding their targets;
    ``favourites`` (targets: id, Name, ``tag:K=V``, IP) lead the command palette.
    """
    app = SsmtuiApp(
        source,
        refresh_interval=refresh_interval,
        title=title,
        subtitle=subtitle,
        on_connect=on_connect,
        on_forward=on_forward,
        history=history,
        services=services,
        tunnel_presets=tunnel_presets,
        resolver=resolver,
    )
    app.favourites = tuple(favourites)  # targets offered first in the command palette
    if keymap:
        app.set_keymap(dict(keymap))
    if theme:
        if theme not in app.available_themes:
            raise ConfigError(
                f"unknown theme {theme!r}",
                hint="one of: " + ", ".join(sorted(app.available_themes)),
            )
        app.theme = theme
    return app


def run_tui(ctx: AppContext) -> int:
    """Run the TUI for the CLI (see :func:`ssmtui.ui.run.run_tui`); returns the exit status."""
    from ssmtui.ui.run import run_tui as run

    return run(ctx)
