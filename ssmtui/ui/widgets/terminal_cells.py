"""Terminal rows as rich segments: pyte's cell attributes as styles, runs of equal style.

Split from :mod:`ssmtui.ui.widgets.terminal` (the widget): :func:`row_segments` draws one row of
the emulated screen (a pyte row, a plain-text scrollback row, or nothing), with a selection and
the cursor when asked; without them it walks only the cells written (pyte keeps a row as a
sparse column map), which is what a repaint of flowing output mostly draws.
"""

from __future__ import annotations

from functools import lru_cache

from pyte.screens import Char, StaticDefaultDict
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

from ssmtui.ui.widgets.terminal_vt import Row

__all__ = ["DEFAULT_ATTRS", "Attrs", "cell_style", "row_segments"]

_ANSI = {
    "black": 0,
    "red": 1,
    "green": 2,
    "brown": 3,
    "yellow": 3,
    "blue": 4,
    "magenta": 5,
    "cyan": 6,
    "white": 7,
}
#: (fg, bg, bold, italics, underscore, strikethrough, reverse, blink)
Attrs = tuple[str, str, bool, bool, bool, bool, bool, bool]
DEFAULT_ATTRS: Attrs = ("default", "default", False, False, False, False, False, False)


@lru_cache(maxsize=1024)
def _color(name: str) -> Color | None:
    """pyte's colour names (``red``, ``brightred``, ``ff8700``) as rich colours."""
    if name == "default":
        return None
    if name in _ANSI:
        return Color.from_ansi(_ANSI[name])
    if name.startswith(("bright", "bfight")) and name[6:] in _ANSI:
        return Color.from_ansi(_ANSI[name[6:]] + 8)
    if len(name) == 6:
        try:
            return Color.from_rgb(int(name[0:2], 16), int(name[2:4], 16), int(name[4:6], 16))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=4096)
def cell_style(attrs: Attrs) -> Style:
    """The rich style of a cell's pyte attributes."""
    fg, bg, bold, italics, underscore, strike, reverse, blink = attrs
    return Style(
        color=_color(fg),
        bgcolor=_color(bg),
        bold=bold or None,
        italic=italics or None,
        underline=underscore or None,
        strike=strike or None,
        reverse=reverse or None,
        blink=blink or None,
    )


def _flip(attrs: Attrs) -> Attrs:
    fg, bg, bold, italics, underscore, strike, reverse, blink = attrs
    return (fg, bg, bold, italics, underscore, strike, not reverse, blink)


def _underlined(attrs: Attrs) -> Attrs:
    fg, bg, bold, italics, _, strike, reverse, blink = attrs
    return (fg, bg, bold, italics, True, strike, reverse, blink)


def row_segments(
    row: Row | None,
    columns: int,
    *,
    marked: tuple[int, int] | None = None,
    cursor: int = -1,
    cursor_solid: bool = True,
) -> list[Segment]:
    """Segments for one row: runs of equal style; ``marked`` columns [a, b) shown reversed."""
    if marked is None and cursor < 0:
        if row is None:
            return [Segment(" " * columns)]
        if isinstance(row, str):
            return [Segment(row[:columns].ljust(columns), cell_style(DEFAULT_ATTRS))]
        return _written_runs(row, columns)
    segments: list[Segment] = []
    run: list[str] = []
    run_attrs: Attrs | None = None
    lo, hi = marked if marked is not None else (-1, -1)
    for x in range(columns):
        if row is None or isinstance(row, str):
            data = row[x] if row is not None and x < len(row) else " "
            attrs = DEFAULT_ATTRS
        else:
            char = row[x]
            data = char.data
            if not data:  # the second cell of a wide character
                continue
            attrs = char[1:]
        if lo <= x < hi:
            attrs = _flip(attrs)
        if x == cursor:
            attrs = _flip(attrs) if cursor_solid else _underlined(attrs)
        if attrs != run_attrs:
            if run:
                segments.append(Segment("".join(run), cell_style(run_attrs)))
            run = []
            run_attrs = attrs
        run.append(data)
    if run:
        segments.append(Segment("".join(run), cell_style(run_attrs)))
    return segments


def _written_runs(row: StaticDefaultDict[int, Char], columns: int) -> list[Segment]:
    """:func:`row_segments` of a pyte row without selection or cursor: walks only the cells
    written (pyte keeps a row as a sparse column map), blanks in between."""
    default = row.default
    blank_attrs: Attrs = default[1:]
    segments: list[Segment] = []
    run: list[str] = []
    run_attrs: Attrs | None = None
    x = 0
    for col in sorted(col for col in row if col < columns):
        if col > x:  # blank cells before this one
            if blank_attrs != run_attrs:
                if run:
                    segments.append(Segment("".join(run), cell_style(run_attrs)))
                run = []
                run_attrs = blank_attrs
            run.append(default.data * (col - x))
        char = row[col]
        x = col + 1
        data = char.data
        if not data:  # the second cell of a wide character
            continue
        attrs: Attrs = char[1:]
        if attrs != run_attrs:
            if run:
                segments.append(Segment("".join(run), cell_style(run_attrs)))
            run = []
            run_attrs = attrs
        run.append(data)
    if x < columns:
        if blank_attrs != run_attrs:
            if run:
                segments.append(Segment("".join(run), cell_style(run_attrs)))
            run = []
            run_attrs = blank_attrs
        run.append(default.data * (columns - x))
    if run:
        segments.append(Segment("".join(run), cell_style(run_attrs)))
    return segments
