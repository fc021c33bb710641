"""Save SVG screenshots of the UI on the demo fleet: ``python -m ssmtui.ui.screenshots [DIR]``.

Runs the real stack headless (loopback demo AWS endpoint -> aws clients -> list_fleet -> the app)
and writes ``DIR/fleet.svg`` (default ``screenshots/``), then, with the demo agents attached,
``DIR/shell.svg`` (a shell tab after a command), ``DIR/tunnels.svg`` (a tunnel carrying
bytes to a local echo server), ``DIR/history.svg``, ``DIR/sessions.svg`` (sessions open in the
fleet) and ``DIR/doctor.svg``; PNG copies too when ``rsvg-convert`` is installed. Used by the
docs and by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ssmtui.ui.app import create_app
from ssmtui.ui.source import demo_fleet_source

__all__ = ["main", "take_screenshots"]

SIZE = (160, 48)


def _loopback_env() -> None:
    """Keep proxy settings from routing the loopback demo endpoint through a proxy."""
    hosts = ["127.0.0.1", "localhost", "::1"]
    for name in ("NO_PROXY", "no_proxy"):
        current = [h for h in os.environ.get(name, "").split(",") if h]
        os.environ[name] = ",".join(dict.fromkeys(current + hosts))


async def take_screenshots(out_dir: Path, size: tuple[int, int] = SIZE) -> list[Path]:
    """Render the fleet screen (details panel open) and save it as ``out_dir/fleet.svg``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    async with demo_fleet_source() as source:
        app = create_app(source, refresh_interval=0, title="ssmtui", subtitle="demo fleet")
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "down", "d")
            for _ in range(100):  # the compositor lays the panel out on its next refresh
                await pilot.pause(0.02)
                if app.fleet.details.region.width:
                    break
            path = out_dir / "fleet.svg"
            path.write_text(app.export_screenshot(title="ssmtui — fleet"), encoding="utf-8")
            written.append(path)
    written.extend(await _session_screenshots(out_dir, size))
    return written


SHELL_COMMAND = (
    "echo $((6*7)); printf '\\033[1;32m%s\\033[0m \\033[36m%s\\033[0m\\n' colours work;"
    " ls --color=always -F /"
)


async def _until(pilot: Any, cond: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await pilot.pause(0.05)


async def _session_screenshots(out_dir: Path, size: tuple[int, int]) -> list[Path]:
    """``shell.svg`` and ``tunnels.svg``: the demo fleet with its agents, through the real stack."""
    import tempfile

    from ssmtui.config import Config
    from ssmtui.runtime import AppContext, open_runtime
    from ssmtui.services import SessionKind, SessionService
    from ssmtui.store.history import History
    from ssmtui.transport.proxy import run_command
    from ssmtui.transport.tunnel import TunnelSpec
    from ssmtui.ui.source import AwsFleetSource

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    written: list[Path] = []
    echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = echo_server.sockets[0].getsockname()[1]
    scratch = tempfile.TemporaryDirectory()
    history = History(Path(scratch.name) / "history.sqlite3")
    async with open_runtime(AppContext(Config(), demo=True)) as rt:
        services = SessionService(rt.clients, history=history)
        app = create_app(
            AwsFleetSource(rt.clients, rt.scopes),
            refresh_interval=0,
            title="ssmtui",
            subtitle="demo fleet",
            services=services,
            history=history,
        )
        async with app.run_test(size=size) as pilot:
            bench = app.workbench
            assert bench is not None
            await _until(pilot, lambda: app.fleet.fleet_loaded)
            web = next(i for i in app.fleet.index.instances if i.display_name == "web-dev-1")
            tab = await bench.open_shell(web)
            await _until(
                pilot, lambda: any(ln.endswith("$") for ln in tab.terminal.display_lines())
            )
            await pilot.press(*SHELL_COMMAND, "enter")
            await _until(pilot, lambda: "42" in tab.terminal.display_lines())
            await pilot.pause(0.5)
            path = out_dir / "shell.svg"
            path.write_text(app.export_screenshot(title="ssmtui — shell tab"), encoding="utf-8")
            written.append(path)

            entry = await bench.start_tunnel(web, TunnelSpec(web.instance_id, 0, echo_port))
            await _until(pilot, lambda: entry.state == "up")
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", entry.local_port)
                writer.write(b"x" * 200_000)
                await reader.readexactly(200_000)
                writer.close()
                await pilot.pause(1.0)
            await bench.show_tunnels(entry.key)
            await pilot.pause(0.3)
            path = out_dir / "tunnels.svg"
            path.write_text(app.export_screenshot(title="ssmtui — tunnels"), encoding="utf-8")
            written.append(path)

            for command in ("uptime", "exit 3"):
                conn = await services.open(web, SessionKind.command(command))
                await run_command(conn, lambda _b: None, lambda _b: None)
            await bench.show_fleet()
            await pilot.pause(0.2)
            await app.run_action("history")
            await pilot.pause(0.5)
            path = out_dir / "history.svg"
            path.write_text(app.export_screenshot(title="ssmtui — history"), encoding="utf-8")
            written.append(path)
            written.extend(await _pane_screenshots(app, pilot, out_dir))
    echo_server.close()
    scratch.cleanup()
    return written


async def _pane_screenshots(app: Any, pilot: Any, out_dir: Path) -> list[Path]:
    """``sessions.svg`` (sessions open in the fleet, anyone's) and ``doctor.svg`` (why
    instances are missing), over the app of :func:`_session_screenshots`."""
    from ssmtui.ui.screens.active_sessions import ActiveSessionsScreen
    from ssmtui.ui.screens.doctor import DoctorScreen

    written: list[Path] = []
    await pilot.press("escape")
    await pilot.pause(0.2)
    await app.run_action("active_sessions")
    await _until(pilot, lambda: getattr(app.screen, "load_count", 0) > 0)
    assert isinstance(app.screen, ActiveSessionsScreen)
    await pilot.pause(0.3)
    path = out_dir / "sessions.svg"
    path.write_text(app.export_screenshot(title="ssmtui — active sessions"), encoding="utf-8")
    written.append(path)
    await pilot.press("escape")
    await pilot.pause(0.2)
    app.open_doctor()
    await _until(pilot, lambda: getattr(app.screen, "loads", 0) > 0)
    screen = app.screen
    assert isinstance(screen, DoctorScreen)
    keys = list(screen.rows)
    pick = next(
        (
            k
            for k, d in screen.instance_rows.items()
            if d.instance.display_name == "orphan-no-policy"
        ),
        keys[0],
    )
    screen.table.move_cursor(row=keys.index(pick))
    await pilot.pause(0.3)
    path = out_dir / "doctor.svg"
    path.write_text(app.export_screenshot(title="ssmtui — doctor"), encoding="utf-8")
    written.append(path)
    return written


def to_png(svgs: Sequence[Path]) -> list[Path]:
    """PNG copies of the SVGs when ``rsvg-convert`` (Debian's librsvg2-bin) is installed."""
    import shutil
    import subprocess

    tool = shutil.which("rsvg-convert")
    if tool is None:
        return []
    pngs = []
    for svg in svgs:
        png = svg.with_suffix(".png")
        subprocess.run([tool, "-o", str(png), str(svg)], check=True, timeout=60)
        pngs.append(png)
    return pngs


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m ssmtui.ui.screenshots", description=__doc__)
    parser.add_argument("out_dir", nargs="?", default="screenshots", type=Path)
    args = parser.parse_args(argv)
    _loopback_env()
    svgs = asyncio.run(take_screenshots(args.out_dir))
    for path in [*svgs, *to_png(svgs)]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
