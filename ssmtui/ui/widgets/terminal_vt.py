"""The terminal emulator behind a session tab: pyte, plus what pyte leaves out, plus a flood path.

:class:`VTScreen` is a ``pyte.Screen`` with an alternate screen (``?47`` / ``?1047`` /
``?1049``), a scrollback of rows pushed off the top, answers to status queries, resize that keeps
the cursor line in view, and the modes a terminal widget needs to know about (application cursor
keys, mouse reporting, bracketed paste).

:class:`VirtualTerminal` feeds it incrementally: :meth:`~VirtualTerminal.feed` only queues bytes,
:meth:`~VirtualTerminal.process` parses for at most a time budget, so a caller on the event loop
never blocks. pyte parses well under 1 MB/s, so a flood (``yes``, ``cat big.log``) would fall
ever further behind; when the backlog is large and its head is plain lines (text, CR, LF, tab,
backspace and colour changes only), the head is fast-forwarded: its last screenful is parsed for
real, the lines before it go to the scrollback as plain text, and the colour state is replayed.
The screen ends up exactly as if every byte had been parsed. No textual in here.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

import pyte
from pyte import modes as mo
from pyte.screens import Char, StaticDefaultDict

__all__ = ["Row", "SafeByteStream", "VTScreen", "VirtualTerminal", "compact_row", "row_text"]

#: A row of the screen (pyte's column -> Char map) or, for fast-forwarded lines, plain text.
Row = StaticDefaultDict[int, Char] | str

ALT_SCREEN_MODES = frozenset({47, 1047, 1049})
DECCKM = 1 << 5  # application cursor keys
MOUSE_X10 = 9 << 5
MOUSE_NORMAL = 1000 << 5
MOUSE_BUTTON = 1002 << 5
MOUSE_ANY = 1003 << 5
MOUSE_SGR = 1006 << 5
BRACKETED_PASTE = 2004 << 5
MOUSE_MODES = frozenset({MOUSE_X10, MOUSE_NORMAL, MOUSE_BUTTON, MOUSE_ANY})

#: Backlog (bytes) from which a plain-line head is fast-forwarded instead of parsed.
SKIP_AT = 64 * 1024
#: The same while behind: the last budgeted :meth:`VirtualTerminal.process` left output queued
#: (a flood of short lines is ~20k lines per 64 KiB, far more than pyte parses in a budget).
SKIP_BEHIND = 8 * 1024
#: Look at most this far into the backlog per fast-forward (bounds one regex scan).
SKIP_WINDOW = 1024 * 1024
#: Bytes parsed between clock checks (pyte: roughly 1-5 ms per KiB of ordinary output, up to
#: 10 ms for a KiB of short lines: each scrolls the whole screen), so a budget overshoots little.
CHUNK = 512

#: Bytes that may make output unsafe to fast-forward (0 in this table): controls but BS, HT, LF,
#: CR; ESC (fine when it starts a colour change); 0xC2 (fine unless it encodes a C1 control).
_SAFE_TABLE = bytes(
    0 if (b < 0x20 and b not in (0x08, 0x09, 0x0A, 0x0D)) or b in (0x7F, 0xC2) else 1
    for b in range(256)
)
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")
_SGR_RESET = re.compile(rb"\x1b\[0*m|\x1b\[0*;")
#: At most this many colour changes are replayed after a fast-forward (newest kept).
_MAX_SGR_REPLAY = 2000


def _first_unsafe(data: bytearray, end: int, limit: int = 4096) -> int:
    """Where the plain-lines prefix of ``data[:end]`` ends (``end`` if it is all plain).

    Looks at no more than ``limit`` escapes (colour changes), so a colourful flood costs a
    bounded time per call: the prefix then ends after the last one checked.
    """
    marks = data[:end].translate(_SAFE_TABLE)
    pos = 0
    for _ in range(limit):
        i = marks.find(0, pos)
        if i < 0:
            return end
        byte = data[i]
        if byte == 0x1B:
            sgr = _SGR.match(data, i)
            if sgr is None:
                return i
            pos = sgr.end()
        elif byte == 0xC2 and not (i + 1 < len(data) and 0x80 <= data[i + 1] <= 0x9F):
            pos = i + 1
        else:
            return i
    return min(pos, end)


_PLAIN_ATTRS = ("default", "default", False, False, False, False, False, False)


def compact_row(row: Row) -> Row:
    """A row as kept in the scrollback: plain text when every cell is (one character per cell,
    default colours and attributes), else the row itself. A full scrollback of pyte rows is
    hundreds of thousands of objects that each full garbage collection walks."""
    if isinstance(row, str):
        return row
    if not row:
        return ""
    default = row.default
    if default.data != " " or default[1:] != _PLAIN_ATTRS:
        return row
    cells = [" "] * (max(row) + 1)
    for x, char in row.items():
        data = char.data
        if len(data) != 1 or char[1:] != _PLAIN_ATTRS:
            return row
        cells[x] = data
    return "".join(cells)


def row_text(row: Row | None, columns: int) -> str:
    """The characters of a row (wide characters once), right-stripped."""
    if row is None:
        return ""
    if isinstance(row, str):
        return row[:columns].rstrip()
    # Only the cells written (a pyte row is a sparse column map), blanks elsewhere.
    cells = [row.default.data] * columns
    for x, char in row.items():
        if x < columns:
            cells[x] = char.data
    return "".join(cells).rstrip()


def _plain_rows(line: str, columns: int) -> list[str]:
    """A fast-forwarded line as it would have been drawn: CR overwrites, tabs, wrapping."""
    if "\r" in line:
        cells: list[str] = []
        for part in line.split("\r"):
            cells[: len(part)] = part
        line = "".join(cells)
    if "\b" in line:
        line = re.sub(".\b", "", line).replace("\b", "")
    line = line.expandtabs(8)
    if len(line) <= columns:
        return [line]
    return [line[i : i + columns] for i in range(0, len(line), columns)]


def _plain_block(text: str, columns: int) -> list[str]:
    """Rows of CR LF separated fast-forwarded lines (the common plain case without a loop)."""
    lines = text.split("\r\n")
    if (
        "\r" not in text.replace("\r\n", "")
        and "\b" not in text
        and "\t" not in text
        and max(map(len, lines)) <= columns
    ):
        return lines
    return [row for line in lines for row in _plain_rows(line, columns)]


def _lines_back(data: bytearray, end: int, count: int) -> int:
    """Start of the ``count``-th CR LF separated line ending at ``end`` (0 if fewer lines)."""
    if count <= 0:
        return end + 2
    span = 16 * 1024
    while True:
        begin = max(0, end - span)
        found = data.count(b"\r\n", begin, end)
        if found >= count or begin == 0:
            break
        span *= 4
    if found < count:
        return 0
    tail = bytes(data[begin:end]).split(b"\r\n")[-count:]
    return end - sum(map(len, tail)) - 2 * (count - 1)


_REPLAYED_MODES = frozenset(
    {DECCKM, MOUSE_NORMAL, MOUSE_BUTTON, MOUSE_ANY, MOUSE_SGR, BRACKETED_PASTE}
)
_SGR_COLOURS = {
    "black": 0,
    "red": 1,
    "green": 2,
    "brown": 3,
    "blue": 4,
    "magenta": 5,
    "cyan": 6,
    "white": 7,
}


def _sgr_colour(name: str, base: int) -> str:
    if name == "default":
        return ""
    if name in _SGR_COLOURS:
        return f";{base + _SGR_COLOURS[name]}"
    if name.startswith(("bright", "bfight")) and name[6:] in _SGR_COLOURS:
        return f";{base + 60 + _SGR_COLOURS[name[6:]]}"
    if len(name) == 6:
        try:
            r, g, b = int(name[0:2], 16), int(name[2:4], 16), int(name[4:6], 16)
        except ValueError:
            return ""
        return f";{base + 8};2;{r};{g};{b}"
    return ""


def _sgr(attrs: tuple[Any, ...]) -> str:
    """SGR for pyte's attributes (fg, bg, bold, italics, underscore, strike, reverse, blink)."""
    fg, bg, bold, italics, underscore, strike, reverse, blink = attrs
    flags = [(bold, "1"), (italics, "3"), (underscore, "4"), (blink, "5"), (reverse, "7")]
    codes = "".join(f";{code}" for on, code in [*flags, (strike, "9")] if on)
    return f"\x1b[0{codes}{_sgr_colour(fg, 30)}{_sgr_colour(bg, 40)}m"


class VTScreen(pyte.Screen):
    """A pyte screen with an alternate screen, scrollback and terminal replies."""

    def __init__(
        self,
        columns: int,
        lines: int,
        *,
        scrollback: int = 5000,
        respond: Callable[[bytes], None] | None = None,
    ) -> None:
        self.scrollback: deque[Row] = deque(maxlen=scrollback)
        #: Rows ever pushed to the scrollback (absolute row numbers: screen row y is scrolled + y).
        self.scrolled = 0
        self.alternate = False
        self._main_buffer: Any = None
        self.respond = respond
        self.bells = 0
        super().__init__(columns, lines)

    # ------------------------------------------------------------------ modes

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        """pyte's modes, plus entering the alternate screen."""
        super().set_mode(*modes, **kwargs)
        if kwargs.get("private") and ALT_SCREEN_MODES.intersection(modes):
            self._enter_alternate(save_cursor=1049 in modes)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        """pyte's modes, plus leaving the alternate screen."""
        super().reset_mode(*modes, **kwargs)
        if kwargs.get("private") and ALT_SCREEN_MODES.intersection(modes):
            self._leave_alternate(restore_cursor=1049 in modes)

    def _new_buffer(self) -> Any:
        return defaultdict(self._blank_row)

    def _blank_row(self) -> StaticDefaultDict[int, Char]:
        # Not ``StaticDefaultDict[int, Char](…)`` as pyte writes it: calling the subscripted
        # alias gives every row an ``__orig_class__`` (an alias object and an instance dict),
        # three objects per row for the garbage collector to walk instead of one.
        row: StaticDefaultDict[int, Char] = StaticDefaultDict(self.default_char)
        return row

    def _enter_alternate(self, *, save_cursor: bool) -> None:
        if self.alternate:
            return
        if save_cursor:
            self.save_cursor()
        self._main_buffer = self.buffer
        self.buffer = self._new_buffer()
        self.alternate = True
        self.dirty.update(range(self.lines))

    def _leave_alternate(self, *, restore_cursor: bool) -> None:
        if not self.alternate:
            return
        main = self._main_buffer
        self._main_buffer = None
        self.alternate = False
        extra = max((y for y in main if main[y]), default=-1) - (self.lines - 1)
        if extra > 0:  # the screen shrank while the alternate screen was up
            self.push_rows(main.pop(y, StaticDefaultDict(self.default_char)) for y in range(extra))
            main = self._shifted(main, extra)
        for y in [y for y in main if y >= self.lines]:
            del main[y]
        self.buffer = main
        if restore_cursor:
            self.restore_cursor()
        self.dirty.update(range(self.lines))

    def _shifted(self, buffer: Any, by: int) -> Any:
        shifted = self._new_buffer()
        for y, row in buffer.items():
            if y >= by:
                shifted[y - by] = row
        return shifted

    @property
    def app_cursor_keys(self) -> bool:
        """DECCKM: arrows send ``ESC O A`` instead of ``ESC [ A``."""
        return DECCKM in self.mode

    @property
    def mouse_reporting(self) -> bool:
        """Whether the application asked for mouse events."""
        return not MOUSE_MODES.isdisjoint(self.mode)

    @property
    def bracketed_paste(self) -> bool:
        """Whether pastes are wrapped in ``ESC [200~`` … ``ESC [201~``."""
        return BRACKETED_PASTE in self.mode

    # ------------------------------------------------------------------ scrolling

    def index(self) -> None:
        """pyte's index; a row scrolled off the top of the main screen goes to the scrollback."""
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and not self.alternate:
            self.scrollback.append(compact_row(self.buffer[0]))
            self.scrolled += 1
        super().index()

    def push_rows(self, rows: Iterable[Row]) -> None:
        """Append rows to the scrollback (plain rows as text, see :func:`compact_row`)."""
        compact = [compact_row(row) for row in rows]
        self.scrollback.extend(compact)
        self.scrolled += len(compact)

    def push_text(self, rows: list[str]) -> None:
        """Append rows of plain text to the scrollback (fast-forwarded lines)."""
        self.scrollback.extend(rows)
        self.scrolled += len(rows)

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """``ESC [3J`` also clears the scrollback."""
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:
            self.scrollback.clear()

    def reset(self) -> None:
        """RIS: also back to the main screen."""
        if getattr(self, "alternate", False):
            self.alternate = False
            self._main_buffer = None
        super().reset()
        self.buffer = self._new_buffer()

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Resize keeping the cursor line visible: rows go off the top only if they must."""
        lines = lines or self.lines
        columns = columns or self.columns
        if lines == self.lines and columns == self.columns:
            return
        if lines < self.lines:
            drop = max(0, self.cursor.y - (lines - 1))
            if drop:
                if not self.alternate:
                    self.push_rows(self.buffer[y] for y in range(drop))
                self.buffer = self._shifted(self.buffer, drop)
                self.cursor.y -= drop
            for y in [y for y in self.buffer if y >= lines]:
                del self.buffer[y]
        if columns < self.columns:
            for row in self.buffer.values():
                for x in [x for x in row if x >= columns]:
                    del row[x]
        elif columns > self.columns:
            self.tabstops.update(range(((self.columns - 1) // 8 + 1) * 8, columns, 8))
        self.lines, self.columns = lines, columns
        self.margins = None
        self.cursor.x = min(self.cursor.x, columns - 1)
        self.cursor.y = min(self.cursor.y, lines - 1)
        self.dirty.update(range(lines))

    # ------------------------------------------------------------------ replies

    def write_process_input(self, data: str) -> None:
        """Answers to DSR / DA queries go back to the remote program."""
        if self.respond is not None:
            self.respond(data.encode())

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        """SGR; ``CSI > … m`` (xterm's modifyOtherKeys, sent by vim) is not SGR: ignored."""
        if not private:
            super().select_graphic_rendition(*attrs)

    def bell(self, *args: Any) -> None:
        """Count bells (the widget may flash)."""
        self.bells += 1

    # ------------------------------------------------------------------ reading

    def line_text(self, y: int) -> str:
        """Row ``y`` of the screen as text (right-stripped)."""
        return row_text(self.buffer.get(y), self.columns)

    def lines_text(self) -> list[str]:
        """Every screen row as text (right-stripped)."""
        return [self.line_text(y) for y in range(self.lines)]

    def scrollback_text(self) -> list[str]:
        """Every scrollback row as text, oldest first."""
        return [row_text(row, self.columns) for row in self.scrollback]


class SafeByteStream(pyte.ByteStream):
    """pyte's byte stream, but a sequence pyte chokes on is dropped, not raised.

    pyte resets its parser when a handler raises (``CSI > 4;2 m`` from vim reaches
    ``select_graphic_rendition(private=True)``, for one); the rest of the chunk still has to be
    drawn, and one odd byte from a remote program must never take the app down.
    """

    errors = 0

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            return super()._send_to_parser(data)
        except Exception:  # the parser was reset; carry on with the next character
            self.errors += 1
            return bool(self._taking_plain_text)


class VirtualTerminal:
    """A :class:`VTScreen` fed incrementally under a time budget, with the flood fast path."""

    def __init__(
        self,
        columns: int = 80,
        lines: int = 24,
        *,
        scrollback: int = 5000,
        respond: Callable[[bytes], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.screen = VTScreen(columns, lines, scrollback=scrollback, respond=respond)
        self.stream = SafeByteStream(self.screen)
        self.pending = bytearray()
        self.clock = clock
        #: Counters: bytes parsed by pyte, bytes fast-forwarded, fast-forwards done.
        self.parsed = 0
        self.skipped = 0
        self.skips = 0
        #: The last budgeted :meth:`process` ran out of time with output still queued.
        self.behind = False

    @property
    def columns(self) -> int:
        """Screen width in cells."""
        return int(self.screen.columns)

    @property
    def lines(self) -> int:
        """Screen height in rows."""
        return int(self.screen.lines)

    def feed(self, data: bytes) -> None:
        """Queue output; :meth:`process` parses it."""
        self.pending += data

    def resize(self, columns: int, lines: int) -> None:
        """Resize the screen (parse what is queued at the new size)."""
        self.screen.resize(lines=max(1, lines), columns=max(1, columns))

    def process(self, budget: float | None = None) -> bool:
        """Parse queued output for at most ``budget`` seconds (None: all of it).

        Returns whether output is still queued.
        """
        deadline = None if budget is None else self.clock() + budget
        skip_at = SKIP_BEHIND if self.behind and budget is not None else SKIP_AT
        pending = self.pending
        while pending:
            if len(pending) >= skip_at and self._fast_forward():
                if deadline is not None and self.clock() >= deadline:
                    break
                continue
            end = min(len(pending), CHUNK)
            if len(pending) >= skip_at and self.screen.cursor.x:
                newline = pending.find(b"\n", 0, 64 * 1024)
                if newline >= 0:  # finish the current line so the next round can skip
                    end = newline + 1
            if end < len(pending) and pending[end - 1] == 0x0D:
                end += 1  # never split CR LF
            chunk = bytes(pending[:end])
            del pending[:end]
            self.stream.feed(chunk)
            self.parsed += len(chunk)
            if deadline is not None and self.clock() >= deadline:
                break
        self.behind = budget is not None and bool(pending)
        return bool(pending)

    def _fast_forward(self) -> bool:
        """Skip the plain-line head of a large backlog; False if it cannot be skipped."""
        scr = self.screen
        if scr.alternate or scr.margins is not None or mo.IRM in scr.mode or scr.cursor.x:
            return False
        pending = self.pending
        window = min(len(pending), SKIP_WINDOW)
        safe_end = _first_unsafe(pending, window)
        cut = pending.rfind(b"\r\n", 0, safe_end)
        if cut < 0:
            return False
        cut += 2
        keep = scr.lines - 1  # lines parsed for real: they make up the final screen
        start = cut
        for _ in range(keep):
            start = pending.rfind(b"\r\n", 0, start - 2)
            if start < 0:
                return False
            start += 2
        if start <= 0:
            return False
        # Rows above the cursor scroll away; then the skipped lines, as plain text.
        maxlen = scr.scrollback.maxlen or 0
        first = _lines_back(pending, start - 2, maxlen)
        scr.push_rows(scr.buffer[y] for y in range(scr.cursor.y))
        if first < start:
            text = _SGR.sub(b"", bytes(pending[first : start - 2])).decode("utf-8", "replace")
            scr.push_text(_plain_block(text, scr.columns))
        replay = self._colour_state(start)
        tail = bytes(pending[start:cut])
        skipped = start
        del pending[:cut]
        scr.buffer.clear()
        scr.cursor.x = scr.cursor.y = 0
        scr.dirty.update(range(scr.lines))
        if replay:
            self.stream.feed(replay)
        self.stream.feed(tail)
        self.parsed += len(tail)
        self.skipped += skipped
        self.skips += 1
        return True

    def _colour_state(self, end: int) -> bytes:
        """The colour changes in ``pending[:end]`` since its last reset (what to replay)."""
        pending = self.pending
        last = None
        for match in _SGR_RESET.finditer(pending, max(0, end - 64 * 1024), end):
            last = match
        begin = last.start() if last is not None else max(0, end - 64 * 1024)
        sgrs = _SGR.findall(pending, begin, end)
        return b"".join(sgrs[-_MAX_SGR_REPLAY:])

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> bytes:
        """Bytes that draw the current screen on a real terminal (modes and cursor included)."""
        scr = self.screen
        out = ["\x1b[0m\x1b[H\x1b[2J"]
        for y in range(scr.lines):
            row = scr.buffer.get(y)
            if not row:
                continue
            cells = [(row[x].data, row[x][1:]) for x in range(scr.columns)]
            while cells and cells[-1] == (" ", _PLAIN_ATTRS):
                cells.pop()
            out.append(f"\x1b[{y + 1};1H")
            last: tuple[Any, ...] | None = None
            for data, attrs in cells:
                if attrs != last:
                    out.append(_sgr(attrs))
                    last = attrs
                out.append(data)
            out.append("\x1b[0m")
        out.extend(f"\x1b[?{mode >> 5}h" for mode in sorted(_REPLAYED_MODES & scr.mode))
        out.append(_sgr(scr.cursor.attrs[1:]))
        out.append(f"\x1b[{scr.cursor.y + 1};{scr.cursor.x + 1}H")
        out.append("\x1b[?25l" if scr.cursor.hidden else "\x1b[?25h")
        return "".join(out).encode()

    def display(self) -> list[str]:
        """The screen as text, one string per row (right-stripped)."""
        return self.screen.lines_text()

    def text(self) -> str:
        """Scrollback and screen as one string (rows joined by newlines, trailing blanks cut)."""
        rows = self.screen.scrollback_text() + self.display()
        return "\n".join(rows).rstrip("\n")
