"""The filter bar: one input line plus a one-line message for a bad token.

Typing posts :class:`FilterBar.Changed` with the parsed :class:`~ssmtui.ui.fleet_model.FleetQuery`
(never raises on bad input: the message line says what is wrong). Enter keeps the filter and
Esc clears it; both post :class:`FilterBar.Done` so the screen can move focus back to the table.

The query is also the reactive :attr:`FilterBar.query_value`, set synchronously inside the
keystroke's own handler: a screen that watches it (``self.watch(bar, "query_value", ...)``)
re-filters before Textual composes the next frame, so a keystroke costs one repaint, not an
echo frame then a second one a refresh period later. The bar never asks for a screen-wide
layout while typing (its input line and message line have fixed sizes) unless the message
line appears or disappears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Region
from textual.message import Message
from textual.reactive import var
from textual.widgets import Input, Label

from ssmtui.ui.fleet_model import FleetQuery

__all__ = ["FilterBar", "FilterInput"]

PLACEHOLDER = (
    "filter: text (fuzzy)  tag:Role=web  ping:online  profile:prod  region:eu-west-1  "
    "platform:linux  — all AND-ed"
)


class FilterInput(Input):
    """An :class:`~textual.widgets.Input` whose value changes never ask for a layout.

    Textual's input grows its virtual width with its text and asks for a layout of the whole
    screen on every keystroke; this one is styled to a fixed size (one line, ``1fr`` wide), so
    that layout can change nothing and is skipped (the repaint still happens).
    """

    _value_changing = False

    def _watch_value(self, value: str) -> None:
        self._value_changing = True
        try:
            super()._watch_value(value)
        finally:
            self._value_changing = False

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        """Refresh; a layout asked for by a value change is dropped (the size is fixed)."""
        if self._value_changing:
            layout = False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


class FilterBar(Vertical):
    """Filter input with an error line underneath."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_and_leave", "Clear filter", show=False),
        Binding("down", "leave", "To the table", show=False),
    ]

    DEFAULT_CSS = """
    FilterBar { height: auto; }
    FilterBar > Horizontal { height: 1; }
    FilterBar .filter-prompt { width: 3; color: $accent; text-style: bold; padding: 0 1; }
    FilterBar Input, FilterBar Input:focus {
        border: none; height: 1; width: 1fr; padding: 0 1; background: $surface;
    }
    FilterBar Input:focus { background: $boost; }
    FilterBar .filter-error {
        color: $error; height: 1; padding: 0 1; display: none;
        text-wrap: nowrap; text-overflow: ellipsis; width: 1fr;
    }
    FilterBar.-invalid .filter-error { display: block; }
    """

    @dataclass
    class Changed(Message):
        """The query changed (``query.error`` set when some token was rejected)."""

        bar: FilterBar
        query: FleetQuery

        @property
        def control(self) -> FilterBar:
            """The filter bar."""
            return self.bar

    @dataclass
    class Done(Message):
        """The user left the filter bar (Enter, Esc or Down)."""

        bar: FilterBar

        @property
        def control(self) -> FilterBar:
            """The filter bar."""
            return self.bar

    #: The parsed filter; set (watchers called) synchronously as the text changes.
    query_value: var[FleetQuery] = var(FleetQuery, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._error_text = ""

    def compose(self) -> ComposeResult:
        """Prompt, input and the error line."""
        with Horizontal():
            yield Label("/", classes="filter-prompt")
            yield FilterInput(placeholder=PLACEHOLDER, id="filter-input", select_on_focus=False)
        yield Label("", classes="filter-error", id="filter-error")

    @property
    def input(self) -> Input:
        """The text input."""
        return self.query_one("#filter-input", Input)

    @property
    def error(self) -> str | None:
        """The message shown for a bad token, if any."""
        return self.query_value.error

    @property
    def text(self) -> str:
        """The filter text."""
        return self.input.value

    def set_text(self, text: str) -> None:
        """Replace the filter text (posts :class:`Changed` at once)."""
        self.input.value = text
        self.input.cursor_position = len(text)
        self._apply(text)

    def focus_input(self) -> None:
        """Focus the input, cursor at the end."""
        self.input.focus()
        self.input.cursor_position = len(self.input.value)

    def on_mount(self) -> None:
        """Follow the input's value as it is set (not a message later)."""
        self.watch(self.input, "value", self._apply, init=False)

    def _apply(self, text: str) -> None:
        query = FleetQuery.parse(text)
        if query == self.query_value:
            return
        message = f"✕ {query.error} — the other terms still apply" if query.error else ""
        if message != self._error_text:
            self._error_text = message
            # One line, full width: the text never changes the size (showing or hiding the
            # line does, through the class below).
            self.query_one("#filter-error", Label).update(message, layout=False)
        self.set_class(bool(query.error), "-invalid")
        self.query_value = query
        self.post_message(self.Changed(self, query))

    @on(Input.Changed, "#filter-input")
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply(event.value)  # already applied by the watcher, unless it was not mounted

    @on(Input.Submitted, "#filter-input")
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Done(self))

    def action_clear_and_leave(self) -> None:
        """Esc: clear the filter and go back to the table."""
        if self.input.value:
            self.set_text("")
        self.post_message(self.Done(self))

    def action_leave(self) -> None:
        """Down: keep the filter and go back to the table."""
        self.post_message(self.Done(self))
