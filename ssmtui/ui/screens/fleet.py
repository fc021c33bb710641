"""The fleet screen: every instance across the profile × region scopes, filtered and sorted.

The screen owns the data flow: it lists the fleet through its :class:`~ssmtui.ui.source.FleetSource`
in an exclusive worker (a newer load cancels an older one), shows progress scope by scope, keeps
failed scopes' errors where they belong (a line per scope, plus a notification) and refreshes in
the background every ``refresh_interval`` seconds without moving the cursor. Widgets only post
intents; connect / forward requests go up to the app as
:class:`~ssmtui.ui.messages.ConnectRequested` / :class:`~ssmtui.ui.messages.ForwardRequested`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header

from ssmtui.errors import SsmtuiError
from ssmtui.models import FleetResult, FleetScope, Instance
from ssmtui.ui.fleet_model import (
    COLUMN_KEYS,
    FleetIndex,
    FleetQuery,
    column,
    describe_error,
    fleet_summary,
)
from ssmtui.ui.messages import ConnectRequested, ForwardRequested
from ssmtui.ui.source import FleetSource, merge_results
from ssmtui.ui.widgets.details import InstanceDetails
from ssmtui.ui.widgets.filter_bar import FilterBar
from ssmtui.ui.widgets.fleet_table import FleetTable
from ssmtui.ui.widgets.status import FleetStatus, ScopeErrors

__all__ = ["FleetScreen"]


class FleetScreen(Screen[None]):
    """Browse the fleet; pick an instance to connect to."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="fleet.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="fleet.clear_filter"),
        Binding("c", "connect", "Connect", id="fleet.connect"),
        Binding("f", "forward", "Forward", id="fleet.forward"),
        Binding("s", "sort_next", "Sort", id="fleet.sort"),
        Binding("S", "sort_reverse", "Reverse", key_display="S", id="fleet.sort_reverse"),
        Binding("d", "toggle_details", "Details", id="fleet.details"),
        Binding("r,ctrl+r", "refresh", "Refresh", id="fleet.refresh"),
    ]

    def __init__(self, source: FleetSource, *, refresh_interval: float = 30.0) -> None:
        super().__init__(id="fleet")
        self.source = source
        self.refresh_interval = refresh_interval
        self.index = FleetIndex(())
        #: The last listing applied (instances include the kept rows of failed scopes).
        self.result = FleetResult()
        self.errors: Mapping[FleetScope, SsmtuiError] = {}
        self.stale: tuple[FleetScope, ...] = ()
        self.query_value = FleetQuery()
        self.sort_column = "name"
        self.sort_reverse = False
        self.fleet_loaded = False
        self.fleet_loading = False
        self.refreshed_at: datetime | None = None
        self.load_count = 0
        self._notified: dict[FleetScope, str] = {}
        self._generation = 0
        #: The background refresh timer (None when ``refresh_interval`` is 0).
        self.refresh_timer: Timer | None = None
        #: Seconds the last filter change took (parse + select + table update).
        self.last_filter_seconds = 0.0

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        """Header, filter bar, scope errors, table (+ details), status line, footer."""
        yield Header()
        yield FilterBar(id="filter")
        yield ScopeErrors(id="scope-errors")
        with Horizontal(id="fleet-body"):
            yield FleetTable(id="fleet-table")
            yield InstanceDetails(id="details")
        yield FleetStatus(id="status")
        yield Footer()

    @property
    def table(self) -> FleetTable:
        """The fleet table."""
        return self.query_one(FleetTable)

    @property
    def filter_bar(self) -> FilterBar:
        """The filter bar."""
        return self.query_one(FilterBar)

    @property
    def details(self) -> InstanceDetails:
        """The details panel."""
        return self.query_one(InstanceDetails)

    @property
    def status(self) -> FleetStatus:
        """The status line."""
        return self.query_one(FleetStatus)

    @property
    def details_visible(self) -> bool:
        """Whether the details panel is shown."""
        return self.details.display

    def on_mount(self) -> None:
        """Start the first load and the refresh timer."""
        self.table.set_sort(self.sort_column, self.sort_reverse)
        self.table.empty_message = "Loading the fleet…"
        self.table.focus()
        self._update_right()
        # Re-filter inside the keystroke's handler (the FilterBar.Changed message would come a
        # hop later, after Textual has drawn the bare echo and paused its refresh timer).
        self.watch(self.filter_bar, "query_value", self._query_set, init=False)
        self.load_fleet()
        if self.refresh_interval > 0:
            self.refresh_timer = self.set_interval(
                self.refresh_interval, self._background_refresh, name="fleet-refresh"
            )

    # ----------------------------------------------------------------- loading

    def _background_refresh(self) -> None:
        if not self.fleet_loading:
            self.load_fleet()

    @work(group="fleet", exclusive=True, exit_on_error=False, name="fleet-load")
    async def load_fleet(self) -> None:
        """List the fleet (cancels a load already running)."""
        scopes = list(self.source.scopes)
        initial = not self.fleet_loaded
        done: dict[FleetScope, FleetResult] = {}
        self._generation += 1
        generation = self._generation
        self.fleet_loading = True
        if initial:
            self.status.show_progress(scopes, 0, len(scopes), 0)
        else:  # a refresh: keep the summary, say so on the right
            self._update_right()

        latest: dict[FleetScope, FleetResult] = {}
        applied = [0]  # rows shown by the last partial apply

        def on_scope(scope: FleetScope, result: FleetResult) -> None:
            if generation != self._generation:
                return  # a newer load took over
            latest[scope] = result
            if not result.partial:
                done[scope] = result
            pending = [s for s in scopes if s not in done]
            if not initial:
                return
            rows = sum(len(r) for r in latest.values())
            self.status.show_progress(pending, len(done), len(scopes), rows)
            # Show early rows, then re-show only when they have doubled (or a scope is done):
            # each apply re-indexes every row, so this keeps a 10,000-row load to a few.
            # The last scope's final result is applied with the whole listing.
            if pending and (not result.partial or rows >= 2 * applied[0]):
                applied[0] = max(rows, 1)
                shown = [s for s in scopes if s in latest]
                partial = merge_results(shown, [latest[s] for s in shown])
                self._apply(partial, keep=self.table.cursor_row > 0)

        try:
            result = await self.source.list_fleet(on_scope=on_scope)
        except SsmtuiError as err:
            self._fail("\n".join(err.lines()))
        except Exception as err:  # a source bug must not kill the screen
            self.log.error("fleet listing failed", err)
            self._fail(f"listing the fleet failed: {type(err).__name__}: {err}")
        else:
            self.load_count += 1
            self.refreshed_at = datetime.now()
            self.fleet_loading = False
            self.fleet_loaded = True
            self._apply(result, keep=not initial or self.table.cursor_row > 0)
            # The listing (10,000 instances: ~1M objects with their rows and index) stays alive;
            # keep it out of the collector's full passes, which otherwise stall a keystroke for
            # ~100 ms. Only freezes (no collect: that would be the very stall avoided here).
            gc.freeze()
        finally:
            if generation == self._generation:  # a cancelled load leaves the status alone
                self.fleet_loading = False
                self.status.set_summary(self._summary())
                self._update_right()

    def _fail(self, message: str) -> None:
        self.notify(message, title="Fleet", severity="error", timeout=10)
        if not self.index:
            self.table.empty_message = f"Could not list the fleet: {message.splitlines()[0]}"
            self.table.refresh()

    def _apply(self, result: FleetResult, *, keep: bool = True) -> None:
        """Show a listing; failed scopes keep the rows they had (marked stale).

        ``keep``: keep the cursor on the highlighted instance (else on the same row index).
        """
        instances = list(result.instances)
        stale: list[FleetScope] = []
        listed = {i.scope for i in instances}
        for scope in result.errors:
            if scope not in listed:
                kept = self.result.in_scope(scope)
                if kept:
                    instances.extend(kept)
                    stale.append(scope)
        self.result = FleetResult(tuple(instances), dict(result.errors), result.scopes)
        self.errors = result.errors
        self.stale = tuple(stale)
        self.index = FleetIndex(instances)
        self.table.set_widths(self.index.widths())
        self.query_one(ScopeErrors).set_errors(self.errors, self.stale)
        self._notify_errors()
        self._refilter(keep=keep)

    def _notify_errors(self) -> None:
        for scope, err in self.errors.items():
            line = describe_error(scope, err)
            if self._notified.get(scope) != line:
                self.notify(line, title="Fleet", severity="error", timeout=10)
        self._notified = {s: describe_error(s, e) for s, e in self.errors.items()}

    # ----------------------------------------------------------------- filter & sort

    def _refilter(self, *, keep: bool = True) -> None:
        started = time.perf_counter()
        rows = self.index.select(self.query_value, self.sort_column, self.sort_reverse)
        self.table.empty_message = self._empty_message()
        self.table.set_rows(rows, keep=keep)
        self.last_filter_seconds = time.perf_counter() - started
        if not self.fleet_loading:
            self.status.set_summary(self._summary())

    def _empty_message(self) -> str:
        if self.index:
            return f"No instances match “{self.query_value.text.strip()}” — Esc clears the filter."
        if self.fleet_loading and not self.fleet_loaded:
            return "Loading the fleet…"
        scopes = list(self.source.scopes)
        if scopes and all(s in self.errors for s in scopes):
            return "Could not list any profile/region — see the errors above."
        names = ", ".join(str(s) for s in scopes) or "no profile/region selected"
        return f"No instances in these scopes: {names}."

    def _summary(self) -> str:
        shown = self.table.rows
        text = fleet_summary(shown)
        if not self.query_value.is_empty:
            _, _, counts = text.partition(" · ")
            text = f"{len(shown)} of {len(self.index)} shown" + (f" · {counts}" if counts else "")
        if self.errors:
            text += f" · {len(self.errors)} scope{'s' if len(self.errors) > 1 else ''} failed"
        return text

    def _update_right(self) -> None:
        arrow = "▼" if self.sort_reverse else "▲"
        parts = [f"sort: {column(self.sort_column).name} {arrow}"]
        if self.fleet_loading and self.fleet_loaded:
            parts.append("⟳ refreshing…")
        elif self.refreshed_at is not None:
            parts.append(f"refreshed {self.refreshed_at:%H:%M:%S}")
        if self.refresh_interval > 0:
            parts.append(f"every {self.refresh_interval:g}s")
        self.status.set_right(" · ".join(parts))

    def set_filter(self, text: str) -> None:
        """Replace the filter text (the palette's "Filter: …" commands)."""
        self.filter_bar.set_text(text)

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by column ``key``; same column again (with ``reverse=None``) flips the order."""
        if reverse is None:
            reverse = not self.sort_reverse if key == self.sort_column else False
        self.sort_column, self.sort_reverse = key, reverse
        self.table.set_sort(key, reverse)
        self._update_right()
        self._refilter()

    def _query_set(self, query: FleetQuery) -> None:
        if query != self.query_value:
            self.query_value = query
            self._refilter()

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        # Usually applied already by the watcher; an older query still queued is stale.
        if event.query == event.bar.query_value:
            self._query_set(event.query)

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        self.table.focus()

    @on(FleetTable.HeaderClicked)
    def _header_clicked(self, event: FleetTable.HeaderClicked) -> None:
        self.sort_by(event.column)

    @on(FleetTable.Highlighted)
    def _highlighted(self, event: FleetTable.Highlighted) -> None:
        if self.details_visible:
            self.details.show(event.instance)

    @on(FleetTable.Selected)
    def _selected(self, event: FleetTable.Selected) -> None:
        self.request_connect(event.instance)

    # ----------------------------------------------------------------- actions

    def request_connect(self, inst: Instance) -> None:
        """Ask the app for a shell on ``inst``."""
        self.post_message(ConnectRequested(inst))

    def request_forward(self, inst: Instance) -> None:
        """Ask the app for a port forward from ``inst``."""
        self.post_message(ForwardRequested(inst))

    def action_focus_filter(self) -> None:
        """``/``: type a filter."""
        self.filter_bar.focus_input()

    def action_clear_filter(self) -> None:
        """Esc on the table: drop the filter."""
        if self.filter_bar.text:
            self.filter_bar.set_text("")

    def action_connect(self) -> None:
        """``c``: connect to the highlighted instance."""
        inst = self.table.highlighted
        if inst is None:
            self.notify("No instance selected.", severity="warning")
        else:
            self.request_connect(inst)

    def action_forward(self) -> None:
        """``f``: forward a port from the highlighted instance."""
        inst = self.table.highlighted
        if inst is None:
            self.notify("No instance selected.", severity="warning")
        else:
            self.request_forward(inst)

    def action_sort_next(self) -> None:
        """``s``: sort by the next column."""
        nxt = COLUMN_KEYS[(COLUMN_KEYS.index(self.sort_column) + 1) % len(COLUMN_KEYS)]
        self.sort_by(nxt, reverse=False)

    def action_sort_reverse(self) -> None:
        """``S``: reverse the sort order."""
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def action_toggle_details(self) -> None:
        """``d``: show or hide the details panel."""
        visible = not self.details_visible
        if visible:
            self.details.show(self.table.highlighted)
        self.details.display = visible
        self.set_class(visible, "-details")

    def action_refresh(self) -> None:
        """``r``: list the fleet again now."""
        self.load_fleet()
