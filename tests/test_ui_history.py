"""The history screen (pilot): lists records newest first, searches, shows details, re-launches
through the app's intents, replays transcripts; the ``h`` key and the palette entry open it."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from ssmtui.models import FleetResult, FleetScope, Instance
from ssmtui.store.history import History
from ssmtui.store.transcripts import TranscriptWriter
from ssmtui.ui.app import SsmtuiApp, create_app
from ssmtui.ui.commands import FleetCommands
from ssmtui.ui.screens.history import (
    HistoryScreen,
    ReplayScreen,
    format_bytes,
    format_duration,
)
from ssmtui.ui.source import StaticFleetSource

SIZE = (160, 40)
DEV = FleetScope("dev", "us-east-1")
WEB = Instance(
    "i-0123456789abcdef0",
    name="web-1",
    ping_status="Online",
    profile="dev",
    region="us-east-1",
    registered=True,
)
DB = Instance(
    "i-0fedcba9876543210",
    name="db-1",
    ping_status="Online",
    profile="dev",
    region="us-east-1",
    registered=True,
)
GONE = "i-00000000000000bad"


def make_history(tmp_path: Path) -> History:
    """Four sessions: shell on web-1 (with a transcript), tunnel on db-1, a command with exit 3
    on web-1, and a shell on an instance that is no longer in the fleet (newest first)."""
    h = History(tmp_path / "history.sqlite3")
    now = datetime.now(UTC)
    cast = tmp_path / "web.cast"
    ticks = iter(float(t) for t in range(100))
    with TranscriptWriter(cast, width=100, height=30, clock=lambda: next(ticks) / 100) as w:
        w.output(b"\x1b[1;32mubuntu@web-1\x1b[0m:~$ ")
        w.output(b"uname -a\r\nLinux web-1 6.1.0 x86_64\r\n")
        w.output(b"ubuntu@web-1:~$ exit\r\n")

    def add(inst_id: str, name: str, kind: str, age: timedelta, **end: object) -> int:
        rid = h.record_start(
            kind=kind,
            instance_id=inst_id,
            instance_name=name,
            profile="dev",
            region="us-east-1",
            started_at=now - age,
            session_id=f"dev-{name}",
        )
        h.record_end(rid, ended_at=now - age + timedelta(seconds=83), **end)  # type: ignore[arg-type]
        return rid

    add(WEB.instance_id, "web-1", "shell", timedelta(days=3), transcript=cast, bytes_in=2048)
    add(DB.instance_id, "db-1", "tunnel", timedelta(hours=5), bytes_in=10, bytes_out=20)
    add(WEB.instance_id, "web-1", "command", timedelta(hours=1), exit_status=3)
    add(GONE, "old-box", "shell", timedelta(minutes=5), end_reason="the shell exited")
    return h


@pytest.fixture(name="history")
def history_fixture(tmp_path: Path) -> History:
    return make_history(tmp_path)


@pytest.fixture(name="calls")
def calls_fixture() -> list[tuple[str, Instance]]:
    return []


@pytest.fixture(name="app")
async def app_fixture(
    history: History, calls: list[tuple[str, Instance]]
) -> AsyncIterator[SsmtuiApp]:
    async def on_connect(inst: Instance) -> None:
        calls.append(("connect", inst))

    async def on_forward(inst: Instance) -> None:
        calls.append(("forward", inst))

    source = StaticFleetSource(FleetResult((WEB, DB), {}, (DEV,)))
    yield create_app(
        source,
        refresh_interval=0,
        on_connect=on_connect,
        on_forward=on_forward,
        history=history,
    )


async def open_history(app: SsmtuiApp, pilot: Pilot[None]) -> HistoryScreen:
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("h")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    await settle(app, pilot)
    return screen


async def settle(app: SsmtuiApp, pilot: Pilot[None]) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


def names(screen: HistoryScreen) -> list[str]:
    return [f"{r.instance_name}:{r.kind}" for r in screen.records]


def test_formatting() -> None:
    assert [format_duration(s) for s in (None, 5, 83, 3725, 90000)] == [
        "—",
        "5s",
        "1m 23s",
        "1h 02m",
        "1d 01h",
    ]
    assert [format_bytes(n) for n in (0, 512, 1536, 5 * 1024**2)] == [
        "0 B",
        "512 B",
        "1.5 KiB",
        "5.0 MiB",
    ]


async def test_lists_records_newest_first_with_details(app: SsmtuiApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_history(app, pilot)
        assert names(screen) == ["old-box:shell", "web-1:command", "db-1:tunnel", "web-1:shell"]
        table = screen.table
        assert table.row_count == 4
        row = [str(c) for c in table.get_row_at(1)]
        assert row[1:] == [
            "1m 23s",
            f"web-1 ({WEB.instance_id})",
            "dev/us-east-1",
            "command",
            "3",
            "0 B",
            "0 B",
        ]
        assert "4 sessions" in screen.status_text
        await pilot.press("down")
        assert screen.selected is not None and screen.selected.kind == "command"
        details = str(screen.details.content)
        assert "Exit       3" in details and "dev-web-1" in details
        await pilot.press("d")
        assert not screen.details.display
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.fleet


async def test_search_box_filters(app: SsmtuiApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_history(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"kind:tunnel")
        await settle(app, pilot)
        assert names(screen) == ["db-1:tunnel"]
        assert screen.details.display  # "d" went to the box, not to the details toggle
        await pilot.press("backspace", *"hc")
        await pilot.pause()
        assert app.screen is screen and screen.filter_input.value == "kind:tunnehc"
        screen.set_filter("instance:web-1")
        await settle(app, pilot)
        assert names(screen) == ["web-1:command", "web-1:shell"]
        screen.set_filter("since:2h")
        await settle(app, pilot)
        assert names(screen) == ["old-box:shell", "web-1:command"]
        screen.set_filter("profile:dev exited")
        await settle(app, pilot)
        assert names(screen) == ["old-box:shell"]
        screen.set_filter("kind:telnet")
        await settle(app, pilot)
        assert "unknown kind" in screen.error_text
        assert names(screen) == ["old-box:shell"]  # the last valid search stays
        screen.set_filter("nothing-matches-this")
        await settle(app, pilot)
        assert screen.records == [] and "no sessions match" in screen.status_text
        assert screen.error_text == ""
        await pilot.press("escape")  # clears the box
        await settle(app, pilot)
        assert len(screen.records) == 4


async def test_relaunch_posts_the_intents(
    app: SsmtuiApp, calls: list[tuple[str, Instance]]
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_history(app, pilot)
        await pilot.press("down", "enter")  # the command on web-1 -> connect
        await settle(app, pilot)
        assert calls == [("connect", WEB)]
        assert app.screen is app.fleet  # the history got out of the way

        screen = await open_history(app, pilot)
        await pilot.press("down", "down", "c")  # the tunnel on db-1 -> forward
        await settle(app, pilot)
        assert calls[-1] == ("forward", DB)

        screen = await open_history(app, pilot)
        await pilot.press("c")  # old-box is not in the fleet any more
        await settle(app, pilot)
        assert app.screen is screen and len(calls) == 2
        assert any("not in the current fleet" in n.message for n in app._notifications)


async def test_transcript_replay_shows_text(app: SsmtuiApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_history(app, pilot)
        await pilot.press("p")  # the newest row has no transcript
        await pilot.pause()
        assert app.screen is screen
        assert any("No transcript" in n.message for n in app._notifications)
        await pilot.press("down", "down", "down", "p")  # the oldest row has one
        await pilot.pause()
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        await pilot.press("space")  # skip the pacing
        for _ in range(50):
            if replay.view.finished:
                break
            await pilot.pause(0.02)
        assert replay.view.finished
        text = replay.view.text
        assert "ubuntu@web-1:~$ uname -a\nLinux web-1 6.1.0 x86_64\n" in text
        assert "\x1b" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_palette_entry_and_history_off(app: SsmtuiApp, tmp_path: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        provider = FleetCommands(app.fleet)
        hits = [h async for h in provider.discover() if h.text == "Show history"]
        assert len(hits) == 1
        result = hits[0].command()  # the palette awaits what a command returns
        if inspect.isawaitable(result):
            await result
        await settle(app, pilot)
        assert isinstance(app.screen, HistoryScreen)
        assert ("h", "History", "app.history") in app.help_rows()

    off = create_app(StaticFleetSource(FleetResult((WEB,), {}, (DEV,))), refresh_interval=0)
    async with off.run_test(size=SIZE) as pilot:
        await settle(off, pilot)
        await pilot.press("h")
        await pilot.pause()
        assert off.screen is off.fleet
        assert any("history is off" in n.message for n in off._notifications)
