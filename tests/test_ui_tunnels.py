"""Tunnels from the app, against the REAL demo fleet: the form, live counters, stop/restart,
presets and the palette. Bytes go through a real local listener, the data channel and the
simulated agent to a local TCP echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.widgets import Input

from ssmtui.aws.clients import demo_clients
from ssmtui.config import TunnelPreset
from ssmtui.models import FleetScope
from ssmtui.services import SessionService
from ssmtui.ui.app import SsmtuiApp, create_app
from ssmtui.ui.screens.tunnels import TunnelsScreen
from ssmtui.ui.source import AwsFleetSource
from ssmtui.ui.tunnel_book import TunnelEntry
from ssmtui.ui.widgets.tunnel_form import PresetPicker, TunnelForm, parse_tunnel_form
from ssmtui.ui.workbench_commands import WorkbenchCommands
from tests.sim_harness import aws_env, running_sim, tcp_server  # noqa: F401  (aws_env: autouse)

pytestmark = pytest.mark.timeout(60)
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]


@asynccontextmanager
async def tunnel_app(
    tmp_path: Path, presets: Sequence[TunnelPreset] = ()
) -> AsyncIterator[tuple[SsmtuiApp, object]]:
    async with running_sim(tmp_path) as sim:
        clients = demo_clients(sim.server)
        try:
            app = create_app(
                AwsFleetSource(clients, SCOPES),
                refresh_interval=0,
                services=SessionService(clients),
                tunnel_presets=presets,
            )
            async with app.run_test(size=(160, 40)) as pilot:
                await until(pilot, lambda: app.fleet.fleet_loaded, "the fleet")
                yield app, pilot
        finally:
            await clients.aclose()


async def until(pilot: object, cond: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def echo(port: int, payload: bytes) -> bytes:
    """Send ``payload`` to 127.0.0.1:``port`` from outside the app; read the echo."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 20)
    finally:
        writer.close()


async def open_form(app: SsmtuiApp, pilot: object, name: str = "web-dev-1") -> TunnelForm:
    if app.workbench is not None and app.screen is not app.fleet:
        await app.workbench.show_fleet()
    app.fleet.set_filter(name)
    await pilot.pause()  # type: ignore[attr-defined]
    app.fleet.table.focus()
    await pilot.press("f")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, TunnelForm), "the form")
    form = app.screen
    assert isinstance(form, TunnelForm) and form.instance.display_name == name
    return form


def fill(form: TunnelForm, **values: str) -> None:
    for field, value in values.items():
        form.query_one(f"#{field.replace('_', '-')}", Input).value = value


def test_form_validation_is_one_line() -> None:
    assert parse_tunnel_form("i-1", "0", "99999", "", "") == (
        "Remote port must be a number from 1 to 65535."
    )
    assert parse_tunnel_form("i-1", "70000", "80", "", "127.0.0.1") == (
        "Local port must be a number from 0 to 65535 (0 picks a free port)."
    )
    assert "not a host name" in str(parse_tunnel_form("i-1", "0", "80", "bad host!", ""))
    assert "must be an IP address" in str(parse_tunnel_form("i-1", "0", "80", "", "nowhere"))
    spec = parse_tunnel_form("i-1", "", "5432", "db.internal", "")
    assert not isinstance(spec, str)
    assert (spec.local_port, spec.remote_port, spec.remote_host, spec.bind_host) == (
        0,
        5432,
        "db.internal",
        "127.0.0.1",
    )


async def test_tunnel_from_the_form_moves_bytes_and_stops_and_restarts(tmp_path: Path) -> None:
    async with tcp_server() as echo_port, tunnel_app(tmp_path) as (app, pilot):
        bench = app.workbench
        assert bench is not None

        # bad input: one line in the form, the form stays
        form = await open_form(app, pilot)
        await pilot.press(*"99999", "enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: form.message, "the error")
        assert form.message == "Remote port must be a number from 1 to 65535."
        # a port already in use: the listener error, still in the form
        fill(form, remote_port=str(echo_port), local_port=str(echo_port))
        await pilot.press("enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: "cannot listen" in form.message, "the bind error")
        assert "\n" not in form.message and app.screen is form and not len(bench.book)
        # anything but loopback asks again
        fill(form, local_port="0", bind_address="0.0.0.0")
        await pilot.press("enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: "other machines" in form.message, "the warning")
        assert app.screen is form and not len(bench.book)

        fill(form, bind_address="127.0.0.1")
        await pilot.press("enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, TunnelsScreen), "the tunnels screen")
        entry = next(iter(bench.book))
        await until(pilot, lambda: entry.state == "up", "the tunnel to come up")
        assert entry.stats.mode == "mux" and entry.local_port > 0
        assert entry.remote == f"web-dev-1 → {echo_port}"

        payload = b"through the tunnel " * 500
        assert await echo(entry.local_port, payload) == payload
        assert await echo(entry.local_port, b"again") == b"again"
        await until(
            pilot,
            lambda: entry.stats.bytes_out >= len(payload) and entry.stats.bytes_in >= len(payload),
            "the counters",
        )
        table = app.screen.table  # type: ignore[attr-defined]
        await until(pilot, lambda: str(table.get_cell(entry.key, "conns")).endswith("/2"), "conns")
        assert str(table.get_cell(entry.key, "in")) != "0 B"
        assert str(table.get_cell(entry.key, "local")) == f"127.0.0.1:{entry.local_port}"
        await until(pilot, lambda: max(entry.rates) > 0, "a throughput sample")

        # s stops (connections refused), s starts again on the same port, r restarts
        port = entry.local_port
        await pilot.press("s")  # type: ignore[attr-defined]
        await until(pilot, lambda: entry.state == "stopped", "stopped")
        with pytest.raises(OSError):
            await echo(port, b"x")
        await pilot.press("s")  # type: ignore[attr-defined]
        await until(pilot, lambda: entry.state == "up", "started again")
        assert entry.local_port == port and await echo(port, b"back") == b"back"
        await pilot.press("r")  # type: ignore[attr-defined]
        await until(pilot, lambda: entry.state == "up" and entry.stats.bytes_out == 0, "restart")
        assert entry.local_port == port and await echo(port, b"restarted") == b"restarted"

        # two at once; the palette can stop one
        second = await bench.start_tunnel(
            entry.instance, entry.spec.__class__(entry.instance.instance_id, 0, echo_port)
        )
        await until(pilot, lambda: second.state == "up", "the second tunnel")
        assert await echo(second.local_port, b"two") == b"two"
        hits = [h async for h in WorkbenchCommands(app.screen).search("stop tunnel")]
        stop = [h for h in hits if h.text == f"Stop tunnel {second.name}"]
        assert len(stop) == 1
        await stop[0].command()  # type: ignore[misc]
        assert second.state == "stopped" and entry.state == "up"
        await pilot.press("x")  # removes the highlighted (first) tunnel
        await until(pilot, lambda: entry.key not in bench.book.entries, "removed")


async def test_presets_start_from_the_picker(tmp_path: Path) -> None:
    async with tcp_server() as echo_port:
        presets = [
            TunnelPreset("echo", "web-dev-1", remote_port=echo_port, profile="dev"),
            TunnelPreset("nowhere", "no-such-instance", remote_port=80),
        ]
        async with tunnel_app(tmp_path, presets) as (app, pilot):
            bench = app.workbench
            assert bench is not None
            await pilot.press("t")  # type: ignore[attr-defined]
            assert isinstance(app.screen, TunnelsScreen)
            assert app.screen.query_one("#tunnels-empty").display
            await pilot.press("p")  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, PresetPicker), "the picker")
            await pilot.press("enter")  # type: ignore[attr-defined]
            await until(pilot, lambda: len(bench.book) == 1, "the preset tunnel")
            entry: TunnelEntry = next(iter(bench.book))
            assert entry.name == "echo"
            await until(pilot, lambda: entry.state == "up", "the preset to come up")
            assert await echo(entry.local_port, b"preset") == b"preset"

            assert await bench.start_preset(presets[1]) is None  # unknown target: one line
            await until(
                pilot,
                lambda: any("no-such-instance" in n.message for n in app._notifications),
                "the error",
            )
            notes = [n.message for n in app._notifications if "no-such" in n.message]
            assert "\n" not in notes[0] and "no instance matches" in notes[0]
            titles = {h.text async for h in WorkbenchCommands(app.screen).discover()}
            assert {"Start tunnel preset echo", "Stop tunnel echo", "Show fleet"} <= titles
