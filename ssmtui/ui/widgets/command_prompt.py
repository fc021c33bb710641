"""A one-line prompt for a command to run on an instance."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

__all__ = ["CommandPrompt"]


class CommandPrompt(ModalScreen[str | None]):
    """Ask for a command line; Enter runs it, Esc cancels."""

    DEFAULT_CSS = """
    CommandPrompt { align: center middle; }
    CommandPrompt > Vertical {
        width: 80; height: auto; padding: 1 2; border: round $accent; background: $surface;
    }
    CommandPrompt .error { color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="command.cancel"),
    ]

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Run a command on {self.where} (in a terminal tab)")
            yield Input(placeholder="e.g. sudo systemctl status nginx", id="command")
            yield Label("", classes="error", id="command-error")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.query_one("#command-error", Label).update("type a command, or Esc to cancel")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
