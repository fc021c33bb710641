"""The ``?`` screen: the keys of the screen underneath (after keymap remapping), filter syntax."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen", "KeyRow"]

#: (keys as shown, what they do, binding id or "")
KeyRow = tuple[str, str, str]

FILTER_HELP = """\
Filter syntax (terms are AND-ed; quote values with spaces):
  web              fuzzy text over name, id, IPs, platform, profile/region and tags
  tag:Role=web     tag equals value        tag:Team   has the tag
  ping:online      online | lost | inactive | notregistered (prefixes work: ping:on)
  profile:prod     region:eu-west-1     platform:windows     name:…  id:…  ip:10.0.
Remap keys in the config file:  [keymap]  fleet.refresh = "ctrl+r"
"""

#: Keys of the fleet table itself (not in the screen's bindings).
TABLE_KEYS: tuple[KeyRow, ...] = (
    ("↑ ↓  j k", "move the cursor", ""),
    ("PgUp PgDn  Home End  g G", "page / jump", ""),
    ("Enter, double click", "connect to the highlighted instance", ""),
    ("click a header", "sort by that column (again: reverse)", ""),
)

#: Keys inside a shell tab (every other key goes to the remote shell).
TERMINAL_KEYS: tuple[KeyRow, ...] = (
    ("shift+PgUp shift+PgDn, wheel", "scroll back in a shell tab", ""),
    ("drag (shift+drag)", "select and copy to the clipboard", ""),
    ("ctrl+]  or  Enter ~ .", "leave full terminal mode", ""),
)


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: Iterable[KeyRow]) -> None:
        super().__init__(id="help")
        self.keys = list(keys) + list(TABLE_KEYS) + list(TERMINAL_KEYS)

    def compose(self) -> ComposeResult:
        """Title, key table, filter syntax."""
        table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        table.add_column(Text("Binding id (for [keymap])"), style="dim")
        for keys, description, binding_id in self.keys:
            table.add_row(keys, description, binding_id)
        with VerticalScroll():
            yield Static("ssmtui — keys", id="help-title")
            yield Static(table, id="help-keys")
            yield Static(Text(FILTER_HELP), id="help-filter")

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help."""
        self.dismiss(result)
