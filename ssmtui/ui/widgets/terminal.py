"""A terminal widget: a :class:`~ssmtui.ui.widgets.terminal_vt.VirtualTerminal` on screen.

The widget knows nothing about sessions. Output comes in through :meth:`Terminal.feed` (which
only queues it). A little output while the terminal is idle (a keystroke's echo, a prompt) is
parsed and drawn at once; while output keeps flowing, a ticker parses the queue under a time
budget and repaints at most every :data:`REFRESH` seconds, so a flood never freezes the app.
The ticker is a plain loop timer that keeps a steady pace from the start of the previous tick
(a late tick runs as soon as it can, leaving the loop a little room first) rather than an
interval timer on a fixed grid, where one late tick waits for the next grid point and the frame
gap doubles. Input goes out as
:class:`Terminal.Input` messages (keys translated to xterm bytes, pastes, mouse reports when the
remote program asked for them); size changes as :class:`Terminal.Resized`.

Also: 16/256/truecolour, bold/italic/underline/reverse/strike, the cursor, the alternate screen,
scrollback (shift+PgUp/PgDn or the wheel), and mouse selection that copies to the clipboard.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ssmtui.ui.widgets.terminal_cells import cell_style, row_segments
from ssmtui.ui.widgets.terminal_keys import encode_mouse, encode_paste, key_to_bytes
from ssmtui.ui.widgets.terminal_vt import MOUSE_ANY, MOUSE_BUTTON, MOUSE_SGR, Row, VirtualTerminal

__all__ = ["REFRESH", "Terminal", "cell_style", "row_segments"]

#: Seconds between repaints while output is arriving (~40 fps).
REFRESH = 0.025
#: A late tick still leaves the loop this long (seconds) for everything else before it runs.
MIN_IDLE = 0.004
#: Seconds of parsing per repaint tick (the rest of the tick is the app's).
BUDGET = 0.008
#: Up to this many changed rows are repainted alone (else the whole widget).
_PARTIAL_ROWS = 4
#: While the ticker is idle, output up to this many bytes per :data:`REFRESH` window is parsed
#: and drawn at once (echo, prompts); more than that and the time-boxed ticker takes over.
IMMEDIATE_BYTES = 4096


class Terminal(Widget, can_focus=True):
    """A terminal screen: feed it output, read :class:`Input` messages for what was typed."""

    DEFAULT_CSS = """
    Terminal {
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $foreground;
        overflow: hidden;
    }
    """

    ALLOW_SELECT: ClassVar[bool] = False

    @dataclass
    class Input(Message):
        """Bytes for the remote program (typed, pasted, mouse reports, terminal replies)."""

        terminal: Terminal
        data: bytes

        @property
        def control(self) -> Terminal:
            """The terminal that produced the input."""
            return self.terminal

    @dataclass
    class Resized(Message):
        """The terminal's size in cells changed."""

        terminal: Terminal
        columns: int
        lines: int

        @property
        def control(self) -> Terminal:
            """The terminal that was resized."""
            return self.terminal

    def __init__(
        self,
        *,
        scrollback: int = 5000,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.vt = VirtualTerminal(80, 24, scrollback=scrollback, respond=self._reply)
        #: Mounted (output is drawn), until unmounted.
        self._started = False
        #: The next tick, while the ticker runs (output is flowing).
        self._tick_handle: asyncio.TimerHandle | None = None
        #: Loop time the last tick started.
        self._last_tick = 0.0
        #: Whether the ticker is running (output is flowing).
        self._ticking = False
        #: The widget's base style, looked up once per render pass (not once per row).
        self._pass_style: Style | None = None
        self._in_pass = False
        #: An immediate parse is scheduled (``loop.call_soon``).
        self._soon = False
        #: Start (clock) of the current immediate-parse window and the bytes parsed in it.
        self._burst_start = 0.0
        self._burst_bytes = 0
        self._strips: dict[int, Strip] = {}
        #: The cursor (x, y, hidden) as last refreshed (its row is repainted when it moves).
        self._drawn_cursor: tuple[int, int, bool] | None = None
        #: None: follow the output; else the absolute row shown at the top (scrolled back).
        self._view_top: int | None = None
        self._anchor: tuple[int, int] | None = None
        self._head: tuple[int, int] | None = None
        self._selecting = False
        self._mouse_down_button = 0
        self.copied: str = ""
        #: Largest single parse tick (seconds), for tests and the curious.
        self.longest_tick = 0.0

    # ------------------------------------------------------------------ output

    def feed(self, data: bytes) -> None:
        """Queue remote output (parsed soon, or on the next tick; never blocks)."""
        if not data:
            return
        self.vt.feed(data)
        if not self._started or self._ticking or self._soon:
            return  # on_mount starts the ticker for output queued before it
        if len(self.vt.pending) < IMMEDIATE_BYTES:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._soon = True
            loop.call_soon(self._parse_soon)
        else:
            self._start_ticker()

    def _start_ticker(self) -> None:
        """Tick (parse and repaint) at a steady pace until the queue is empty."""
        if self._ticking:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ticking = True
        now = loop.time()
        when = max(now, self._last_tick + REFRESH)
        self._tick_handle = loop.call_at(when, self._scheduled_tick)

    def _stop_ticker(self) -> None:
        self._ticking = False
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    def _scheduled_tick(self) -> None:
        self._tick_handle = None
        if not self._ticking:
            return
        if not self._started:
            self._ticking = False
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._last_tick = started
        if not self.vt.pending:
            # A whole tick without output: stop (the next bit of output is drawn at once).
            # Staying on for that one tick keeps a flood that the ticker drains now and then
            # on the ticker's pace, instead of a repaint per chunk in between.
            self._ticking = False
            return
        try:
            self._parse_and_take()
        except BaseException:
            self._ticking = False  # the next output starts the ticker again
            raise
        # The next tick REFRESH after this one started; if this one ran late or long, as soon
        # as the loop has had a moment for the rest of the app (network, input, the frame).
        when = max(started + REFRESH, loop.time() + MIN_IDLE)
        self._tick_handle = loop.call_at(when, self._scheduled_tick)

    def _parse_soon(self) -> None:
        """Parse a little idle-time output now, so an echo is drawn on the next frame."""
        self._soon = False
        if self._ticking or not self._started:
            return
        pending = len(self.vt.pending)
        if not pending:
            return
        now = self.vt.clock()
        if now - self._burst_start > REFRESH:
            self._burst_start, self._burst_bytes = now, 0
        self._burst_bytes += pending
        if pending >= IMMEDIATE_BYTES or self._burst_bytes > IMMEDIATE_BYTES:
            self._start_ticker()  # output keeps flowing: repaint at the ticker's pace
            return
        self._tick()

    def on_mount(self) -> None:
        """Draw output queued before the widget was mounted."""
        self._started = True
        if self.vt.pending:
            self._start_ticker()

    def on_unmount(self) -> None:
        """Stop the ticker."""
        self._started = False
        self._stop_ticker()

    def _tick(self) -> None:
        """Parse for one budget and repaint; keep ticking while output is queued."""
        if self._parse_and_take():
            self._start_ticker()

    def _parse_and_take(self) -> bool:
        started = self.vt.clock()
        try:
            more = self.vt.process(BUDGET)
        except Exception as err:  # an emulator bug must not take the app down: drop the output
            self.log.error("terminal emulator failed", err)
            self.vt.pending.clear()
            more = False
        self.longest_tick = max(self.longest_tick, self.vt.clock() - started)
        self._take_dirty()
        return more

    def flush(self) -> None:
        """Parse everything queued now (tests, screenshots)."""
        self.vt.process(None)
        self._take_dirty()

    def _take_dirty(self) -> None:
        scr = self.vt.screen
        dirty = scr.dirty
        cursor = (scr.cursor.x, scr.cursor.y, scr.cursor.hidden)
        moved = cursor != self._drawn_cursor
        if dirty or moved:
            rows = set(dirty)
            for y in rows:
                self._strips.pop(y, None)
            dirty.clear()
            if self._view_top is None and self._anchor is None and len(rows) <= _PARTIAL_ROWS:
                # A few rows (an echo): repaint just them and the cursor's old and new row.
                rows.add(cursor[1])
                if self._drawn_cursor is not None:
                    rows.add(self._drawn_cursor[1])
                width = self.size.width
                self.refresh(*(Region(0, y, width, 1) for y in sorted(rows)))
            else:
                self.refresh()
            self._drawn_cursor = cursor
        elif self._view_top is not None:
            self.refresh()

    def _reply(self, data: bytes) -> None:
        self.post_message(self.Input(self, data))

    # ------------------------------------------------------------------ geometry

    def on_resize(self, event: events.Resize) -> None:
        """Resize the emulator to the widget; tell the session."""
        columns, lines = max(1, self.size.width), max(1, self.size.height)
        if (columns, lines) == (self.vt.columns, self.vt.lines):
            return
        self.resize_emulator(columns, lines)
        self.post_message(self.Resized(self, columns, lines))

    def resize_emulator(self, columns: int, lines: int) -> None:
        """Give the emulated screen this size (the widget's own size, or another terminal's)."""
        self.vt.resize(columns, lines)
        self._strips.clear()
        self.vt.screen.dirty.clear()
        self.refresh()

    def fit(self) -> tuple[int, int]:
        """Back to the widget's size; returns ``(columns, lines)``."""
        columns, lines = max(1, self.size.width), max(1, self.size.height)
        self.resize_emulator(columns, lines)
        return columns, lines

    @property
    def terminal_size(self) -> Size:
        """Columns × lines of the emulated screen."""
        return Size(self.vt.columns, self.vt.lines)

    def _row(self, absolute: int) -> Row | None:
        scr = self.vt.screen
        if absolute >= scr.scrolled:
            return scr.buffer.get(absolute - scr.scrolled)
        index = absolute - (scr.scrolled - len(scr.scrollback))
        return scr.scrollback[index] if index >= 0 else None

    @property
    def scrollback_offset(self) -> int:
        """Rows scrolled back from the live screen (0: following the output)."""
        if self._view_top is None:
            return 0
        return max(0, self.vt.screen.scrolled - self._view_top)

    def scroll_lines(self, delta: int) -> None:
        """Scroll the view ``delta`` rows (negative: back into the scrollback)."""
        scr = self.vt.screen
        oldest = scr.scrolled - len(scr.scrollback)
        top = scr.scrolled if self._view_top is None else self._view_top
        top = min(max(oldest, top + delta), scr.scrolled)
        self._view_top = None if top >= scr.scrolled else top
        self.refresh()

    def scroll_to_live(self) -> None:
        """Follow the output again."""
        if self._view_top is not None:
            self._view_top = None
            self.refresh()

    # ------------------------------------------------------------------ rendering

    def render_lines(self, crop: Region) -> list[Strip]:
        """Render a pass of rows, with the widget's style looked up once for the pass."""
        self._in_pass = True
        try:
            return super().render_lines(crop)
        finally:
            self._in_pass = False
            self._pass_style = None

    def render_line(self, y: int) -> Strip:
        """One row: the live screen, or scrollback when scrolled back; selection and cursor."""
        scr = self.vt.screen
        columns = scr.columns
        top = scr.scrolled if self._view_top is None else self._view_top
        absolute = top + y
        marked = self._marked(absolute, columns)
        live = self._view_top is None
        cursor = -1
        if live and y == scr.cursor.y and not scr.cursor.hidden:
            cursor = min(scr.cursor.x, columns - 1)
        if live and marked is None and cursor < 0:
            strip = self._strips.get(y)
            if strip is None:
                strip = self._strip(row_segments(scr.buffer.get(y), columns))
                self._strips[y] = strip
            return strip
        row = self._row(absolute) if y < scr.lines or not live else None
        segments = row_segments(
            row, columns, marked=marked, cursor=cursor, cursor_solid=self.has_focus
        )
        return self._strip(segments)

    def _strip(self, segments: list[Segment]) -> Strip:
        width = self.size.width
        style = self._pass_style
        if style is None:
            style = self.rich_style
            if self._in_pass:
                self._pass_style = style
        strip = Strip(segments).apply_style(style)
        if strip.cell_length < width:
            strip = strip.extend_cell_length(width, style)
        elif strip.cell_length > width:
            strip = strip.crop(0, width)
        return strip

    def on_focus(self) -> None:
        """Solid cursor."""
        self._strips.pop(self.vt.screen.cursor.y, None)
        self.refresh()

    def on_blur(self) -> None:
        """Hollow cursor."""
        self.refresh()

    # ------------------------------------------------------------------ keyboard & paste

    def on_key(self, event: events.Key) -> None:
        """Translate the key and send it (scrollback keys stay here)."""
        if event.key in ("shift+pageup", "shift+pagedown"):
            page = max(1, self.vt.lines - 1)
            self.scroll_lines(-page if event.key == "shift+pageup" else page)
            event.stop()
            event.prevent_default()
            return
        data = key_to_bytes(event.key, event.character, app_cursor=self.vt.screen.app_cursor_keys)
        if data is None:
            return
        event.stop()
        event.prevent_default()
        self.clear_selection()
        self.scroll_to_live()
        self.post_message(self.Input(self, data))

    def on_paste(self, event: events.Paste) -> None:
        """Send pasted text (bracketed when the remote asked for it)."""
        event.stop()
        event.prevent_default()
        data = encode_paste(event.text, bracketed=self.vt.screen.bracketed_paste)
        if data:
            self.scroll_to_live()
            self.post_message(self.Input(self, data))

    # ------------------------------------------------------------------ mouse

    def _cell(self, event: events.MouseEvent) -> tuple[int, int] | None:
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        x = min(max(offset.x, 0), self.vt.columns - 1)
        y = min(max(offset.y, 0), self.vt.lines - 1)
        return x, y

    def _report_mouse(self, event: events.MouseEvent) -> bool:
        """Whether the remote wants the mouse (shift forces local selection)."""
        return self.vt.screen.mouse_reporting and not event.shift and self._view_top is None

    def _send_mouse(self, button: int, cell: tuple[int, int], *, press: bool, motion: bool) -> None:
        sgr = MOUSE_SGR in self.vt.screen.mode
        data = encode_mouse(button, cell[0], cell[1], press=press, sgr=sgr, motion=motion)
        if data:
            self.post_message(self.Input(self, data))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        """Start a selection (or report the press to the remote)."""
        cell = self._cell(event)
        if cell is None:
            return
        self.focus()
        if self._report_mouse(event):
            self._mouse_down_button = max(0, event.button - 1)
            self._send_mouse(self._mouse_down_button, cell, press=True, motion=False)
            return
        if event.button != 1:
            return
        top = self._top()
        self._anchor = self._head = (top + cell[1], cell[0])
        self._selecting = True
        self.capture_mouse()
        self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Extend the selection while the button is down."""
        cell = self._cell(event)
        if cell is None:
            return
        if self._report_mouse(event):
            mode = self.vt.screen.mode
            if MOUSE_ANY in mode or (MOUSE_BUTTON in mode and event.button):
                self._send_mouse(self._mouse_down_button, cell, press=True, motion=True)
            return
        if not self._selecting:
            return
        if cell[1] == 0 and event.y < 0:
            self.scroll_lines(-1)
        self._head = (self._top() + cell[1], cell[0])
        self.refresh()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        """Finish the selection and copy it to the clipboard."""
        cell = self._cell(event)
        if self._report_mouse(event) and cell is not None and not self._selecting:
            self._send_mouse(self._mouse_down_button, cell, press=False, motion=False)
            return
        if not self._selecting:
            return
        self._selecting = False
        self.release_mouse()
        if cell is not None:
            self._head = (self._top() + cell[1], cell[0])
        text = self.selected_text()
        if text:
            self.copied = text
            self.app.copy_to_clipboard(text)
            self.notify(f"Copied {len(text)} characters", timeout=2)
        else:
            self.clear_selection()
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """Wheel up: scrollback (or arrows / wheel reports in full-screen programs)."""
        self._wheel(event, -3)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        """Wheel down."""
        self._wheel(event, 3)

    def _wheel(self, event: events.MouseEvent, delta: int) -> None:
        event.stop()
        cell = self._cell(event) or (0, 0)
        scr = self.vt.screen
        if self._report_mouse(event):
            self._send_mouse(64 if delta < 0 else 65, cell, press=True, motion=False)
        elif scr.alternate:
            key = "up" if delta < 0 else "down"
            data = key_to_bytes(key, None, app_cursor=scr.app_cursor_keys) or b""
            self.post_message(self.Input(self, data * abs(delta)))
        else:
            self.scroll_lines(delta)

    # ------------------------------------------------------------------ selection

    def _top(self) -> int:
        scr = self.vt.screen
        return scr.scrolled if self._view_top is None else self._view_top

    def _selection(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if self._anchor is None or self._head is None or self._anchor == self._head:
            return None
        start, end = sorted((self._anchor, self._head))
        return start, end

    def _marked(self, absolute: int, columns: int) -> tuple[int, int] | None:
        selection = self._selection()
        if selection is None:
            return None
        (r0, c0), (r1, c1) = selection
        if not r0 <= absolute <= r1:
            return None
        lo = c0 if absolute == r0 else 0
        hi = c1 + 1 if absolute == r1 else columns
        return lo, hi

    def selected_text(self) -> str:
        """The selected text (rows joined by newlines, trailing blanks cut)."""
        selection = self._selection()
        if selection is None:
            return ""
        (r0, c0), (r1, c1) = selection
        columns = self.vt.columns
        lines = []
        for absolute in range(r0, r1 + 1):
            row = self._row(absolute)
            if row is None:
                text = ""
            elif isinstance(row, str):
                text = row
            else:
                text = "".join(row[x].data for x in range(columns))
            lo = c0 if absolute == r0 else 0
            hi = c1 + 1 if absolute == r1 else columns
            lines.append(text[lo:hi].rstrip())
        return "\n".join(lines)

    def select(self, start: tuple[int, int], end: tuple[int, int]) -> None:
        """Select from ``(x, y)`` to ``(x, y)`` on the visible rows (inclusive)."""
        top = self._top()
        self._anchor = (top + start[1], start[0])
        self._head = (top + end[1], end[0])
        self.refresh()

    def clear_selection(self) -> None:
        """Drop the selection."""
        if self._anchor is not None:
            self._anchor = self._head = None
            self.refresh()

    # ------------------------------------------------------------------ reading

    def display_lines(self) -> list[str]:
        """The emulated screen as text rows (right-stripped; output still queued not included)."""
        return self.vt.display()
