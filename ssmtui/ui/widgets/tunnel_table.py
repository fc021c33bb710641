"""The tunnels table (one row per tunnel, updated in place) and the details panel under it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from ssmtui.ui.tunnel_book import TunnelEntry, human_bytes

__all__ = ["COLUMNS", "TunnelDetails", "TunnelTable", "spark"]

#: (key, header)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("state", "State"),
    ("mode", "Mode"),
    ("local", "Local address"),
    ("remote", "Target → remote"),
    ("conns", "Conns"),
    ("in", "In"),
    ("out", "Out"),
    ("rate", "Throughput"),
    ("reconnects", "↻"),
    ("error", "Last error"),
)
STATE_STYLE = {
    "up": "bold green",
    "starting": "yellow",
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "stopped": "dim",
    "failed": "bold red",
}
_BARS = "▁▂▃▄▅▆▇█"


def spark(values: Iterable[float], width: int = 12) -> str:
    """A text sparkline of the last ``width`` values (scaled to their maximum)."""
    tail = list(values)[-width:]
    top = max(tail, default=0.0)
    if top <= 0:
        return _BARS[0] * len(tail)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in tail)


def cells(entry: TunnelEntry) -> dict[str, Text | str]:
    """The row of ``entry``, by column key."""
    stats = entry.stats
    mode = {"mux": "smux", "basic": "basic"}.get(stats.mode, stats.mode or "–")
    error = entry.last_error
    return {
        "name": entry.name,
        "state": Text(entry.state, style=STATE_STYLE.get(entry.state, "")),
        "mode": mode,
        "local": entry.local_address,
        "remote": entry.remote,
        "conns": f"{stats.connections_active}/{stats.connections_total}",
        "in": human_bytes(stats.bytes_in),
        "out": human_bytes(stats.bytes_out),
        "rate": f"{spark(entry.rates)} {human_bytes(entry.rate)}/s",
        "reconnects": str(stats.reconnects),
        "error": Text(error[:60] + ("…" if len(error) > 60 else ""), style="red") if error else "",
    }


class TunnelTable(DataTable[Text | str]):
    """Tunnels, one row each (row key = tunnel key)."""

    DEFAULT_CSS = """
    TunnelTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        """The columns."""
        for key, header in COLUMNS:
            self.add_column(header, key=key)

    @property
    def highlighted_key(self) -> str | None:
        """The tunnel key under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return str(key) if key is not None else None

    def sync(self, entries: Iterable[TunnelEntry]) -> None:
        """Add, update and drop rows to match ``entries``."""
        wanted = {e.key: e for e in entries}
        for row_key in list(self.rows):
            if row_key.value not in wanted:
                self.remove_row(row_key)
        for key, entry in wanted.items():
            values = cells(entry)
            try:
                self.get_row_index(key)
            except RowDoesNotExist:
                self.add_row(*(values[k] for k, _ in COLUMNS), key=key)
                continue
            for column, _ in COLUMNS:
                self.update_cell(key, column, values[column], update_width=column != "rate")

    def select_key(self, key: str) -> None:
        """Put the cursor on tunnel ``key``."""
        try:
            self.move_cursor(row=self.get_row_index(key))
        except RowDoesNotExist:
            return


class TunnelDetails(Vertical):
    """Everything about the highlighted tunnel, with its throughput sparkline."""

    DEFAULT_CSS = """
    TunnelDetails {
        height: auto;
        max-height: 12;
        padding: 0 1;
        border-top: solid $accent 40%;
    }
    TunnelDetails Sparkline {
        height: 3;
        width: 72;
    }
    TunnelDetails #tunnel-spark-label {
        color: $text-muted;
        margin-top: 1;
    }
    """

    HELP: ClassVar[str] = (
        "s stop/start · r restart · x remove · p presets · f on a fleet row adds a tunnel"
    )

    def compose(self) -> ComposeResult:
        """Text lines and the sparkline."""
        yield Static(self.HELP, id="tunnel-info")
        yield Static("throughput, one bar per second (last 60 s)", id="tunnel-spark-label")
        yield Sparkline([0.0, 0.0], id="tunnel-spark", summary_function=max)

    def show(self, entry: TunnelEntry | None) -> None:
        """Describe ``entry`` (None: the help line)."""
        info = self.query_one("#tunnel-info", Static)
        sparkline = self.query_one(Sparkline)
        if entry is None:
            info.update(self.HELP)
            sparkline.data = [0.0, 0.0]
            return
        stats = entry.stats
        text = Text()
        text.append(entry.name, style="bold")
        text.append(f"  {entry.state}", style=STATE_STYLE.get(entry.state, ""))
        text.append(f"  {entry.local_address} → {entry.remote}\n")
        inst = entry.instance
        text.append(f"{inst.instance_id} · {inst.profile}/{inst.region}", style="dim")
        if stats.session_id:
            text.append(f" · session {stats.session_id}", style="dim")
        text.append(
            f"\nconnections {stats.connections_active} active / {stats.connections_total} total"
            f" · in {human_bytes(stats.bytes_in)} · out {human_bytes(stats.bytes_out)}"
            f" · {human_bytes(entry.rate)}/s · reconnects {stats.reconnects}"
        )
        if entry.last_error:
            text.append(f"\nlast error: {entry.last_error}", style="red")
        info.update(text)
        sparkline.data = list(entry.rates) or [0.0, 0.0]
