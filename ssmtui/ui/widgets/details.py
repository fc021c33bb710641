"""The details panel: every field of the highlighted instance and all of its tags."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ssmtui.models import Instance
from ssmtui.ui.fleet_model import PING_GLYPHS

__all__ = ["InstanceDetails", "render_details"]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else ""


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_details(inst: Instance) -> RenderableType:
    """A two-column field table followed by a tag table."""
    glyph, colour, words = PING_GLYPHS.get(inst.ping_status, ("?", "", inst.ping_status))
    ping = Text.assemble((glyph, f"bold {colour}"), " ", inst.ping_status)
    if inst.ping_status != "Online":
        ping.append(f"  ({words})", style="dim")
    fields: list[tuple[str, str | Text]] = [
        ("Name", inst.display_name),
        ("Instance", inst.instance_id),
        ("Ping", ping),
        ("Last ping", _when(inst.last_ping)),
        ("Connectable", _yes(inst.is_online)),
        ("EC2 state", inst.state or ""),
        ("Registered", _yes(inst.registered)),
        ("Resource", inst.resource_type),
        ("Platform", inst.platform_type),
        ("OS", f"{inst.platform_name} {inst.platform_version}".strip()),
        ("Agent", inst.agent_version),
        ("Port mux", _yes(inst.supports_mux) if inst.agent_version else ""),
        ("Remote host", _yes(inst.supports_remote_host) if inst.agent_version else ""),
        ("Private IP", inst.private_ip or ""),
        ("Public IP", inst.public_ip or ""),
        ("Computer", inst.computer_name),
        ("Type", inst.instance_type or ""),
        ("VPC", inst.vpc_id or ""),
        ("Subnet", inst.subnet_id or ""),
        ("IAM", inst.instance_profile or ""),
        ("Profile", inst.profile),
        ("Region", inst.region),
        ("Account", inst.account_id or ""),
    ]
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column("field", style="bold", no_wrap=True, min_width=11)
    table.add_column("value", overflow="fold", ratio=1)
    for label, value in fields:
        table.add_row(label, value or Text("—", style="dim"))
    tags = Table.grid(padding=(0, 1), expand=True)
    tags.add_column("key", style="bold cyan", no_wrap=True, min_width=11)
    tags.add_column("value", overflow="fold", ratio=1)
    for key, value in inst.tags:
        tags.add_row(key, value)
    title = Text(f"Tags ({len(inst.tags)})", style="bold underline")
    body: list[RenderableType] = [table, Text(""), title]
    body.append(tags if inst.tags else Text("no tags", style="dim"))
    return Group(*body)


class InstanceDetails(VerticalScroll):
    """A scrollable panel describing one instance."""

    DEFAULT_CSS = """
    InstanceDetails {
        width: 56;
        border-left: tall $panel;
        padding: 0 1;
        background: $surface;
    }
    InstanceDetails > .details-title { text-style: bold; color: $accent; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.instance: Instance | None = None

    def compose(self) -> ComposeResult:
        """Title and body."""
        yield Static("Details", classes="details-title", id="details-title")
        yield Static("Nothing selected.", id="details-body")

    def show(self, inst: Instance | None) -> None:
        """Describe ``inst`` (None: nothing selected)."""
        if inst == self.instance and inst is not None:
            return
        self.instance = inst
        title = self.query_one("#details-title", Static)
        body = self.query_one("#details-body", Static)
        if inst is None:
            title.update("Details")
            body.update("Nothing selected.")
            return
        title.update(f"{inst.display_name}")
        body.update(render_details(inst))
