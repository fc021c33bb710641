"""The tunnels screen: every port forward with live state, counters and throughput.

The screen only shows the :class:`~ssmtui.ui.tunnel_book.TunnelBook` the workbench owns (tunnels
keep running while other screens are shown) and turns keys into workbench calls: stop/start,
restart, remove, start a preset. It redraws on the workbench's ~1 Hz sampling tick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ssmtui.ui.screens.sessions import tab_bindings
from ssmtui.ui.tunnel_book import TunnelEntry
from ssmtui.ui.widgets.tunnel_table import TunnelDetails, TunnelTable

if TYPE_CHECKING:
    from ssmtui.ui.workbench import Workbench

__all__ = ["TunnelsScreen"]

EMPTY = (
    "No tunnels yet. Press f on an instance in the fleet (alt+1) to forward a port, "
    "or p to start a preset from the config file."
)


class TunnelsScreen(Screen[None]):
    """Tunnels: live list, details, and the keys to manage them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "toggle_tunnel", "Stop/start", id="tunnels.toggle"),
        Binding("r", "restart", "Restart", id="tunnels.restart"),
        Binding("x,delete", "remove", "Remove", id="tunnels.remove"),
        Binding("p", "presets", "Presets", id="tunnels.presets"),
        Binding("escape", "fleet", "Fleet", show=False, id="tunnels.fleet"),
        *tab_bindings(show=True),
    ]

    def __init__(self, workbench: Workbench) -> None:
        super().__init__(id="tunnels")
        self.workbench = workbench

    def compose(self) -> ComposeResult:
        """Header, table, empty note, details, footer."""
        yield Header()
        yield TunnelTable(id="tunnel-table")
        yield Static(EMPTY, id="tunnels-empty")
        yield TunnelDetails(id="tunnel-details")
        yield Footer()

    @property
    def table(self) -> TunnelTable:
        """The table."""
        return self.query_one(TunnelTable)

    @property
    def highlighted(self) -> TunnelEntry | None:
        """The tunnel under the cursor."""
        key = self.table.highlighted_key
        return self.workbench.book.get(key) if key else None

    def on_mount(self) -> None:
        """First fill."""
        self.update_view()
        self.table.focus()

    def on_screen_resume(self) -> None:
        """Shown again: fresh numbers."""
        self.update_view()
        self.table.focus()

    def update_view(self, select: str | None = None) -> None:
        """Redraw rows and details from the book (cheap: cells are updated in place)."""
        if not self.is_mounted:
            return
        table = self.table
        table.sync(self.workbench.book)
        if select is not None:
            table.select_key(select)
        self.query_one("#tunnels-empty").display = not len(self.workbench.book)
        self.query_one(TunnelDetails).show(self.highlighted)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.query_one(TunnelDetails).show(self.highlighted)

    def _entry_or_warn(self) -> TunnelEntry | None:
        entry = self.highlighted
        if entry is None:
            self.notify("No tunnel selected.", severity="warning")
        return entry

    async def action_toggle_tunnel(self) -> None:
        """``s``: stop a running tunnel, start a stopped one."""
        entry = self._entry_or_warn()
        if entry is not None:
            await self.workbench.toggle_tunnel(entry)

    async def action_restart(self) -> None:
        """``r``: stop and start again on the same local port."""
        entry = self._entry_or_warn()
        if entry is not None:
            await self.workbench.restart_tunnel(entry)

    async def action_remove(self) -> None:
        """``x``: stop and remove."""
        entry = self._entry_or_warn()
        if entry is not None:
            await self.workbench.remove_tunnel(entry)

    def action_presets(self) -> None:
        """``p``: pick a preset from the config file."""
        self.workbench.pick_preset()

    async def action_fleet(self) -> None:
        """``escape``: back to the fleet."""
        await self.workbench.show_fleet()
