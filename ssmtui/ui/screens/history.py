"""The history screen: past sessions, newest first; search, details, re-launch and replay.

Records come from a :class:`~ssmtui.store.history.History` read in a thread (an exclusive worker:
a newer search cancels an older one). The search box takes free words plus ``kind:shell``,
``instance:web``, ``profile:prod``, ``region:eu-west-1`` and ``since:1d``
(:class:`~ssmtui.store.history.HistoryQuery`). Re-launching a row posts the app's usual intent
(:class:`~ssmtui.ui.messages.ForwardRequested` for a tunnel, else
:class:`~ssmtui.ui.messages.ConnectRequested`) for the instance as it is in the current fleet; a
row with a transcript can be replayed in a read-only view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from ssmtui.errors import SsmtuiError
from ssmtui.models import Instance
from ssmtui.store.history import History, HistoryQuery, SessionRecord
from ssmtui.textfmt import format_bytes, format_duration
from ssmtui.ui.messages import ConnectRequested, ForwardRequested
from ssmtui.ui.widgets.transcript_view import TranscriptView

__all__ = ["HistoryScreen", "InstanceLookup", "ReplayScreen", "format_bytes", "format_duration"]

#: Finds an instance of the current fleet by id (None: not in the fleet).
InstanceLookup = Callable[[str], Instance | None]

PLACEHOLDER = "search: words  kind:shell|tunnel|command  instance:web  profile:prod  since:1d"
COLUMNS = ("Started", "Duration", "Instance", "Profile/Region", "Type", "Exit", "In", "Out")


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _exit_cell(rec: SessionRecord) -> Text:
    if not rec.ended:
        return Text("open", style="yellow")
    if rec.exit_status is None:
        return Text("—", style="dim")
    return Text(str(rec.exit_status), style="green" if rec.exit_status == 0 else "bold red")


def row_cells(rec: SessionRecord) -> tuple[str | Text, ...]:
    """The table cells of one record."""
    return (
        _local(rec.started_at),
        format_duration(rec.duration),
        rec.display_instance,
        f"{rec.profile}/{rec.region}" if rec.profile or rec.region else "—",
        rec.kind,
        _exit_cell(rec),
        format_bytes(rec.bytes_in),
        format_bytes(rec.bytes_out),
    )


def details_text(rec: SessionRecord | None) -> Text:
    """Every field of a record, one per line."""
    if rec is None:
        return Text("No session selected.", style="dim")
    params = ", ".join(
        f"{k}={' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in rec.parameters.items()
    )
    scope = f"{rec.profile}/{rec.region}" + (f" · {rec.account_id}" if rec.account_id else "")
    rows = [
        ("Session", f"#{rec.id} {rec.kind}" + (f" · {rec.session_id}" if rec.session_id else "")),
        ("Instance", rec.display_instance),
        ("Scope", scope),
        ("Document", rec.document or "(default shell)"),
        ("Parameters", params or "—"),
        ("Started", _local(rec.started_at)),
        ("Ended", _local(rec.ended_at) if rec.ended_at else "not recorded"),
        ("Duration", format_duration(rec.duration)),
        ("Exit", "—" if rec.exit_status is None else str(rec.exit_status)),
        ("End reason", rec.end_reason or "—"),
        ("Bytes", f"in {format_bytes(rec.bytes_in)} · out {format_bytes(rec.bytes_out)}"),
        ("Transcript", rec.transcript or "none (p replays when there is one)"),
    ]
    text = Text()
    for i, (label, value) in enumerate(rows):
        if i:
            text.append("\n")
        text.append(f"{label:<11}", style="bold")
        text.append(value)
    return text


class HistoryScreen(Screen[None]):
    """Past sessions: search, details, re-launch, replay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="history.close"),
        Binding("slash", "focus_filter", "Search", id="history.search"),
        Binding("c", "relaunch", "Re-launch", id="history.relaunch"),
        Binding("p", "replay", "Replay", id="history.replay"),
        Binding("d", "toggle_details", "Details", id="history.details"),
        Binding("r,ctrl+r", "reload", "Reload", id="history.reload"),
    ]

    def __init__(
        self,
        history: History,
        *,
        find_instance: InstanceLookup | None = None,
        limit: int = 500,
    ) -> None:
        super().__init__(id="history")
        self.history = history
        self.find_instance = find_instance
        self.limit = limit
        self.query_value = HistoryQuery()
        self.records: list[SessionRecord] = []
        self.loaded = False
        self.load_count = 0

    def compose(self) -> ComposeResult:
        """Header, search box (+ error line), table and details, status, footer."""
        yield Header()
        with Vertical(id="history-search"):
            yield Input(placeholder=PLACEHOLDER, id="history-filter")
            yield Label("", id="history-error")
        with Horizontal(id="history-body"):
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="history-details")
        yield Static("", id="history-status")
        yield Footer()

    @property
    def table(self) -> DataTable[str | Text]:
        """The records table."""
        return self.query_one("#history-table", DataTable)

    @property
    def filter_input(self) -> Input:
        """The search box."""
        return self.query_one("#history-filter", Input)

    @property
    def details(self) -> Static:
        """The details panel."""
        return self.query_one("#history-details", Static)

    @property
    def status_text(self) -> str:
        """The status line's text."""
        return str(self.query_one("#history-status", Static).content)

    @property
    def error_text(self) -> str:
        """The search error line's text ('' when the search is valid)."""
        return str(self.query_one("#history-error", Label).content)

    def on_mount(self) -> None:
        """Set up the table and load."""
        self.table.add_columns(*COLUMNS)
        self.table.focus()
        self.load()

    # ----------------------------------------------------------------- loading

    @work(group="history", exclusive=True, exit_on_error=False, name="history-load")
    async def load(self) -> None:
        """Read the records matching the search (in a thread)."""
        query = self.query_value
        try:
            records = await asyncio.to_thread(self.history.query, query, limit=self.limit)
        except SsmtuiError as err:
            self._set_status(f"cannot read the history: {err}")
            self.notify("\n".join(err.lines()), title="History", severity="error", timeout=10)
            return
        self._show(records)

    def _show(self, records: list[SessionRecord]) -> None:
        current = self.selected
        self.records = records
        table = self.table
        table.clear()
        for rec in records:
            table.add_row(*row_cells(rec), key=str(rec.id))
        if current is not None:
            for index, rec in enumerate(records):
                if rec.id == current.id:
                    table.move_cursor(row=index)
                    break
        self.loaded = True
        self.load_count += 1
        self._update_details()
        if records:
            shown = f"{len(records)} session{'s' if len(records) != 1 else ''}"
            if len(records) >= self.limit:
                shown = f"the newest {shown}"
        else:
            shown = "no sessions match" if not self.query_value.is_empty else "no sessions yet"
        self._set_status(
            f"{shown} · Enter/c re-launch · p replay · d details · / search · Esc back"
        )

    def _set_status(self, text: str) -> None:
        self.query_one("#history-status", Static).update(text)

    # ----------------------------------------------------------------- selection

    @property
    def selected(self) -> SessionRecord | None:
        """The highlighted record."""
        if not self.records or not self.is_mounted:
            return None
        row = self.table.cursor_row
        return self.records[row] if 0 <= row < len(self.records) else None

    def _update_details(self) -> None:
        if self.details.display:
            self.details.update(details_text(self.selected))

    @on(DataTable.RowHighlighted, "#history-table")
    def _highlighted(self) -> None:
        self._update_details()

    @on(DataTable.RowSelected, "#history-table")
    def _selected(self) -> None:
        self.action_relaunch()

    # ----------------------------------------------------------------- search

    def set_filter(self, text: str) -> None:
        """Replace the search text (and search)."""
        self.filter_input.value = text

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        error = self.query_one("#history-error", Label)
        try:
            query = HistoryQuery.parse(event.value)
        except SsmtuiError as err:
            error.update(err.message + (f" — {err.hint}" if err.hint else ""))
            error.display = True
            return
        error.update("")
        error.display = False
        self.query_value = query
        self.load()

    @on(Input.Submitted, "#history-filter")
    def _filter_done(self) -> None:
        self.table.focus()

    # ----------------------------------------------------------------- actions

    def action_close(self) -> None:
        """Esc: clear the search if the box has focus and text, else leave the screen."""
        if self.filter_input.has_focus and self.filter_input.value:
            self.filter_input.value = ""
            return
        if self.filter_input.has_focus:
            self.table.focus()
            return
        self.app.pop_screen()

    def action_focus_filter(self) -> None:
        """``/``: type a search."""
        self.filter_input.focus()

    def action_reload(self) -> None:
        """``r``: read the history again."""
        self.load()

    def action_toggle_details(self) -> None:
        """``d``: show or hide the details panel."""
        self.details.display = not self.details.display
        self._update_details()

    def _lookup(self, instance_id: str) -> Instance | None:
        if self.find_instance is not None:
            return self.find_instance(instance_id)
        from ssmtui.ui.screens.fleet import FleetScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, FleetScreen):
                return screen.result.by_id().get(instance_id)
        return None

    def action_relaunch(self) -> None:
        """``c`` / Enter: the same kind of session again (a tunnel: forward; else connect)."""
        rec = self.selected
        if rec is None:
            self.notify("No session selected.", severity="warning")
            return
        inst = self._lookup(rec.instance_id)
        if inst is None:
            self.notify(
                f"{rec.display_instance} is not in the current fleet.",
                title="Re-launch",
                severity="warning",
            )
            return
        message = ForwardRequested(inst) if rec.kind == "tunnel" else ConnectRequested(inst)
        app = self.app
        if app.screen is self:
            app.pop_screen()
        app.post_message(message)

    def action_replay(self) -> None:
        """``p``: replay the highlighted session's transcript."""
        rec = self.selected
        if rec is None:
            self.notify("No session selected.", severity="warning")
            return
        if not rec.transcript:
            self.notify("No transcript was recorded for this session.", title="Replay")
            return
        if not Path(rec.transcript).is_file():
            self.notify(f"Transcript missing: {rec.transcript}", title="Replay", severity="error")
            return
        self.app.push_screen(ReplayScreen(rec))


class ReplayScreen(Screen[None]):
    """A read-only replay of one session's transcript."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back", id="replay.close"),
        Binding("space", "skip", "Skip to end", id="replay.skip"),
    ]

    def __init__(self, record: SessionRecord, *, speed: float = 1.0) -> None:
        super().__init__(id="replay")
        self.record = record
        self.speed = speed

    def compose(self) -> ComposeResult:
        """Title line, the log, footer."""
        rec = self.record
        yield Header()
        yield Static(
            f"Replay: {rec.display_instance} · {rec.kind} · {_local(rec.started_at)}",
            id="replay-title",
        )
        yield TranscriptView(rec.transcript or "", speed=self.speed, id="replay-log")
        yield Footer()

    @property
    def view(self) -> TranscriptView:
        """The transcript view."""
        return self.query_one(TranscriptView)

    def action_skip(self) -> None:
        """Space: show the rest at once."""
        self.view.skip()

    def action_close(self) -> None:
        """Esc / q: back to the history."""
        self.app.pop_screen()

    @on(TranscriptView.Finished)
    def _finished(self, event: TranscriptView.Finished) -> None:
        if event.error:
            self.notify(event.error, title="Replay", severity="error")
        else:
            self.query_one("#replay-title", Static).update(
                f"Replay: {self.record.display_instance} · {self.record.kind} · "
                f"{_local(self.record.started_at)} · end of transcript"
            )
