"""A virtualised instance table (Line API): renders only the visible rows, so 10,000 rows filter
and sort without re-adding anything.

The table holds a list of :class:`~ssmtui.models.Instance` (already filtered and sorted by the
screen) and a row cursor that follows an instance across :meth:`FleetTable.set_rows` calls: a
background refresh keeps both the highlighted instance and its place on screen. It posts intent
messages only (:class:`FleetTable.Highlighted`, :class:`FleetTable.Selected`,
:class:`FleetTable.HeaderClicked`); the screen decides what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ssmtui.models import Instance
from ssmtui.ui.fleet_model import COLUMNS, PING_GLYPHS, Column, RowKey, row_key

__all__ = ["FleetTable"]

_GAP = 2  # spaces between columns
_LEFT = 1  # left padding
#: Rendered rows kept (about ten screens; cleared when full: each is a Strip with its caches).
_ROW_CACHE = 512


@dataclass(frozen=True)
class _Looks:
    """The styles one render pass uses, and the geometry its strips were cut for."""

    base: Style
    header: Style
    sorted: Style
    dim: Style
    #: The cursor's component style alone (added on top of a row's own style).
    cursor: Style
    empty: Style
    scroll_x: int
    width: int


def _fit(text: str, width: int) -> str:
    """``text`` cut (with "…") or padded to exactly ``width`` cells."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    return set_cell_size(text, width)


class FleetTable(ScrollView, can_focus=True):
    """The fleet as a table with a sticky header and a row cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("enter", "select", "Connect", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "fleet-table--header",
        "fleet-table--sorted",
        "fleet-table--cursor",
        "fleet-table--dim",
        "fleet-table--empty",
    }

    DEFAULT_CSS = """
    FleetTable {
        background: $surface;
        scrollbar-gutter: stable;
    }
    FleetTable > .fleet-table--header { text-style: bold; background: $panel; color: $text; }
    FleetTable > .fleet-table--sorted { text-style: bold underline; color: $accent; }
    FleetTable > .fleet-table--cursor { background: $surface-lighten-2; }
    FleetTable:focus > .fleet-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    FleetTable > .fleet-table--dim { color: $text-muted; }
    FleetTable > .fleet-table--empty { color: $text-muted; text-style: italic; }
    """

    @dataclass
    class Highlighted(Message):
        """The cursor moved onto an instance (None: the table is empty)."""

        table: FleetTable
        instance: Instance | None

        @property
        def control(self) -> FleetTable:
            """The table."""
            return self.table

    @dataclass
    class Selected(Message):
        """Enter or a double click on a row: the user wants that instance."""

        table: FleetTable
        instance: Instance

        @property
        def control(self) -> FleetTable:
            """The table."""
            return self.table

    @dataclass
    class HeaderClicked(Message):
        """A column header was clicked (the screen sorts)."""

        table: FleetTable
        column: str

        @property
        def control(self) -> FleetTable:
            """The table."""
            return self.table

    def __init__(
        self,
        *,
        columns: Sequence[Column] = COLUMNS,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns: tuple[Column, ...] = tuple(columns)
        self._widths: dict[str, int] = {c.key: max(len(c.label), c.min_width) for c in columns}
        self._rows: list[Instance] = []
        self._positions: dict[RowKey, int] | None = None
        self._cursor = 0
        self._last_highlight: RowKey | bool | None = False  # False: never posted
        self._sort: tuple[str, bool] | None = None
        self.empty_message = "No instances"
        #: Styles of the current render pass (computed once per pass, not once per line).
        self._looks: _Looks | None = None
        self._in_pass = False
        #: The looks the cached rows were drawn with.
        self._cached_looks: _Looks | None = None
        #: Finished strips by ``(id(instance), is_cursor)``, with the instance they show; only
        #: valid for :attr:`_looks` and the current column widths.
        self._row_cache: dict[tuple[int, bool], tuple[Instance, Strip]] = {}

    # ----------------------------------------------------------------- data

    @property
    def rows(self) -> Sequence[Instance]:
        """The rows shown, in order."""
        return self._rows

    @property
    def row_count(self) -> int:
        """How many rows are shown."""
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        """Index of the highlighted row (0 when empty)."""
        return self._cursor

    @property
    def highlighted(self) -> Instance | None:
        """The instance under the cursor."""
        return self._rows[self._cursor] if self._rows else None

    def position_of(self, key: RowKey) -> int | None:
        """The row index of the instance with ``key``, if shown."""
        if self._positions is None:
            self._positions = {row_key(inst): n for n, inst in enumerate(self._rows)}
        return self._positions.get(key)

    def _find(self, key: RowKey, inst: Instance | None = None) -> int | None:
        """:meth:`position_of` without building the whole key map (one lookup per update);
        ``inst``: the instance last shown with that key, found by identity first (a filter
        change shows the same objects again)."""
        if self._positions is not None:
            return self._positions.get(key)
        if inst is not None:
            try:
                return list(map(id, self._rows)).index(id(inst))
            except ValueError:
                pass
        instance_id = key[2]
        ids = [inst.instance_id for inst in self._rows]
        start = 0
        while True:
            try:
                n = ids.index(instance_id, start)
            except ValueError:
                return None
            if row_key(self._rows[n]) == key:
                return n
            start = n + 1

    def set_widths(self, widths: Mapping[str, int]) -> None:
        """Column widths (cells), by column key."""
        if any(self._widths.get(k) != w for k, w in widths.items()):
            self._widths.update(widths)
            self._row_cache.clear()
            self._update_virtual_size()
        self.refresh()

    def set_sort(self, column: str, reverse: bool) -> None:
        """Mark ``column`` as the sort column in the header (the data is sorted by the caller)."""
        self._sort = (column, reverse)
        self.refresh(self.header_region)

    @property
    def header_region(self) -> Region:
        """The header line's region (for partial refreshes)."""
        return Region(0, 0, self.size.width, 1)

    def set_rows(
        self, rows: Sequence[Instance], *, follow: RowKey | None = None, keep: bool = True
    ) -> None:
        """Show ``rows``, keeping the cursor on ``follow`` (default: the highlighted instance).

        When the followed instance is still shown it keeps its place on screen; otherwise (or
        with ``keep=False``) the cursor stays at the same index (clamped).
        """
        old_key = follow if follow is not None else self._key_at(self._cursor)
        old_inst = self.highlighted if follow is None else None
        if not keep:
            old_key = None
        offset = self._cursor - round(self.scroll_y)
        self._rows = list(rows)
        self._positions = None
        new = self._find(old_key, old_inst) if old_key is not None else None
        self._cursor = max(0, min(new if new is not None else self._cursor, len(self._rows) - 1))
        self._update_virtual_size()
        if new is not None:
            self.scroll_to(y=max(0, self._cursor - offset), animate=False, immediate=True)
        self._scroll_cursor_into_view()
        self.refresh()
        self._post_highlight()

    def move_cursor(self, row: int) -> None:
        """Put the cursor on row ``row`` (clamped) and scroll it into view."""
        if not self._rows:
            return
        row = max(0, min(row, len(self._rows) - 1))
        if row == self._cursor:
            return
        old = self._cursor
        self._cursor = row
        self._scroll_cursor_into_view()
        self._refresh_row(old)
        self._refresh_row(row)
        self._post_highlight()

    def move_cursor_to(self, key: RowKey) -> bool:
        """Put the cursor on the instance with ``key``; False if it is not shown."""
        pos = self.position_of(key)
        if pos is None:
            return False
        self.move_cursor(pos)
        return True

    def _key_at(self, row: int) -> RowKey | None:
        return row_key(self._rows[row]) if 0 <= row < len(self._rows) else None

    def _post_highlight(self) -> None:
        key = self._key_at(self._cursor)
        if key != self._last_highlight:
            self._last_highlight = key
            self.post_message(self.Highlighted(self, self.highlighted))

    # ----------------------------------------------------------------- geometry

    @property
    def _table_width(self) -> int:
        return _LEFT + sum(self._widths[c.key] + _GAP for c in self._columns)

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _update_virtual_size(self) -> None:
        size = Size(self._table_width, len(self._rows) + 1)
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size
            return
        # The table's own size is fixed by its container, so a new row count needs no layout of
        # the screen (``virtual_size = …`` would ask for one on every filter keystroke): update
        # the scroll bars and clamp the scroll position instead. Showing or hiding a scroll bar
        # still lays out (that reactive asks for it).
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_y)
        height = self._body_height
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True)

    def _refresh_row(self, row: int) -> None:
        y = row - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def column_at(self, x: int) -> str | None:
        """The key of the column under content x (after horizontal scrolling)."""
        edge = _LEFT
        for col in self._columns:
            width = self._widths[col.key] + _GAP
            if edge <= x < edge + width:
                return col.key
            edge += width
        return None

    # ----------------------------------------------------------------- rendering

    def render_lines(self, crop: Region) -> list[Strip]:
        """Render a pass of lines, with the styles looked up once for the whole pass."""
        self._in_pass = True
        try:
            return super().render_lines(crop)
        finally:
            self._in_pass = False
            self._looks = None

    def _current_looks(self) -> _Looks:
        looks = self._looks
        if looks is None:
            base = self.rich_style
            component = self.get_component_rich_style
            header = base + component("fleet-table--header")
            looks = _Looks(
                base=base,
                header=header,
                sorted=header + component("fleet-table--sorted"),
                dim=base + component("fleet-table--dim"),
                cursor=component("fleet-table--cursor"),
                empty=base + component("fleet-table--empty"),
                scroll_x=round(self.scroll_x),
                width=max(self.size.width, 1),
            )
            if looks != self._cached_looks:
                self._row_cache.clear()
                self._cached_looks = looks
            if self._in_pass:
                self._looks = looks
        return looks

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the viewport: the header, a row, or the empty-state message."""
        looks = self._current_looks()
        width = looks.width
        scroll_y = round(self.scroll_y)
        if y == 0:
            strip, style = self._header_strip(looks)
        else:
            row = scroll_y + y - 1
            if row < len(self._rows):
                return self._cached_row(row, looks)
            if not self._rows and y == 2:
                text = _fit(" " * _LEFT + self.empty_message, width)
                return Strip([Segment(text, looks.empty)], width)
            return Strip.blank(width, looks.base)
        end = looks.scroll_x + width
        return strip.extend_cell_length(end, style).crop(looks.scroll_x, end)

    def _cached_row(self, row: int, looks: _Looks) -> Strip:
        """Row ``row`` cut to the viewport, from the cache when this instance was drawn in the
        same state before (typing a filter mostly re-shows rows already drawn)."""
        inst = self._rows[row]
        key = (id(inst), row == self._cursor)
        hit = self._row_cache.get(key)
        if hit is not None and hit[0] is inst:
            return hit[1]
        strip, style = self._row_strip(row, looks)
        end = looks.scroll_x + looks.width
        strip = strip.extend_cell_length(end, style).crop(looks.scroll_x, end)
        if len(self._row_cache) >= _ROW_CACHE:
            self._row_cache.clear()
        self._row_cache[key] = (inst, strip)
        return strip

    def _header_strip(self, looks: _Looks) -> tuple[Strip, Style]:
        header = looks.header
        segments = [Segment(" " * _LEFT, header)]
        for col in self._columns:
            width = self._widths[col.key]
            label = col.label
            style = header
            if self._sort is not None and self._sort[0] == col.key:
                label = f"{label}{'▼' if self._sort[1] else '▲'}"
                style = looks.sorted
            segments.append(Segment(_fit(label, width), style))
            segments.append(Segment(" " * _GAP, header))
        return Strip(segments), header

    def _row_strip(self, row: int, looks: _Looks) -> tuple[Strip, Style]:
        inst = self._rows[row]
        style = looks.base
        if inst.ping_status in ("Inactive", "NotRegistered"):
            style = looks.dim
        if row == self._cursor:
            style = style + looks.cursor
        segments = [Segment(" " * _LEFT, style)]
        for col in self._columns:
            width = self._widths[col.key]
            text = _fit(col.value(inst), width)
            cell_style = style
            if col.key == "status":
                colour = PING_GLYPHS.get(inst.ping_status, ("", "", ""))[1]
                if colour:
                    cell_style = style + Style(color=colour, bold=True)
            segments.append(Segment(text, cell_style))
            segments.append(Segment(" " * _GAP, style))
        return Strip(segments), style

    # ----------------------------------------------------------------- input

    def on_resize(self, _event: events.Resize) -> None:
        """Keep the cursor visible when the table shrinks."""
        self._scroll_cursor_into_view()

    def on_click(self, event: events.Click) -> None:
        """Header click -> sort; row click -> move the cursor; double click -> select."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        self.focus()
        if offset.y == 0:
            key = self.column_at(offset.x + round(self.scroll_x))
            if key is not None:
                self.post_message(self.HeaderClicked(self, key))
            return
        row = round(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._rows):
            self.move_cursor(row)
            if event.chain >= 2:
                self.post_message(self.Selected(self, self._rows[row]))

    def action_cursor_up(self) -> None:
        """Move up one row."""
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        """Move down one row."""
        self.move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        """Move up one page."""
        self.move_cursor(self._cursor - self._body_height)

    def action_page_down(self) -> None:
        """Move down one page."""
        self.move_cursor(self._cursor + self._body_height)

    def action_first(self) -> None:
        """Go to the first row."""
        self.move_cursor(0)

    def action_last(self) -> None:
        """Go to the last row."""
        self.move_cursor(len(self._rows) - 1)

    def action_select(self) -> None:
        """Select the highlighted instance."""
        inst = self.highlighted
        if inst is not None:
            self.post_message(self.Selected(self, inst))
