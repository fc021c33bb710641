"""The fast paths behind the UI benchmarks (bench/README.md, issue 6), as behaviour:

* a filter keystroke re-filters inside the keystroke's own handler and lays nothing out;
* a stale ``FilterBar.Changed`` never undoes a newer filter;
* the fleet table's row cache never shows an outdated row;
* the terminal's sparse-row paths draw exactly what the general path draws, the scrollback keeps
  plain rows as text, and a terminal that is behind fast-forwards to the same screen;
* the transport's reader takes turns with the loop while frames are buffered, and a batch of
  frames goes out in one socket write.

No timing assertions: these check what is drawn and in which order things run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rich.segment import Segment

from ssmtui.models import FleetResult, FleetScope, Instance
from ssmtui.transport import websocket as ws_module
from ssmtui.ui.app import create_app
from ssmtui.ui.fleet_model import FleetQuery
from ssmtui.ui.source import StaticFleetSource
from ssmtui.ui.widgets.filter_bar import FilterBar
from ssmtui.ui.widgets.terminal import row_segments
from ssmtui.ui.widgets.terminal_vt import VirtualTerminal, compact_row, row_text
from tests.sim_harness import aws_env  # noqa: F401  (autouse: no machine-wide AWS settings)

SIZE = (160, 30)
DEV = FleetScope("dev", "us-east-1")


def fleet(n: int) -> tuple[Instance, ...]:
    return tuple(
        Instance(
            f"i-{k:017x}",
            name=f"{('web', 'db', 'cache')[k % 3]}-{k:04d}",
            ping_status="Online",
            profile=DEV.profile,
            region=DEV.region,
            registered=True,
        )
        for k in range(n)
    )


def line_text(strip: Any) -> str:
    return "".join(seg.text for seg in strip).rstrip()


# --------------------------------------------------------------------------- filter keystrokes


async def test_a_filter_keystroke_refilters_at_once_without_a_layout() -> None:
    app = create_app(StaticFleetSource(FleetResult(fleet(300), {}, (DEV,))), refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.fleet
        await pilot.press("slash")
        await pilot.pause()
        order: list[str] = []
        refilter = screen._refilter

        def counted(*args: Any, **kwargs: Any) -> None:
            order.append("refilter")
            refilter(*args, **kwargs)

        screen._refilter = counted  # type: ignore[method-assign]
        layouts = [0]
        relayout = screen._refresh_layout

        def counted_layout(*args: Any, **kwargs: Any) -> None:
            layouts[0] += 1
            relayout(*args, **kwargs)

        screen._refresh_layout = counted_layout  # type: ignore[method-assign]
        bar = screen.filter_bar
        await pilot.press("w", "e", "b")
        await pilot.pause()
        assert [i.display_name[:3] for i in screen.table.rows] == ["web"] * 100
        assert order == ["refilter"] * 3  # once per key: the message later is not a second one
        assert layouts[0] == 0  # input, table, status line: none of them re-arranged the screen
        assert "100 of 300 shown" in screen.status.left_text

        await pilot.press("backspace", "backspace", "backspace")
        await pilot.pause()
        assert screen.table.row_count == 300 and layouts[0] == 0

        await pilot.press(*"ping:bogus")  # the message line appears: that one is a layout
        await pilot.pause()
        assert bar.has_class("-invalid") and bar.query_one("#filter-error").display
        assert layouts[0] >= 1


async def test_a_stale_changed_message_does_not_undo_a_newer_filter() -> None:
    app = create_app(StaticFleetSource(FleetResult(fleet(30), {}, (DEV,))), refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.fleet
        bar = screen.filter_bar
        bar.set_text("db")
        await pilot.pause()
        assert {i.display_name[:2] for i in screen.table.rows} == {"db"}
        bar.post_message(FilterBar.Changed(bar, FleetQuery.parse("web")))  # an old one
        await pilot.pause()
        assert screen.query_value.text == "db"
        assert {i.display_name[:2] for i in screen.table.rows} == {"db"}


async def test_the_row_cache_never_shows_an_old_row() -> None:
    app = create_app(StaticFleetSource(FleetResult(fleet(5), {}, (DEV,))), refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.fleet.table
        rows = list(table.rows)
        top = rows[0]
        first = line_text(table.render_line(1))
        assert top.instance_id in first and first.lstrip().startswith("●")
        # the same instance listed again, now lost: a new object, drawn anew
        lost = Instance(
            top.instance_id,
            name=top.name,
            ping_status="ConnectionLost",
            profile=DEV.profile,
            region=DEV.region,
            registered=True,
        )
        table.set_rows([lost, *rows[1:]])
        await pilot.pause()
        again = line_text(table.render_line(1))
        assert top.instance_id in again and not again.lstrip().startswith("●")
        # a wider name column: every cached row is drawn again at the new widths
        table.set_widths({"name": 40})
        await pilot.pause()
        wider = line_text(table.render_line(2))
        assert wider.index(rows[1].instance_id) > first.index(top.instance_id)


# --------------------------------------------------------------------------- terminal rows


PIECES = [
    b"abc",
    b"\x1b[31m",
    b"\x1b[0m",
    b"\x1b[1;44m",
    "界".encode(),
    b"\r\n",
    b"\x1b[10C",
    b"\t",
    b"x" * 50,
    b"\x1b[7m",
    b"\x1b[2K",
    b" ",
    b"\x1b[?5h",
    b"\x1b[?5l",
    b"\x1b[5G",
    "é".encode(),
]


def cells(segments: list[Segment]) -> list[tuple[str, object]]:
    return [(ch, seg.style) for seg in segments for ch in seg.text]


def test_sparse_row_paths_draw_what_the_general_path_draws() -> None:
    rnd = random.Random(6)
    for _ in range(200):
        columns = rnd.choice([10, 40, 80, 120])
        vt = VirtualTerminal(columns, 8)
        vt.feed(b"".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 60))))
        vt.process()
        rows = [vt.screen.buffer.get(y) for y in range(8)] + list(vt.screen.scrollback)
        for row in rows:
            if row is None:
                continue
            fast = row_segments(row, columns)
            general = row_segments(row, columns, marked=(0, 0))  # an empty selection
            assert cells(fast) == cells(general)
            if isinstance(row, str):
                expected = row[:columns]
            else:
                expected = "".join(row[x].data for x in range(columns))
            assert row_text(row, columns) == expected.rstrip()


def test_scrollback_keeps_plain_rows_as_text() -> None:
    vt = VirtualTerminal(20, 3, scrollback=50)
    vt.feed(b"plain one\r\n\x1b[31mred\x1b[0m row\r\nwide \xe7\x95\x8c\r\nplain two\r\n\r\nlast")
    vt.process()
    back = list(vt.screen.scrollback)
    assert back[0] == "plain one"
    assert not isinstance(back[1], str)  # colours are kept
    assert not isinstance(back[2], str)  # a wide character keeps its cells
    assert vt.text().splitlines()[:4] == ["plain one", "red row", "wide 界", "plain two"]
    assert compact_row(vt.screen.buffer[2]) == "last"


def test_a_terminal_that_is_behind_fast_forwards_to_the_same_screen() -> None:
    output = b"".join(f"line {n}\r\n".encode() for n in range(3000)) + b"\x1b[32mdone\x1b[0m $ "
    reference = VirtualTerminal(40, 10)
    reference.feed(output)
    reference.process()
    ticks = 0
    behind = VirtualTerminal(40, 10)
    for i in range(0, len(output), 1024):  # as the data channel delivers it
        behind.feed(output[i : i + 1024])
        if i % 8192 == 0:
            behind.process(0.0)  # one chunk per tick: always behind
            ticks += 1
    while behind.process(0.0):
        ticks += 1
    assert behind.skips > 0  # it skipped below the 64 KiB threshold, being behind
    assert behind.display() == reference.display()
    assert behind.screen.cursor.x == reference.screen.cursor.x
    assert behind.screen.buffer[9][0].fg == reference.screen.buffer[9][0].fg == "green"
    assert behind.text().splitlines()[-12:] == reference.text().splitlines()[-12:]


# --------------------------------------------------------------------------- transport


class _Protocol:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send_binary(self, data: bytes) -> None:
        self.writes.append(b"<" + data + b">")


class _Socket:
    def __init__(self) -> None:
        self.protocol = _Protocol()
        self.written: list[bytes] = []

    @contextlib.asynccontextmanager
    async def send_context(self) -> AsyncIterator[None]:
        yield
        self.written.extend(self.protocol.writes)
        self.protocol.writes = []


async def test_a_batch_of_frames_is_one_socket_write() -> None:
    sock = _Socket()
    await ws_module._send_batch(sock, [b"a", b"b", b"c"])  # type: ignore[arg-type]
    assert sock.written == [b"<a><b><c>"]
    sock.protocol.writes.append(b"")  # a pending half-close is never merged into data
    await ws_module._send_batch(sock, [b"d"])  # type: ignore[arg-type]
    assert sock.written[1:] == [b"", b"<d>"]


class _BufferedSocket:
    """Messages websockets already holds: ``async for`` hands them over without waiting."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.done = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for n in range(self.count):
            yield b"frame %d" % n
        self.done.set()
        await asyncio.Event().wait()  # then the socket is quiet


class _QuietChannel:
    """Stands in for the protocol: takes any frame, never has anything to send."""

    in_flight = 0
    closed = False

    def receive_frame(self, msg: bytes, now: float) -> list[object]:
        return []

    def data_to_send(self) -> list[bytes]:
        return []

    def get_timer(self) -> float | None:
        return None


async def test_the_reader_takes_turns_while_frames_are_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_module, "READ_SLICE", 0.0)  # a turn after every frame
    endpoint = ws_module.StreamEndpoint("ws://127.0.0.1:1/stream", "token")
    conn = ws_module.DataChannelConnection(endpoint, session_id="s-1", target_id="i-1")
    conn.channel = _QuietChannel()  # type: ignore[assignment]
    sock = _BufferedSocket(200)
    conn._ws = sock  # type: ignore[assignment]
    seen: set[int] = set()

    async def other_work() -> None:
        while True:
            seen.add(conn.bytes_in)
            await asyncio.sleep(0)

    probe = asyncio.create_task(other_work())
    reader = asyncio.create_task(conn._reader())
    try:
        async with asyncio.timeout(30):
            await sock.done.wait()
    finally:
        for task in (reader, probe):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(seen) > 100  # other work ran between frames (in one go it sees none of them)
