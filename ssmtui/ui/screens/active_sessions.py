"""The Active Sessions pane: Session Manager sessions running in the fleet, whoever started them
and from wherever (SSM DescribeSessions over every profile/region), and TerminateSession.

The pane lists through :class:`~ssmtui.services.RemoteSessions` in an exclusive worker (a reload
replaces a running one; the ~10 s auto-refresh skips while one runs or while another screen is
on top). A scope that fails is one line above the table and never hides the others. Terminating
asks first, more sternly for someone else's session, then refreshes; an error is one line too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from ssmtui.cli_active import (
    COLUMNS,
    confirm_question,
    format_started,
    session_cells,
    target_label,
)
from ssmtui.models import FleetScope, RemoteSession
from ssmtui.services import RemoteSessions, SessionListing
from ssmtui.textfmt import format_duration
from ssmtui.ui.screens.sessions import ConfirmScreen
from ssmtui.ui.text import one_line

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients

__all__ = ["ActiveSessionsScreen", "NameLookup", "details_text", "show_active_sessions"]

#: Instance id -> display name, from the fleet the app has listed.
NameLookup = Callable[[], Mapping[str, str]]

_STATUS_STYLE = {
    "Connected": "green",
    "Connecting": "yellow",
    "Disconnected": "yellow",
    "Terminating": "yellow",
    "Terminated": "dim",
    "Failed": "bold red",
}


def _key(session: RemoteSession) -> str:
    return f"{session.profile}/{session.region}/{session.session_id}"


def details_text(session: RemoteSession | None, *, names: Mapping[str, str], mine: bool) -> Text:
    """Every field of a session, one per line."""
    if session is None:
        return Text("No session selected.", style="dim")
    now = datetime.now(UTC)
    target = target_label(session, names)
    owner = session.owner or "—"
    rows = [
        ("Session", session.session_id),
        ("Status", session.status or "—"),
        ("Target", target if target == session.target else f"{target} ({session.target})"),
        ("Owner", f"{owner} (you)" if mine else owner),
        ("Document", session.document or "(default shell)"),
        ("What", session.what),
        ("Reason", session.reason or "—"),
        ("Details", session.details or "—"),
        ("Started", format_started(session.start, now)),
        ("Ended", format_started(session.end, now) if session.end else "—"),
        ("Duration", format_duration(session.duration(now))),
        ("Scope", str(session.scope)),
        ("Output", session.output_url or "—"),
    ]
    text = Text()
    for i, (label, value) in enumerate(rows):
        if i:
            text.append("\n")
        text.append(f"{label:<10}", style="bold")
        text.append(value)
    text.append(
        "\n\nDescribeSessions does not return a session's parameters (ports, commands).",
        style="dim",
    )
    return text


class ActiveSessionsScreen(Screen[None]):
    """Sessions in the fleet (active, or recently ended), with terminate."""

    DEFAULT_CSS = """
    ActiveSessionsScreen #active-mode, ActiveSessionsScreen #active-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    ActiveSessionsScreen #active-errors {
        height: auto;
        max-height: 6;
        padding: 0 1;
        color: $error;
        display: none;
    }
    ActiveSessionsScreen #active-body { height: 1fr; }
    ActiveSessionsScreen #active-table { width: 1fr; height: 1fr; }
    ActiveSessionsScreen #active-details {
        width: 56;
        height: 1fr;
        padding: 0 1;
        border-left: vkey $accent 40%;
        background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back", id="active.close"),
        Binding("x,delete", "terminate", "Terminate", id="active.terminate"),
        Binding("v", "toggle_view", "Active/recent", id="active.view"),
        Binding("r,ctrl+r", "reload", "Reload", id="active.reload"),
        Binding("d", "toggle_details", "Details", id="active.details"),
    ]

    def __init__(
        self,
        service: RemoteSessions,
        scopes: Sequence[FleetScope],
        *,
        names: NameLookup | None = None,
        refresh_interval: float = 10.0,
    ) -> None:
        super().__init__(id="active-sessions")
        self.service = service
        self.scopes = list(scopes)
        self.names_of = names
        self.refresh_interval = refresh_interval
        #: Show recently ended sessions (History) instead of active ones.
        self.history = False
        self.listing = SessionListing()
        self.sessions: list[RemoteSession] = []
        self.names: Mapping[str, str] = {}
        #: The last terminate error ('' when none).
        self.action_error = ""
        self.load_count = 0
        self.terminated: list[str] = []
        self._loader: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        """Header, mode line, error lines, table + details, status, footer."""
        yield Header()
        yield Static("", id="active-mode")
        yield Static("", id="active-errors")
        with Horizontal(id="active-body"):
            yield DataTable(id="active-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="active-details")
        yield Static("loading…", id="active-status")
        yield Footer()

    @property
    def table(self) -> DataTable[str | Text]:
        """The sessions table."""
        return self.query_one("#active-table", DataTable)

    @property
    def details(self) -> Static:
        """The details panel."""
        return self.query_one("#active-details", Static)

    @property
    def error_text(self) -> str:
        """The error lines (scopes that failed, the last terminate error)."""
        return str(self.query_one("#active-errors", Static).content)

    @property
    def status_text(self) -> str:
        """The status line."""
        return str(self.query_one("#active-status", Static).content)

    @property
    def listing_busy(self) -> bool:
        """Whether a listing is under way."""
        return self._loader is not None and not self._loader.is_finished

    def on_mount(self) -> None:
        """Columns, first load, the auto-refresh timer."""
        self.table.add_columns(*COLUMNS)
        self.table.focus()
        self._show_mode()
        self.reload()
        if self.refresh_interval > 0:
            self.set_interval(self.refresh_interval, self._tick)

    def _tick(self) -> None:
        if self.app.screen is self and not self.listing_busy:
            self.reload()

    # ----------------------------------------------------------------- loading

    def reload(self) -> None:
        """List again now (replacing a listing under way)."""
        self._loader = self._load()

    @work(group="active-sessions", exclusive=True, exit_on_error=False, name="active-load")
    async def _load(self) -> None:
        history = self.history
        try:
            listing = await self.service.list(self.scopes, history=history)
        except Exception as exc:  # the pane never crashes
            self._set_errors([f"cannot list sessions: {one_line(exc)}"])
            self.query_one("#active-status", Static).update("listing failed · r retry · Esc back")
            return
        if history == self.history:
            self._show(listing)

    def _show(self, listing: SessionListing) -> None:
        current = self.selected
        self.listing = listing
        self.sessions = list(listing.sessions)
        try:
            self.names = dict(self.names_of()) if self.names_of is not None else {}
        except Exception:  # names are a nicety
            self.names = {}
        now = datetime.now(UTC)
        table = self.table
        table.clear()
        for s in self.sessions:
            mine = listing.is_mine(s)
            cells: list[str | Text] = list(session_cells(s, names=self.names, mine=mine, now=now))
            cells[0] = Text(s.status or "—", style=_STATUS_STYLE.get(s.status, ""))
            cells[3] = Text(str(cells[3]), style="bold" if mine else "yellow")
            table.add_row(*cells, key=_key(s))
        if current is not None:
            for index, s in enumerate(self.sessions):
                if _key(s) == _key(current):
                    table.move_cursor(row=index)
                    break
        self.load_count += 1
        lines = [
            err.message if str(scope) in err.message else f"{scope}: {one_line(err)}"
            for scope, err in listing.errors.items()
        ]
        self._set_errors(lines)
        self._update_details()
        self._show_status(now)

    def _show_status(self, now: datetime) -> None:
        n = len(self.sessions)
        what = "recent" if self.history else "active"
        if n:
            mine = sum(1 for s in self.sessions if self.listing.is_mine(s))
            shown = f"{n} {what} session{'s' if n != 1 else ''} ({mine} yours)"
        else:
            shown = f"no {what} sessions"
        stamp = now.astimezone().strftime("%H:%M:%S")
        self.query_one("#active-status", Static).update(
            f"{shown} · updated {stamp} · x terminate · v active/recent · r reload · Esc back"
        )

    def _show_mode(self) -> None:
        scopes = ", ".join(str(s) for s in self.scopes) or "no scopes"
        mode = "Recent (ended) sessions" if self.history else "Active sessions"
        self.query_one("#active-mode", Static).update(f"{mode} in {scopes}")

    def _set_errors(self, lines: list[str]) -> None:
        if self.action_error:
            lines = [*lines, self.action_error]
        box = self.query_one("#active-errors", Static)
        box.update("\n".join(lines))
        box.display = bool(lines)

    # ----------------------------------------------------------------- selection

    @property
    def selected(self) -> RemoteSession | None:
        """The highlighted session."""
        if not self.sessions or not self.is_mounted:
            return None
        row = self.table.cursor_row
        return self.sessions[row] if 0 <= row < len(self.sessions) else None

    def select(self, session_id: str) -> bool:
        """Move the cursor to the session with this id; False when it is not listed."""
        for index, s in enumerate(self.sessions):
            if s.session_id == session_id:
                self.table.move_cursor(row=index)
                self._update_details()
                return True
        return False

    def _update_details(self) -> None:
        if self.details.display:
            s = self.selected
            mine = s is not None and self.listing.is_mine(s)
            self.details.update(details_text(s, names=self.names, mine=mine))

    @on(DataTable.RowHighlighted, "#active-table")
    def _highlighted(self) -> None:
        self._update_details()

    # ----------------------------------------------------------------- actions

    def action_close(self) -> None:
        """Esc / q: back."""
        self.app.pop_screen()

    def action_reload(self) -> None:
        """``r``: list again now."""
        self.reload()

    def action_toggle_view(self) -> None:
        """``v``: active sessions <-> recently ended ones."""
        self.history = not self.history
        self.sessions = []
        self.table.clear()
        self._show_mode()
        self.query_one("#active-status", Static).update("loading…")
        self.reload()

    def action_toggle_details(self) -> None:
        """``d``: show or hide the details panel."""
        self.details.display = not self.details.display
        self._update_details()

    def action_terminate(self) -> None:
        """``x`` / Delete: TerminateSession on the highlighted session, after a confirmation."""
        session = self.selected
        if session is None:
            self.notify("No session selected.", severity="warning")
            return
        if not session.active:
            self.notify(f"{session.session_id} has already ended.", title="Terminate")
            return
        mine = self.listing.is_mine(session)
        question = confirm_question(session, names=self.names, mine=mine)

        def answered(yes: bool | None) -> None:
            if yes:
                self._terminate(session)

        self.app.push_screen(ConfirmScreen(question, yes="Terminate"), answered)

    @work(group="active-terminate", exit_on_error=False, name="active-terminate")
    async def _terminate(self, session: RemoteSession) -> None:
        target = target_label(session, self.names)
        try:
            await self.service.terminate(session.scope, session.session_id)
        except Exception as exc:  # AccessDenied & co: one line in the pane
            self.action_error = f"terminate {session.session_id}: {one_line(exc)}"
            self._set_errors([])
            self.reload()
            return
        self.action_error = ""
        self.terminated.append(session.session_id)
        self.notify(f"Terminated {session.session_id} on {target}.", title="Active sessions")
        self.reload()


def _clients_of(app: App[Any]) -> AwsClients | None:
    clients = getattr(getattr(app, "source", None), "clients", None)
    if clients is not None:
        return clients  # type: ignore[no-any-return]
    bench = getattr(app, "workbench", None)
    services = getattr(bench, "services", None)
    return getattr(services, "clients", None)


def show_active_sessions(app: App[Any], *, refresh_interval: float = 10.0) -> None:
    """Push the pane over ``app`` (an :class:`~ssmtui.ui.app.SsmtuiApp`), unless it is shown."""
    if isinstance(app.screen, ActiveSessionsScreen):
        return
    clients = _clients_of(app)
    source = getattr(app, "source", None)
    if clients is None or source is None:
        app.notify("Active sessions need AWS clients (run the app from the CLI).")
        return

    def names() -> dict[str, str]:
        fleet = getattr(app, "fleet", None)
        result = getattr(fleet, "result", None)
        instances = getattr(result, "instances", ())
        return {i.instance_id: i.display_name for i in instances}

    screen = ActiveSessionsScreen(
        RemoteSessions(clients), list(source.scopes), names=names, refresh_interval=refresh_interval
    )
    app.push_screen(screen)
