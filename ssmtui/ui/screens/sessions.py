"""Shell sessions in tabs: one :class:`ShellTab` per session on the :class:`SessionsScreen`.

A tab owns one data channel: a worker opens it through the
:class:`~ssmtui.services.SessionService`, pumps its events into the tab's
:class:`~ssmtui.ui.widgets.terminal.Terminal` and sends what the terminal produces (keys, size).
Sessions keep running while another screen is shown; an ended session keeps its tab, with the
reason, until the tab is closed. ``ctrl+o`` hands the real terminal to the session
(:mod:`ssmtui.ui.passthrough`) until ``ctrl+]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Static, TabbedContent, TabPane
from textual.worker import Worker

from ssmtui.models import Instance
from ssmtui.protocol import payloads as pl
from ssmtui.protocol.events import (
    AgentSessionState,
    ChannelClosed,
    HandshakeCompleted,
    SessionReady,
    StreamData,
)
from ssmtui.protocol.frames import PayloadType
from ssmtui.services import SessionKind, SessionService
from ssmtui.transport.websocket import ConnectionLost, DataChannelConnection, TransportError
from ssmtui.ui.passthrough import Passthrough, real_terminal_fd, terminal_size
from ssmtui.ui.text import one_line
from ssmtui.ui.widgets.terminal import Terminal

if TYPE_CHECKING:
    from ssmtui.ui.workbench import Workbench

__all__ = ["ConfirmScreen", "SessionsScreen", "ShellTab", "tab_bindings"]

#: Tab marker per state.
MARKS = {
    "connecting": ("◌", "yellow"),
    "ready": ("●", "green"),
    "ended": ("○", "red"),
}


#: What Textual reports for alt+1…9 from terminals without the kitty keyboard protocol (xterm,
#: tmux…): it reads ESC 1…9 as the macOS option characters ¡ ™ £ ¢ ∞ § ¶ • ª.
_ALT_DIGIT_ALIASES = (
    "inverted_exclamation_mark",
    "trade_mark_sign",
    "pound_sign",
    "cent_sign",
    "infinity",
    "section_sign",
    "pilcrow_sign",
    "bullet",
    "ª",
)


def _alt(n: int) -> str:
    return f"alt+{n},{_ALT_DIGIT_ALIASES[n - 1]}"


def tab_bindings(*, show: bool) -> list[BindingType]:
    """Keys between the fleet, session tabs and tunnels: ``alt+1`` fleet, ``alt+2…9`` tabs,
    ``ctrl+pgup/pgdn`` around the ring. Priority, so they reach past a focused terminal; the app
    binds them all (hidden), the session and tunnel screens show them again (same ids)."""
    shown = [
        Binding(
            _alt(1),
            "app.goto(1)",
            "Fleet",
            show=show,
            key_display="alt+1",
            priority=True,
            id="tabs.fleet",
        ),
        Binding(
            "ctrl+pageup", "app.cycle(-1)", "Prev tab", show=show, priority=True, id="tabs.prev"
        ),
        Binding(
            "ctrl+pagedown", "app.cycle(1)", "Next tab", show=show, priority=True, id="tabs.next"
        ),
    ]
    if show:
        return list(shown)
    return [
        *shown,
        *(
            Binding(
                _alt(n),
                f"app.goto({n})",
                f"Tab {n}",
                show=False,
                key_display=f"alt+{n}",
                priority=True,
                id=f"tabs.{n}",
            )
            for n in range(2, 10)
        ),
    ]


class _Heap:
    """Whether the first session tab has settled the heap (once per process)."""

    frozen = False


def _settle_after_first_tab() -> None:
    """Once the first session tab is up, collect and freeze what is alive. The tab's widgets,
    the sessions screen and the caches built to draw them are long-lived, and an output flood
    sets off a full collection every second or two: each walked these ~25,000 objects and
    stalled a frame by 5-30 ms. The workbench collected and froze the heap just before the first
    session (``workbench._settle_heap``), so this collection only walks what came since: a few
    milliseconds, once, as the session starts."""
    if not _Heap.frozen:
        _Heap.frozen = True
        gc.collect()
        gc.freeze()


class ShellTab(TabPane):
    """One shell session: a status line over a terminal."""

    def __init__(
        self,
        instance: Instance,
        services: SessionService,
        *,
        number: int,
        label: str,
        on_live: Callable[[ShellTab, bool], None] | None = None,
        kind: SessionKind | None = None,
    ) -> None:
        self.instance = instance
        self.services = services
        #: Shell (default) or a command run in a pty (AWS-StartInteractiveCommand).
        self.kind = kind or SessionKind.shell()
        self.number = number
        self.name_label = label
        self.state = "connecting"
        self.reason = ""
        self.exit_code: int | None = None
        self.conn: DataChannelConnection | None = None
        self.session_id = ""
        self.passthrough: Passthrough | None = None
        self._on_live = on_live
        self._early = bytearray()
        self._sent_size: tuple[int, int] | None = None
        self._worker: Worker[None] | None = None
        self._terminal: Terminal | None = None
        super().__init__(self.label_text(), id=f"session-{number}")

    def compose(self) -> ComposeResult:
        """Status line and terminal."""
        yield Static(self._status_text(), classes="session-status")
        self._terminal = Terminal(id=f"terminal-{self.number}")
        yield self._terminal

    @property
    def terminal(self) -> Terminal:
        """The tab's terminal widget (kept: every chunk of output goes to it, no DOM query)."""
        if self._terminal is None:
            self._terminal = self.query_one(Terminal)
        return self._terminal

    @property
    def running(self) -> bool:
        """Connecting or ready (not ended)."""
        return self.state != "ended"

    def label_text(self) -> Content:
        """``web-dev-1 ●``: the name and a state mark."""
        mark, colour = MARKS[self.state]
        return Content.assemble(self.name_label, " ", (mark, colour))

    @property
    def title_plain(self) -> str:
        """The tab label as plain text."""
        return self.label_text().plain

    def on_mount(self) -> None:
        """Start the session."""
        self._worker = self.run_worker(
            self._run(), name=f"shell {self.name_label}", group="session", exit_on_error=False
        )

    # ------------------------------------------------------------------ the session

    async def _run(self) -> None:
        try:
            conn = await self.services.open(self.instance, self.kind)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # AWS / transport errors end the tab with one line
            self._finish(f"could not start the session: {one_line(err)}")
            return
        self.conn = conn
        self.session_id = conn.session_id
        if self._on_live is not None:
            self._on_live(self, True)
        self._update_status()
        try:
            reason = await self._pump(conn)
        except asyncio.CancelledError:  # tab closed or app exiting: the closer terminates it
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        with contextlib.suppress(Exception):
            await conn.close()
        if self._on_live is not None:
            self._on_live(self, False)
        self._finish(reason or conn.end_reason or "session ended")

    async def _pump(self, conn: DataChannelConnection) -> str:
        async for ev in conn.events():
            if isinstance(ev, SessionReady):
                self._set_state("ready")
                _settle_after_first_tab()
                self._send_size()
                if self._early:
                    self.send(bytes(self._early))
                    self._early.clear()
            elif isinstance(ev, HandshakeCompleted) and ev.customer_message:
                self._output(ev.customer_message.encode() + b"\r\n")
            elif isinstance(ev, StreamData):
                if ev.payload_type in (PayloadType.OUTPUT, PayloadType.STDERR):
                    self._output(ev.data)
                elif ev.payload_type == PayloadType.EXIT_CODE:
                    with contextlib.suppress(pl.PayloadError):
                        self.exit_code = pl.decode_exit_code(ev.data)
            elif isinstance(ev, AgentSessionState) and ev.state == "Terminating":
                return "the instance ended the session"
            elif isinstance(ev, ChannelClosed):
                return ev.output.strip() or "session ended"
            elif isinstance(ev, ConnectionLost):
                return ev.reason
        return ""

    def _output(self, data: bytes) -> None:
        if self.passthrough is not None:
            self.passthrough.write(data)
        if self.is_attached:
            self.terminal.feed(data)

    def send(self, data: bytes) -> None:
        """Bytes for the remote shell (queued until the session is ready)."""
        conn = self.conn
        if self.state == "connecting":
            self._early += data
            return
        if conn is None or conn.closed or self.state != "ready":
            return
        with contextlib.suppress(TransportError):
            conn.send_nowait(PayloadType.OUTPUT, data)

    def _send_size(self, size: tuple[int, int] | None = None) -> None:
        conn = self.conn
        if conn is None or conn.closed or self.state != "ready":
            return
        if size is None:
            term = self.terminal.terminal_size
            size = (term.width, term.height)
        if size != self._sent_size:
            self._sent_size = size
            with contextlib.suppress(TransportError):
                conn.send_nowait(PayloadType.SIZE, pl.encode_size(*size))
        self._update_status()

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_status()
        if not self.is_attached:
            return
        with contextlib.suppress(Exception):
            tabbed = self.screen.query_one(TabbedContent)
            tabbed.get_tab(self).label = self.label_text()

    def _finish(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.reason = reason
        if self.passthrough is not None:
            self.passthrough.end(reason)
        if not self.is_attached:
            self.state = "ended"
            return
        self._set_state("ended")
        self.terminal.feed(f"\r\n\x1b[0;2m[{reason} — ctrl+w closes the tab]\x1b[0m\r\n".encode())
        shown = getattr(self.parent, "current", None) == self.id
        if self.app.screen is not self.screen or not shown:
            self.notify(reason, title=f"{self.name_label}: session ended", timeout=6)

    def _status_text(self) -> Text:
        inst = self.instance
        parts = [inst.instance_id, f"{inst.profile}/{inst.region}"]
        if self.session_id:
            parts.append(self.session_id)
        if self._sent_size is not None:
            parts.append(f"{self._sent_size[0]}×{self._sent_size[1]}")
        mark, colour = MARKS[self.state]
        text = Text.assemble((f"{mark} {self.state}", colour), "  ", " · ".join(parts))
        if self.state == "ended":
            text.append(f"  — {self.reason}", style="bold")
        elif self.state == "ready":
            text.append("   ctrl+o full terminal · shift+pgup scrollback", style="dim")
        return text

    def _update_status(self) -> None:
        if self.is_attached:
            with contextlib.suppress(Exception):
                self.query_one(".session-status", Static).update(self._status_text())

    @on(Terminal.Input)
    def _typed(self, message: Terminal.Input) -> None:
        message.stop()
        self.send(message.data)

    @on(Terminal.Resized)
    def _resized(self, message: Terminal.Resized) -> None:
        message.stop()
        if self.passthrough is None:
            self._send_size((message.columns, message.lines))

    # ------------------------------------------------------------------ closing

    async def terminate(self) -> None:
        """End the session: close the channel and TerminateSession (best effort)."""
        conn, session_id = self.conn, self.session_id
        was_running = self.running
        if self._worker is not None:
            self._worker.cancel()
        self._finish("closed")
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if was_running and session_id:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.services.terminate(self.instance, session_id), 5)
        if self._on_live is not None:
            self._on_live(self, False)

    # ------------------------------------------------------------------ full terminal

    async def run_full_terminal(self) -> None:
        """Hand the real terminal to this session until ctrl+] (or ``~.``, or its end)."""
        if self.state != "ready" or self.conn is None:
            self.notify("The session is not running.", severity="warning")
            return
        passthrough = Passthrough(self.send, self._passthrough_size)
        term = self.terminal
        try:
            with self.app.batch_update(), self.app.suspend():
                term.resize_emulator(*terminal_size(real_terminal_fd()))
                term.flush()
                self.passthrough = passthrough
                await passthrough.run(term.vt.snapshot())
        except SuspendNotSupported:
            self.notify("Full terminal mode needs a real terminal.", severity="warning")
        finally:
            self.passthrough = None
            self._send_size(term.fit())
            term.focus()

    def _passthrough_size(self, columns: int, lines: int) -> None:
        self.terminal.resize_emulator(columns, lines)
        self._send_size((columns, lines))


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (y / Enter: yes; n / Esc: no)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__(classes="confirm")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(self.yes, id="confirm-yes", variant="error")
                yield Button("Cancel", id="confirm-no")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")


class SessionsScreen(Screen[None]):
    """Every shell session, one tab each."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+w", "close_tab", "Close tab", priority=True, id="session.close"),
        Binding("ctrl+o", "full_terminal", "Full terminal", priority=True, id="session.full"),
        *tab_bindings(show=True),
    ]

    def __init__(self, workbench: Workbench) -> None:
        super().__init__(id="sessions")
        self.workbench = workbench
        self._count = 0

    def compose(self) -> ComposeResult:
        """The tabs and the footer."""
        yield TabbedContent(id="session-tabs")
        yield Static(
            "No sessions. alt+1 goes back to the fleet: Enter on an instance opens a shell.",
            id="sessions-empty",
        )
        yield Footer()

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Only what works over a terminal: this screen's keys and priority keys."""
        return {
            key: active
            for key, active in super().active_bindings.items()
            if active.binding.priority or active.node is self
        }

    @property
    def tabbed(self) -> TabbedContent:
        """The tab container."""
        return self.query_one(TabbedContent)

    @property
    def tabs(self) -> list[ShellTab]:
        """The session tabs, in order."""
        if not self.is_mounted:
            return []
        return list(self.tabbed.query(ShellTab))

    @property
    def active_tab(self) -> ShellTab | None:
        """The tab shown."""
        if not self.is_mounted:
            return None
        pane = self.tabbed.active_pane
        return pane if isinstance(pane, ShellTab) else None

    def _label(self, name: str) -> str:
        taken = {t.name_label for t in self.tabs}
        if name not in taken:
            return name
        n = 2
        while f"{name} ({n})" in taken:
            n += 1
        return f"{name} ({n})"

    async def add_session(self, instance: Instance, kind: SessionKind | None = None) -> ShellTab:
        """Open a shell (or ``kind``: a command in a pty) on ``instance`` in a new tab."""
        self._count += 1
        tab = ShellTab(
            instance,
            self.workbench.services,
            number=self._count,
            label=self._label(instance.display_name),
            on_live=self.workbench.session_live,
            kind=kind,
        )
        await self.tabbed.add_pane(tab)
        self.activate(tab)
        self._empty_changed()
        return tab

    def activate(self, tab: ShellTab) -> None:
        """Show ``tab`` and give its terminal the keyboard."""
        assert tab.id is not None
        self.tabbed.active = tab.id
        tab.terminal.focus()

    def _empty_changed(self) -> None:
        self.query_one("#sessions-empty").display = not self.tabs

    @on(TabbedContent.TabActivated)
    def _tab_activated(self) -> None:
        tab = self.active_tab
        if tab is not None and tab.is_mounted:
            self.call_after_refresh(tab.terminal.focus)

    def on_screen_resume(self) -> None:
        """Back on this screen: keys go to the active terminal."""
        tab = self.active_tab
        if tab is not None:
            tab.terminal.focus()

    async def action_close_tab(self) -> None:
        """``ctrl+w``: close the tab (asks first while the session runs)."""
        tab = self.active_tab
        if tab is None:
            return
        if not tab.running:
            await self.close_tab(tab)
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.close_tab(tab)

        self.app.push_screen(
            ConfirmScreen(f"End the session on {tab.name_label} and close its tab?", "End session"),
            answered,
        )

    async def close_tab(self, tab: ShellTab) -> None:
        """Terminate the tab's session and remove the tab."""
        await tab.terminate()
        assert tab.id is not None
        await self.tabbed.remove_pane(tab.id)
        self._empty_changed()
        if not self.tabs:
            await self.workbench.show_fleet()
        elif self.active_tab is not None:
            self.active_tab.terminal.focus()

    async def action_full_terminal(self) -> None:
        """``ctrl+o``: the whole terminal for the active session (ctrl+] comes back)."""
        tab = self.active_tab
        if tab is not None:
            self.run_worker(tab.run_full_terminal(), group="full-terminal", exclusive=True)
