"""The "forward a port" form and the preset picker (modal screens over any screen).

:class:`TunnelForm` validates what was typed (ports, host, bind address), asks once more before
binding anything but loopback, then calls the ``start`` callable it was given; if starting fails
(port in use…) the reason stays in the form as one line and nothing is closed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ssmtui.config import TunnelPreset
from ssmtui.models import Instance
from ssmtui.transport.tunnel import TunnelSpec
from ssmtui.ui.text import one_line

__all__ = ["PresetPicker", "TunnelForm", "parse_tunnel_form"]

_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$")

StartTunnel = Callable[[TunnelSpec], Awaitable[object]]


def _port(text: str, what: str, low: int) -> int | str:
    value = text.strip()
    hint = "0 picks a free port" if low == 0 else ""
    message = f"{what} must be a number from {low} to 65535" + (f" ({hint})." if hint else ".")
    if not value.isdigit():
        return message
    port = int(value)
    return port if low <= port <= 65535 else message


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_tunnel_form(
    target: str, local: str, remote: str, host: str, bind: str
) -> TunnelSpec | str:
    """A :class:`TunnelSpec` from the form's texts, or the one-line reason it is invalid."""
    remote_port = _port(remote, "Remote port", 1)
    if isinstance(remote_port, str):
        return remote_port
    local_port = _port(local or "0", "Local port", 0)
    if isinstance(local_port, str):
        return local_port
    remote_host = host.strip() or None
    if remote_host is not None:
        try:
            ipaddress.ip_address(remote_host)
        except ValueError:
            if len(remote_host) > 253 or not _HOST_RE.match(remote_host):
                return f"Remote host {remote_host!r} is not a host name or IP address."
    bind_host = bind.strip() or "127.0.0.1"
    if bind_host != "localhost":
        try:
            ipaddress.ip_address(bind_host)
        except ValueError:
            return f"Bind address {bind_host!r} must be an IP address (e.g. 127.0.0.1)."
    return TunnelSpec(target, local_port, remote_port, remote_host, bind_host)


class TunnelForm(ModalScreen[object]):
    """Forward a local port to a port on (or through) an instance."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="tunnel_form.cancel"),
    ]

    def __init__(
        self,
        instance: Instance,
        start: StartTunnel,
        *,
        remote_port: int | None = None,
        local_port: int = 0,
    ) -> None:
        super().__init__(id="tunnel-form")
        self.instance = instance
        self._start = start
        self._remote_port = remote_port
        self._local_port = local_port
        self._confirmed_bind: str | None = None
        #: The last message shown under the fields ("" when none).
        self.message = ""

    def compose(self) -> ComposeResult:
        """Four fields, a message line, two buttons."""
        inst = self.instance
        with Vertical(id="tunnel-box"):
            yield Static(
                f"Forward a port from {inst.display_name} ({inst.instance_id})", id="tunnel-title"
            )
            yield Label("Remote port (on the instance, or on the remote host)")
            yield Input(
                str(self._remote_port or ""),
                placeholder="e.g. 5432",
                id="remote-port",
            )
            yield Label("Remote host (optional: forward through the instance to this host)")
            yield Input(placeholder="the instance itself", id="remote-host")
            yield Label("Local port (0 = any free port)")
            yield Input(str(self._local_port), id="local-port")
            yield Label("Bind address")
            yield Input("127.0.0.1", id="bind-address")
            yield Static("", id="tunnel-message")
            with Horizontal(id="tunnel-buttons"):
                yield Button("Start", id="tunnel-start", variant="primary")
                yield Button("Cancel", id="tunnel-cancel")

    def on_mount(self) -> None:
        """Cursor in the remote port."""
        self.query_one("#remote-port", Input).focus()

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def show_message(self, text: str, *, kind: str = "error") -> None:
        """One line under the fields (``error`` or ``warning``)."""
        self.message = text
        line = self.query_one("#tunnel-message", Static)
        line.update(text)
        line.set_classes(f"-{kind}" if text else "")

    def action_cancel(self) -> None:
        """Esc: close without starting."""
        self.dismiss(None)

    @on(Button.Pressed, "#tunnel-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#tunnel-start")
    @on(Input.Submitted)
    def _submit(self) -> None:
        self.submit()

    @work(exclusive=True, group="tunnel-form", exit_on_error=False)
    async def submit(self) -> None:
        """Validate, confirm a non-loopback bind, start; errors stay in the form."""
        spec = parse_tunnel_form(
            self.instance.instance_id,
            self._value("local-port"),
            self._value("remote-port"),
            self._value("remote-host"),
            self._value("bind-address"),
        )
        if isinstance(spec, str):
            self.show_message(spec)
            return
        if not is_loopback(spec.bind_host) and self._confirmed_bind != spec.bind_host:
            self._confirmed_bind = spec.bind_host
            self.show_message(
                f"⚠ {spec.bind_host} accepts connections from other machines. "
                "Press Start again to bind it anyway.",
                kind="warning",
            )
            return
        self.show_message("Starting…", kind="info")
        self.query_one("#tunnel-start", Button).disabled = True
        try:
            result = await self._start(spec)
        except Exception as err:  # shown as one line; the form stays open
            self.show_message(one_line(err))
            return
        finally:
            self.query_one("#tunnel-start", Button).disabled = False
        self.dismiss(result)


class PresetPicker(ModalScreen[TunnelPreset | None]):
    """Pick a tunnel preset from the config file."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="presets.cancel"),
    ]

    def __init__(self, presets: Sequence[TunnelPreset]) -> None:
        super().__init__(id="preset-picker")
        self.presets = list(presets)

    def compose(self) -> ComposeResult:
        """The presets as a list."""
        with Vertical(id="preset-box"):
            yield Static("Start a tunnel preset", id="preset-title")
            if not self.presets:
                yield Static("No presets: add [[tunnels]] to the config file.", id="preset-empty")
            yield OptionList(
                *(Option(_describe(p), id=str(i)) for i, p in enumerate(self.presets)),
                id="preset-list",
            )

    def action_cancel(self) -> None:
        """Esc: nothing."""
        self.dismiss(None)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.presets[int(event.option.id or 0)])


def _describe(preset: TunnelPreset) -> str:
    port = preset.remote_port
    where = f"{preset.remote_host}:{port}" if preset.remote_host else str(port)
    local = preset.local_port or "any"
    scope = "/".join(p for p in (preset.profile, preset.region) if p)
    return f"{preset.name}  —  {local} → {preset.target} → {where}" + (
        f"  ({scope})" if scope else ""
    )
