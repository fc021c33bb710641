"""App-level behaviour that needs no AWS endpoint (in-memory sources), and the screenshot script."""

from __future__ import annotations

import asyncio
import html
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssmtui.errors import ConfigError, CredentialsError, SsmtuiError
from ssmtui.models import FleetResult, FleetScope, Instance
from ssmtui.sim.fleet import default_fleet
from ssmtui.ui.app import create_app
from ssmtui.ui.source import FleetSource, ScopeDone, StaticFleetSource

ROOT = Path(__file__).resolve().parent.parent
SIZE = (160, 48)
DEV = FleetScope("dev", "us-east-1")
PROD = FleetScope("prod", "eu-west-1")


def fleet(n: int, scope: FleetScope = DEV) -> tuple[Instance, ...]:
    return tuple(
        Instance(
            f"i-{k:017x}",
            name=f"web-{k:03d}",
            ping_status="Online",
            profile=scope.profile,
            region=scope.region,
            registered=True,
        )
        for k in range(n)
    )


async def test_loading_state_then_rows() -> None:
    source = StaticFleetSource(FleetResult(fleet(3), {}, (DEV,)), delay=2.0)
    app = create_app(source, refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.fleet
        for _ in range(100):  # a loaded machine may start the worker late
            if screen.fleet_loading:
                break
            await pilot.pause(0.02)
        assert screen.fleet_loading and screen.status.busy
        assert screen.table.empty_message == "Loading the fleet…"
        assert screen.status.left_text.startswith("loading dev/us-east-1…")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.status.busy and screen.table.row_count == 3


async def test_a_new_load_cancels_the_running_one() -> None:
    source = StaticFleetSource(FleetResult(fleet(3), {}, (DEV,)), delay=1.5)
    app = create_app(source, refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        await pilot.press("r")  # while the first load is still waiting
        await pilot.pause(0.05)
        screen = app.fleet
        assert screen.fleet_loading and screen.status.busy  # the cancelled load said nothing
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert source.calls == 2 and screen.load_count == 1
        assert not screen.fleet_loading and not screen.status.busy
        assert screen.table.row_count == 3


async def test_every_scope_failing_is_explained_not_empty() -> None:
    err = CredentialsError(
        "dev/us-east-1: the AWS credentials have expired", hint="run: aws sso login --profile dev"
    )
    err2 = SsmtuiError("prod/eu-west-1: could not connect to the endpoint")
    source = StaticFleetSource(FleetResult((), {DEV: err, PROD: err2}, (DEV, PROD)))
    app = create_app(source, refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.fleet
        assert screen.table.row_count == 0
        assert "Could not list any profile/region" in screen.table.empty_message
        lines = screen.query_one("#scope-errors").lines  # type: ignore[attr-defined]
        assert lines == [
            "dev/us-east-1: the AWS credentials have expired — run: aws sso login --profile dev",
            "prod/eu-west-1: could not connect to the endpoint",
        ]
        assert len(app._notifications) == 2


class ExplodingSource:
    """A source with a bug: list_fleet raises instead of reporting per-scope errors."""

    def __init__(self) -> None:
        self.scopes = (DEV,)

    async def list_fleet(self, on_scope: ScopeDone | None = None) -> FleetResult:
        raise RuntimeError("kaboom")


async def test_a_broken_source_does_not_kill_the_screen() -> None:
    source: FleetSource = ExplodingSource()
    assert isinstance(source, FleetSource)
    app = create_app(source, refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.fleet
        assert "kaboom" in screen.table.empty_message
        assert any("kaboom" in n.message for n in app._notifications)
        await pilot.press("r")  # still alive, still retrying
        await app.workers.wait_for_complete()
        assert app.is_running


class StreamingSource:
    """Streams DEV's rows in growing partial results (PROD stays pending), one step per
    ``advance``; then both scopes' final results."""

    def __init__(self) -> None:
        self.scopes = (DEV, PROD)
        self.steps: asyncio.Queue[int] = asyncio.Queue()

    async def list_fleet(self, on_scope: ScopeDone | None = None) -> FleetResult:
        assert on_scope is not None
        rows = fleet(40)
        for n in (5, 8, 20):  # 8 is not double 5: not re-shown; 20 is
            await self.steps.get()
            on_scope(DEV, FleetResult(rows[:n], {}, (DEV,), partial=True))
        await self.steps.get()
        on_scope(DEV, FleetResult(rows, {}, (DEV,)))
        on_scope(PROD, FleetResult((), {}, (PROD,)))
        return FleetResult(rows, {}, (DEV, PROD))


async def test_streamed_rows_keep_coming_while_scopes_are_pending() -> None:
    source = StreamingSource()
    app = create_app(source, refresh_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        shown = []
        for _ in range(4):
            source.steps.put_nowait(1)
            for _ in range(20):
                await pilot.pause(0.02)
            shown.append(app.fleet.table.row_count)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert shown == [5, 5, 20, 40], shown
        assert app.fleet.fleet_loaded


async def test_unknown_theme_is_a_config_error_and_known_theme_applies() -> None:
    source = StaticFleetSource(FleetResult(fleet(1), {}, (DEV,)))
    with pytest.raises(ConfigError, match="unknown theme"):
        create_app(source, theme="no-such-theme")
    app = create_app(source, theme="nord", refresh_interval=0)
    assert app.theme == "nord"


async def test_wide_rows_scroll_horizontally_and_clicks_select() -> None:
    source = StaticFleetSource(FleetResult(fleet(60), {}, (DEV,)))
    seen: list[Instance] = []

    async def on_connect(inst: Instance) -> None:
        seen.append(inst)

    app = create_app(source, refresh_interval=0, on_connect=on_connect)
    async with app.run_test(size=(60, 20)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.fleet.table
        assert table.virtual_size.width > table.size.width  # narrower than the columns
        await pilot.press("right", "right")
        assert table.scroll_x > 0
        await pilot.press("end")
        assert table.cursor_row == 59 and table.scroll_y > 0
        await pilot.press("home")
        await pilot.click(type(table), offset=(3, 3))  # header is line 0: row 2
        assert table.cursor_row == 2
        await pilot.click(type(table), offset=(3, 3), times=2)
        await app.workers.wait_for_complete()
        assert [i.display_name for i in seen] == ["web-002"]


def test_screenshot_script_writes_the_fleet_svg(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    res = subprocess.run(
        [sys.executable, "-m", "ssmtui.ui.screenshots", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    svg_path = tmp_path / "fleet.svg"
    names = (
        "fleet.svg",
        "shell.svg",
        "tunnels.svg",
        "history.svg",
        "sessions.svg",
        "doctor.svg",
    )
    svgs = [line for line in res.stdout.split() if line.endswith(".svg")]
    assert svgs == [str(tmp_path / name) for name in names]
    history = html.unescape((tmp_path / "history.svg").read_text(encoding="utf-8"))
    assert "command" in history and "tunnel" in history
    svg = html.unescape(svg_path.read_text(encoding="utf-8")).replace("\xa0", " ")
    assert svg.startswith("<svg")
    for inst in default_fleet().instances[:5]:
        assert inst.name in svg
    assert "Tags (" in svg  # the details panel is open in the shot
    shell = html.unescape((tmp_path / "shell.svg").read_text(encoding="utf-8")).replace("\xa0", " ")
    assert "ssm-user@web-dev-1" in shell and ">42 " in shell  # a shell tab after a command
    tunnels = html.unescape((tmp_path / "tunnels.svg").read_text(encoding="utf-8"))
    assert "web-dev-1 → " in tunnels.replace("\xa0", " ") and "smux" in tunnels
    sessions = html.unescape((tmp_path / "sessions.svg").read_text(encoding="utf-8"))
    assert "alice@example.com" in sessions.replace("\xa0", " ")
    doctor = html.unescape((tmp_path / "doctor.svg").read_text(encoding="utf-8"))
    assert "AppServerRole" in doctor.replace("\xa0", " ")
