"""Shell tabs, driven with the pilot against the REAL demo fleet (agents with PTY shells), and the
terminal widget on raw bytes.

No mocks: the app lists the fleet and opens sessions through :class:`SessionService` ->
aiobotocore -> the loopback SSM endpoint -> the data channel -> the simulated agent's bash.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from rich.color import Color
from textual.app import App, ComposeResult

from ssmtui.aws.clients import demo_clients
from ssmtui.models import FleetScope
from ssmtui.services import SessionService
from ssmtui.ui.app import SsmtuiApp, create_app
from ssmtui.ui.screens.fleet import FleetScreen
from ssmtui.ui.screens.sessions import SessionsScreen, ShellTab
from ssmtui.ui.screens.tunnels import TunnelsScreen
from ssmtui.ui.source import AwsFleetSource
from ssmtui.ui.widgets.terminal import Terminal, row_segments
from ssmtui.ui.widgets.terminal_keys import encode_paste, key_to_bytes
from ssmtui.ui.widgets.terminal_vt import VirtualTerminal
from tests.sim_harness import aws_env, running_sim  # noqa: F401  (aws_env: autouse)

pytestmark = pytest.mark.timeout(60)
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]
SIZE = (120, 36)


@asynccontextmanager
async def shell_app(tmp_path: Path) -> AsyncIterator[tuple[SsmtuiApp, object]]:
    """The app over the demo fleet with sessions on; the fleet listed."""
    async with running_sim(tmp_path) as sim:
        clients = demo_clients(sim.server)
        try:
            app = create_app(
                AwsFleetSource(clients, SCOPES),
                refresh_interval=0,
                services=SessionService(clients),
            )
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.fleet.fleet_loaded, "the fleet")
                yield app, pilot
        finally:
            await clients.aclose()


async def until(pilot: object, cond: Callable[[], object], what: str, timeout: float = 20) -> None:
    """Poll ``cond`` (pausing the pilot) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def prompt_ready(tab: ShellTab) -> bool:
    lines = [line for line in tab.terminal.display_lines() if line]
    return tab.state == "ready" and bool(lines) and lines[-1].endswith("$")


async def open_tab(app: SsmtuiApp, pilot: object, name: str) -> ShellTab:
    """Filter the fleet to ``name`` and press Enter: a new tab, ready at a prompt."""
    bench = app.workbench
    assert bench is not None
    before = len(bench.sessions.tabs)
    app.fleet.set_filter(name)
    await pilot.pause()  # type: ignore[attr-defined]
    app.fleet.table.focus()
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(pilot, lambda: len(bench.sessions.tabs) > before, f"a tab on {name}")
    tab = bench.sessions.tabs[-1]
    await until(pilot, lambda: prompt_ready(tab), f"a prompt on {name}")
    return tab


async def run(pilot: object, tab: ShellTab, command: str, line: str, timeout: float = 20) -> None:
    """Type ``command`` + Enter as key presses; wait for an output line equal to ``line``."""
    await pilot.press(*command, "enter")  # type: ignore[attr-defined]
    await until(pilot, lambda: line in tab.terminal.display_lines(), repr(line), timeout)


class StallMeter:
    """The longest the event loop went without getting back to a 1 ms sleeper (the stall)."""

    def __init__(self, tick: float = 0.001) -> None:
        self.tick = tick
        self.stall = 0.0
        self._done = False
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        last = time.perf_counter()
        while not self._done:
            await asyncio.sleep(self.tick)
            now = time.perf_counter()
            self.stall = max(self.stall, now - last - self.tick)
            last = now

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done = True
        assert self._task is not None
        await self._task


# --------------------------------------------------------------------------- against the fleet


async def test_shell_tab_types_resizes_interrupts_and_ends(tmp_path: Path) -> None:
    async with shell_app(tmp_path) as (app, pilot):
        tab = await open_tab(app, pilot, "web-dev-1")
        assert isinstance(app.screen, SessionsScreen) and app.focused is tab.terminal
        assert tab.title_plain == "web-dev-1 ●"
        await run(pilot, tab, "echo $((6*7))", "42")

        await pilot.resize_terminal(100, 30)  # type: ignore[attr-defined]
        await until(pilot, lambda: tab.terminal.terminal_size.width == 100, "the resize")
        size = tab.terminal.terminal_size
        assert size.height < 30  # tabs, status line and footer take the rest
        await run(pilot, tab, "stty size", f"{size.height} {size.width}")

        await pilot.press(*"sleep 30", "enter")  # type: ignore[attr-defined]
        await pilot.pause(0.5)  # type: ignore[attr-defined]
        await pilot.press("ctrl+c")  # type: ignore[attr-defined]
        await run(pilot, tab, "echo after-$((1+1))", "after-2", timeout=10)

        await pilot.press(*"exit", "enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: tab.state == "ended", "the session end")
        assert tab.title_plain == "web-dev-1 ○"
        assert any("ctrl+w closes the tab" in line for line in tab.terminal.display_lines())
        assert app.workbench is not None and not app.workbench.live

        await pilot.press("ctrl+w")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), "back on the fleet")
        assert app.workbench.sessions.tabs == []


async def test_two_tabs_keep_running_while_browsing(tmp_path: Path) -> None:
    async with shell_app(tmp_path) as (app, pilot):
        bench = app.workbench
        assert bench is not None
        one = await open_tab(app, pilot, "web-dev-1")
        await pilot.press("alt+1")  # type: ignore[attr-defined]
        assert isinstance(app.screen, FleetScreen)
        rows = app.help_rows()  # the ? screen lists the tab keys with their binding ids
        assert ("alt+1", "Fleet", "tabs.fleet") in rows and ("t", "Tunnels", "app.tunnels") in rows
        two = await open_tab(app, pilot, "api-dev-1")  # the old agent (no smux) also does shells
        assert [t.title_plain for t in bench.sessions.tabs] == ["web-dev-1 ●", "api-dev-1 ●"]
        await run(pilot, two, "echo two-$((1+1))", "two-2")

        # output keeps arriving while the fleet is shown
        one.send(b"sleep 0.3; echo bg-$((2+2))\r")
        await pilot.press("alt+1")  # type: ignore[attr-defined]
        assert isinstance(app.screen, FleetScreen)
        await until(pilot, lambda: "bg-4" in one.terminal.display_lines(), "output while hidden")

        await pilot.press("alt+2")  # type: ignore[attr-defined]
        assert app.screen is bench.sessions and bench.sessions.active_tab is one
        assert app.focused is one.terminal
        await run(pilot, one, "echo one-$((0+1))", "one-1")
        assert "one-1" not in two.terminal.display_lines()

        # ctrl+pgdn cycles: tab 1 -> tab 2 -> tunnels -> fleet -> tab 1
        await pilot.press("ctrl+pagedown")  # type: ignore[attr-defined]
        assert bench.sessions.active_tab is two and app.focused is two.terminal
        await pilot.press("ctrl+pagedown")  # type: ignore[attr-defined]
        assert isinstance(app.screen, TunnelsScreen)
        await pilot.press("ctrl+pagedown")  # type: ignore[attr-defined]
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("ctrl+pageup", "ctrl+pageup")  # type: ignore[attr-defined]
        assert app.screen is bench.sessions and bench.sessions.active_tab is two
        assert one.state == two.state == "ready"

        # ctrl+w on a running session asks first; "n" keeps it
        await pilot.press("ctrl+w")  # type: ignore[attr-defined]
        await pilot.press("n")  # type: ignore[attr-defined]
        assert len(bench.sessions.tabs) == 2 and two.state == "ready"
        await pilot.press("ctrl+w", "y")  # type: ignore[attr-defined]
        await until(pilot, lambda: len(bench.sessions.tabs) == 1, "the tab to close")
        assert two.state == "ended" and bench.sessions.active_tab is one

        # full terminal mode needs a real terminal: headless, it says so and nothing breaks
        await pilot.press("ctrl+o")  # type: ignore[attr-defined]
        await until(
            pilot,
            lambda: any("real terminal" in n.message for n in app._notifications),
            "the notice",
        )
        await run(pilot, one, "echo still-$((3+3))", "still-6")


async def test_output_flood_keeps_the_app_responsive(tmp_path: Path) -> None:
    async with shell_app(tmp_path) as (app, pilot):
        tab = await open_tab(app, pilot, "web-dev-1")
        await pilot.press(*"yes | head -c 5000000; echo flood-$((1+2))")  # type: ignore[attr-defined]
        started = time.monotonic()
        async with StallMeter() as meter:
            await run(pilot, tab, "", "flood-3", timeout=40)  # Enter starts the flood
        elapsed = time.monotonic() - started
        stall = meter.stall
        vt = tab.terminal.vt
        print(
            f"\n5 MB of `yes` through a shell tab: {elapsed:.1f} s, max event-loop stall "
            f"{stall * 1000:.0f} ms, longest terminal tick {tab.terminal.longest_tick * 1000:.0f}"
            f" ms, parsed {vt.parsed} B, fast-forwarded {vt.skipped} B in {vt.skips} steps"
        )
        assert vt.screen.scrollback  # the flood went through the scrollback
        await pilot.press("ctrl+c")  # type: ignore[attr-defined]
        await run(pilot, tab, "echo ok-$((2*3))", "ok-6")


# --------------------------------------------------------------------------- the widget alone


def test_colours_and_attributes() -> None:
    vt = VirtualTerminal(40, 5)
    vt.feed(b"\x1b[31mred\x1b[0m \x1b[38;5;208mo\x1b[48;2;1;2;3mt\x1b[0m \x1b[1;4;7mB\x1b[0m\r\n")
    vt.process()
    row = vt.screen.buffer[0]
    assert (row[0].data, row[0].fg) == ("r", "red")
    assert row[4].fg == "ff8700"  # 256-colour 208
    assert (row[5].fg, row[5].bg) == ("ff8700", "010203")  # truecolour background
    assert row[7].bold and row[7].underscore and row[7].reverse
    segments = row_segments(row, 40)
    styles = {seg.text: seg.style for seg in segments}
    assert styles["red"].color == Color.from_ansi(1)  # type: ignore[union-attr]
    assert styles["t"].bgcolor == Color.from_rgb(1, 2, 3)  # type: ignore[union-attr]
    b = styles["B"]
    assert b is not None and b.bold and b.underline and b.reverse


def test_alternate_screen_and_cursor() -> None:
    vt = VirtualTerminal(30, 6)
    vt.feed(b"main 1\r\nmain 2\r\n")
    vt.process()
    vt.feed(b"\x1b[?1049h\x1b[2J\x1b[Hvim-like\x1b[5;10Hx")
    vt.process()
    scr = vt.screen
    assert scr.alternate and vt.display()[0] == "vim-like" and "main 1" not in vt.display()
    assert (scr.cursor.x, scr.cursor.y) == (10, 4)  # after the x at row 5, column 10
    vt.feed(b"\x1b[?1049l")
    vt.process()
    assert not scr.alternate
    assert vt.display()[:2] == ["main 1", "main 2"]
    assert (scr.cursor.x, scr.cursor.y) == (0, 2)  # restored
    vt.feed(b"\x1b[3;4H\x1b[6n")  # cursor position report goes back to the remote
    replies: list[bytes] = []
    scr.respond = replies.append
    vt.process()
    assert replies == [b"\x1b[3;4R"]


def test_sequences_pyte_chokes_on_are_dropped() -> None:
    vt = VirtualTerminal(40, 3)
    # vim's modifyOtherKeys (CSI > 4;2 m), kitty keyboard push/query, a DCS request
    vt.feed(b"a\x1b[>4;2mb\x1b[>1uc\x1b[?uc\x1bP+q544e\x1b\\d\x1b[31;>5me")
    vt.process()
    assert vt.display()[0].startswith("abc") and vt.display()[0].endswith("e")


def test_scrollback_and_resize_keep_the_cursor_line() -> None:
    vt = VirtualTerminal(20, 5, scrollback=100)
    vt.feed(b"".join(f"line {i}\r\n".encode() for i in range(12)))
    vt.process()
    assert vt.screen.scrollback_text()[-1] == "line 7" and vt.display()[0] == "line 8"
    vt.resize(20, 3)  # the cursor line (blank, after line 11) stays on screen
    assert vt.display() == ["line 10", "line 11", ""]
    vt.resize(30, 8)
    assert vt.columns == 30 and vt.lines == 8


def test_keys_become_xterm_bytes() -> None:
    assert key_to_bytes("enter", None) == b"\r"
    assert key_to_bytes("backspace", None) == b"\x7f"
    assert key_to_bytes("tab", None) == b"\t"
    assert key_to_bytes("shift+tab", None) == b"\x1b[Z"
    assert key_to_bytes("escape", None) == b"\x1b"
    assert key_to_bytes("ctrl+c", None) == b"\x03"
    assert key_to_bytes("ctrl+c", "\x03") == b"\x03"
    assert key_to_bytes("alt+x", "x") == b"\x1bx"
    assert key_to_bytes("up", None) == b"\x1b[A"
    assert key_to_bytes("up", None, app_cursor=True) == b"\x1bOA"
    assert key_to_bytes("ctrl+right", None) == b"\x1b[1;5C"
    assert key_to_bytes("home", None) == b"\x1b[H"
    assert key_to_bytes("pagedown", None) == b"\x1b[6~"
    assert key_to_bytes("f1", None) == b"\x1bOP"
    assert key_to_bytes("f5", None) == b"\x1b[15~"
    assert key_to_bytes("shift+f5", None) == b"\x1b[15;2~"
    assert key_to_bytes("dollar_sign", "$") == b"$"
    assert key_to_bytes("é", "é") == "é".encode()
    assert encode_paste("a\nb", bracketed=True) == b"\x1b[200~a\rb\x1b[201~"


class TerminalApp(App[None]):
    """Just a terminal that records what it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def compose(self) -> ComposeResult:
        yield Terminal(id="term")

    def on_terminal_input(self, message: Terminal.Input) -> None:
        self.sent.append(message.data)


async def test_widget_renders_sends_keys_and_copies_a_selection() -> None:
    app = TerminalApp()
    async with app.run_test(size=(60, 12)) as pilot:
        term = app.query_one(Terminal)
        term.focus()
        await pilot.pause()
        assert term.terminal_size.width == 60 and term.terminal_size.height == 12
        term.feed(b"hello \x1b[32mgreen\x1b[0m world\r\nsecond line\r\n$ ")
        await until(pilot, lambda: term.display_lines()[1] == "second line", "the output")
        strip = term.render_line(0)
        assert "".join(seg.text for seg in strip).startswith("hello green world")
        await pilot.press("l", "s", "tab", "enter", "ctrl+d", "up", "escape")
        assert b"".join(app.sent) == b"ls\t\r\x04\x1b[A\x1b"
        assert app.focused is term  # tab went to the shell, not to the focus chain

        await pilot.mouse_down(Terminal, offset=(6, 0))
        await pilot.hover(Terminal, offset=(10, 0))
        await pilot.mouse_up(Terminal, offset=(10, 0))
        assert term.copied == "green" and app.clipboard == "green"

        term.feed(b"".join(f"row {i}\r\n".encode() for i in range(40)))
        await until(pilot, lambda: "row 39" in term.display_lines(), "the rows")
        await pilot.press("shift+pageup")
        assert term.scrollback_offset == 11
        assert "".join(seg.text for seg in term.render_line(0)).rstrip() == "row 18"
        await pilot.press("x")  # typing goes back to the live screen
        assert term.scrollback_offset == 0 and app.sent[-1] == b"x"


async def test_a_little_output_on_an_idle_terminal_is_drawn_at_once() -> None:
    """An echo is parsed on the next loop turn (not on the 25 ms ticker) and repaints only the
    rows it changed; a flood still goes through the ticker."""
    app = TerminalApp()
    async with app.run_test(size=(60, 12)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        term.feed(b"$ ")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not term.vt.pending and term.display_lines()[0] == "$"
        assert not term._ticking
        term._dirty_regions.clear()
        term.feed(b"x")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert term.display_lines()[0] == "$ x"
        assert term._dirty_regions and all(r.height == 1 for r in term._dirty_regions)
        term.feed(b"y\r\n" * 4000)  # more than a little: the time-boxed ticker takes over
        assert term._ticking or term._soon
        await until(pilot, lambda: not term.vt.pending, "the burst to be parsed")
        await until(pilot, lambda: not term._ticking, "the ticker to pause")


async def test_a_two_megabyte_burst_does_not_block_the_loop() -> None:
    app = TerminalApp()
    gc.collect()
    gc.freeze()  # as the app's workbench does before its first session (see workbench.py)
    async with app.run_test(size=(120, 40)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        results = []
        for label, line, size in (
            ("plain lines", b"y\r\n", 2_000_000),
            (
                "coloured lines",
                b"\x1b[1;32mok\x1b[0m build step \x1b[33m42\x1b[0m done\r\n",
                2_000_000,
            ),
            # cursor control cannot be fast-forwarded: every byte goes through pyte, in slices
            ("progress bar (parsed in full)", b"\rcopying 42% \x1b[K", 200_000),
        ):
            burst = line * (size // len(line))
            term.longest_tick = 0.0
            started = time.perf_counter()
            async with StallMeter() as meter:
                for i in range(0, len(burst), 1024):  # as the data channel delivers it
                    term.feed(burst[i : i + 1024])
                term.feed(b"END\r\n")
                await until(pilot, lambda: not term.vt.pending, "the burst to be parsed", 40)
            elapsed = time.perf_counter() - started
            stall = meter.stall
            assert "END" in term.display_lines()
            results.append(
                f"{label}: {len(burst) / 1e6:.1f} MB in {elapsed * 1000:.0f} ms, max loop stall "
                f"{stall * 1000:.1f} ms (longest tick {term.longest_tick * 1000:.1f} ms)"
            )
        print("\nOutput bursts into the terminal widget:\n  " + "\n  ".join(results))
    gc.unfreeze()


async def test_run_a_command_from_the_palette_in_a_tab(tmp_path: Path) -> None:
    from ssmtui.ui.commands import FleetCommands
    from ssmtui.ui.widgets.command_prompt import CommandPrompt

    async with shell_app(tmp_path) as (app, pilot):
        bench = app.workbench
        assert bench is not None
        provider = FleetCommands(app.fleet)
        hits = [h async for h in provider.search("run web-dev-1")]
        run_hits = [h for h in hits if h.text == "Run a command on web-dev-1"]
        assert len(run_hits) == 1
        run_hits[0].command()
        await until(pilot, lambda: isinstance(app.screen, CommandPrompt), "the prompt")
        await pilot.press("enter")  # empty: a one-line hint, the prompt stays
        assert isinstance(app.screen, CommandPrompt)
        await pilot.press(*"echo cmd-$((6*7)); exit 3", "enter")
        await until(pilot, lambda: len(bench.sessions.tabs) == 1, "a command tab")
        tab = bench.sessions.tabs[-1]
        await until(pilot, lambda: "cmd-42" in tab.terminal.display_lines(), "the output")
        await until(pilot, lambda: tab.state == "ended", "the end of the command")
