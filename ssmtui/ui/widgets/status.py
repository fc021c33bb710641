"""The fleet screen's status line and its per-scope error lines.

:class:`FleetStatus` shows loading progress (with a spinner) or the fleet summary on the left and
sort / refresh information on the right. :class:`ScopeErrors` lists, one line each, the
profile/region scopes that failed, with what to do about it; it hides itself when there are none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Label, Static

from ssmtui.models import FleetScope
from ssmtui.ui.fleet_model import describe_error

__all__ = ["FleetStatus", "ScopeErrors"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class FleetStatus(Horizontal):
    """One line: progress or summary (left), sort and refresh time (right)."""

    # The left label has a fixed size (1 line, 1fr), so its text is updated without a layout:
    # a filter keystroke changes the summary and must not re-arrange the whole screen.
    DEFAULT_CSS = """
    FleetStatus { height: 1; background: $panel; padding: 0 1; }
    FleetStatus > #status-left { width: 1fr; height: 1; text-wrap: nowrap; }
    FleetStatus > #status-right { width: auto; height: 1; color: $text-muted; }
    FleetStatus.-loading > #status-left { color: $accent; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._frame = 0
        self._timer: Timer | None = None
        self._loading_text = ""
        self.summary = ""
        self._shown: tuple[str, str] = ("", "")  # (left, right) as last drawn

    def compose(self) -> ComposeResult:
        """Left and right labels."""
        yield Label("", id="status-left")
        yield Label("", id="status-right")

    @property
    def busy(self) -> bool:
        """Whether a load is in progress."""
        return self.has_class("-loading")

    @property
    def left_text(self) -> str:
        """What the left side currently says (for tests and screen readers)."""
        return self._loading_text if self.busy else self.summary

    def show_progress(
        self, pending: Sequence[FleetScope], done: int, total: int, rows: int
    ) -> None:
        """Show ``loading dev/us-east-1, prod/eu-west-1… (2/4 scopes, 14 instances)``."""
        names = ", ".join(str(s) for s in pending[:3]) + (" …" if len(pending) > 3 else "")
        self._loading_text = f"loading {names}… ({done}/{total} scopes, {rows} instances)"
        self.add_class("-loading")
        if self._timer is None:
            self._timer = self.set_interval(0.1, self._spin)
        self._show_left()

    def set_summary(self, text: str) -> None:
        """Stop the spinner and show ``text``."""
        self.summary = text
        self.remove_class("-loading")
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._show_left()

    def set_right(self, text: str) -> None:
        """The right-hand side (sort order, last refresh)."""
        left, right = self._shown
        if text == right:
            return
        self._shown = (left, text)
        # Sized to its text: a layout only when the width changes.
        self.query_one("#status-right", Label).update(
            text, layout=cell_len(text) != cell_len(right)
        )

    def _spin(self) -> None:
        self._frame = (self._frame + 1) % len(_SPINNER)
        self._show_left()

    def _show_left(self) -> None:
        text = f"{_SPINNER[self._frame]} {self._loading_text}" if self.busy else self.summary
        left, right = self._shown
        if text == left:
            return
        self._shown = (text, right)
        self.query_one("#status-left", Label).update(Text(text), layout=False)


class ScopeErrors(Static):
    """``✕ prod/eu-west-1: the AWS credentials have expired … — run: aws sso login …`` lines."""

    DEFAULT_CSS = """
    ScopeErrors {
        height: auto;
        max-height: 6;
        color: $error;
        background: $error 10%;
        padding: 0 1;
        display: none;
    }
    ScopeErrors.-shown { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.lines: list[str] = []

    def set_errors(
        self, errors: Mapping[FleetScope, BaseException], stale: Sequence[FleetScope] = ()
    ) -> None:
        """Show one line per failed scope (``stale`` scopes still show their last rows)."""
        self.lines = []
        for scope in sorted(errors):
            line = describe_error(scope, errors[scope])
            if scope in stale:
                line += " (showing the last rows listed)"
            self.lines.append(line)
        text = Text()
        for n, line in enumerate(self.lines):
            if n:
                text.append("\n")
            text.append("✕ ", style="bold")
            text.append(line)
        self.update(text)
        self.set_class(bool(self.lines), "-shown")
