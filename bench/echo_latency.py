"""Keystroke echo latency through a shell session (demo fleet in a separate process).

One byte goes out, the remote bash (readline, in a real pty) echoes it, and the sample is the
time until the echo is back. Keys alternate ``x`` and DEL so the line never grows. Measured, in
the same run and on the same (paced, by default) agent:

* the minimal client (:mod:`bench.minclient`): the baseline;
* ssmtui's transport (``SessionService.open`` -> ``DataChannelConnection``): send with
  ``send_nowait`` as the shell tab does, echo taken from ``events()``;
* the app (headless Textual, a shell tab through the Workbench): a key event enters through
  the driver and the sample ends at the first frame that shows the echoed cursor move;
* its baseline, the minimal TUI: the minimal client inside a bare Textual app whose one widget
  redraws when the echo is back (the same key path in, the same frame clock out, none of
  ssmtui's code): what any Textual client pays for a key and a frame.

The minimal client and the transport take turns in blocks of 50. Reported: p50/p99 and what
ssmtui adds over its baseline (the transport over the minimal client, the app over the minimal
TUI; target: <= 1 ms at p99).

    python -m bench.echo_latency [--samples 500] [--warmup 50] [--unpaced] [--no-app]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import (
    FrameClock,
    instance,
    percentile,
    remote_demo,
    remote_services,
    report,
    verdict,
)
from bench.minclient import MinClient

TARGET_MS = 1.0  # added at p99
KEYS = ((b"x", b"x", "x"), (b"\x7f", b"\x08", "backspace"))  # sent, expected echo, key name
BLOCK = 50
FLOOR = "minimal TUI (key -> frame)"


class Probe:
    """Collects a session's output with arrival times; one echo at a time."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.last = 0.0
        self.event = asyncio.Event()
        #: Called after each arrival (the minimal TUI redraws from it).
        self.listener: Callable[[], None] | None = None

    def on_output(self, arrived: float, data: bytes) -> None:
        """Output callback (arrival ``perf_counter``, bytes)."""
        self.buf += data
        self.last = arrived
        self.event.set()
        if self.listener is not None:
            self.listener()

    async def wait_for(self, needle: bytes, timeout: float = 10.0) -> None:
        """Until ``needle`` is in the collected output."""
        async with asyncio.timeout(timeout):
            while needle not in self.buf:
                self.event.clear()
                await self.event.wait()

    async def settle(self, quiet: float = 0.2) -> None:
        """Until no output arrived for ``quiet`` seconds."""
        while True:
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), quiet)
            except TimeoutError:
                return

    async def echo(
        self, send: Callable[[bytes], Awaitable[None]], key: bytes, expect: bytes
    ) -> float:
        """Seconds from sending ``key`` to the arrival of the output completing ``expect``."""
        self.buf.clear()
        t0 = time.perf_counter()
        await send(key)
        await self.wait_for(expect, 5.0)
        return self.last - t0


async def _open_min(
    clients: Any, inst: Any
) -> tuple[Probe, Callable[[bytes], Awaitable[None]], Any]:
    from ssmtui.protocol import payloads as pl
    from ssmtui.protocol.frames import PayloadType

    probe = Probe()
    client = await MinClient.open(clients, inst)
    client.on_output = probe.on_output
    await client.wait_ready()
    await client.send(PayloadType.SIZE, pl.encode_size(80, 24))

    async def send(data: bytes) -> None:
        await client.send(PayloadType.OUTPUT, data)

    return probe, send, client.aclose


async def _open_ours(svc: Any, inst: Any) -> tuple[Probe, Callable[[bytes], Awaitable[None]], Any]:
    from ssmtui.protocol import payloads as pl
    from ssmtui.protocol.events import SessionReady, StreamData
    from ssmtui.protocol.frames import PayloadType
    from ssmtui.services import SessionKind

    probe = Probe()
    conn = await svc.open(inst, SessionKind.shell(), record=False)
    ready = asyncio.Event()

    async def pump() -> None:
        async for ev in conn.events():
            if isinstance(ev, StreamData) and ev.payload_type == PayloadType.OUTPUT:
                probe.on_output(time.perf_counter(), ev.data)
            elif isinstance(ev, SessionReady):
                ready.set()

    task = asyncio.get_running_loop().create_task(pump())
    await asyncio.wait_for(ready.wait(), 30)
    conn.send_nowait(PayloadType.SIZE, pl.encode_size(80, 24))

    async def send(data: bytes) -> None:
        conn.send_nowait(PayloadType.OUTPUT, data)

    async def close() -> None:
        await conn.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await svc.terminate(inst, conn.session_id)

    return probe, send, close


async def _samples(
    probe: Probe, send: Callable[[bytes], Awaitable[None]], n: int, gap: float, start: int = 0
) -> list[float]:
    out = []
    for i in range(start, start + n):
        key, expect, _ = KEYS[i % 2]
        out.append(await probe.echo(send, key, expect))
        await asyncio.sleep(gap)
    return out


async def _app_samples(svc: Any, inst: Any, samples: int, warmup: int, gap: float) -> list[float]:
    """Key event in through the driver -> the frame showing the echo (headless app)."""
    from textual import events

    from ssmtui.models import FleetResult
    from ssmtui.ui.app import create_app
    from ssmtui.ui.source import StaticFleetSource

    source = StaticFleetSource(FleetResult((inst,), {}, (inst.scope,)))
    app = create_app(source, refresh_interval=0, services=svc)
    clock = FrameClock(app)
    out: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.workbench is not None
        tab = await app.workbench.open_shell(inst)
        async with asyncio.timeout(30):
            while tab.state != "ready" or not any("$" in line for line in _lines(tab)):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await pilot.pause()
        screen = tab.terminal.vt.screen
        home = screen.cursor.x
        driver = app._driver
        assert driver is not None
        for i in range(warmup + samples):
            _, _, name = KEYS[i % 2]
            want = home + 1 if name == "x" else home
            event = events.Key(name, "x" if name == "x" else None)
            event.set_sender(app)
            t0 = time.perf_counter()
            driver.send_message(event)
            shown = await clock.wait_for(_cursor_at(screen, want), 5.0)
            if i >= warmup:
                out.append(shown - t0)
            await asyncio.sleep(gap)
        await app.workbench.aclose()
    return out


async def _floor_samples(
    clients: Any, inst: Any, samples: int, warmup: int, gap: float
) -> list[float]:
    """The minimal TUI: key in through the driver -> minimal client -> echo -> a bare widget's
    redraw -> frame (the app row's baseline)."""
    from rich.segment import Segment
    from textual import events
    from textual.app import App, ComposeResult
    from textual.strip import Strip
    from textual.widget import Widget

    probe, send, close = await _open_min(clients, inst)
    await probe.wait_for(b"$ ", 15.0)
    await probe.settle()

    class Line(Widget):
        DEFAULT_CSS = "Line { height: 1; }"
        count = 0

        def render_line(self, y: int) -> Strip:
            return Strip([Segment(f"echoes: {self.count}" if y == 0 else "")])

    line = Line()
    expect = [b""]
    keys = {name: sent for sent, _, name in KEYS}

    class FloorApp(App[None]):
        def compose(self) -> ComposeResult:
            yield line

        async def on_key(self, event: events.Key) -> None:
            await send(keys[event.key])

    def echoed() -> None:
        if expect[0] and expect[0] in probe.buf:
            expect[0] = b""
            line.count += 1
            line.refresh()

    probe.listener = echoed
    app = FloorApp()
    clock = FrameClock(app)
    out: list[float] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            driver = app._driver
            assert driver is not None
            for i in range(warmup + samples):
                _, echo, name = KEYS[i % 2]
                probe.buf.clear()
                expect[0] = echo
                want = line.count + 1

                def drawn(w: int = want) -> bool:
                    return line.count >= w

                event = events.Key(name, "x" if name == "x" else None)
                event.set_sender(app)
                t0 = time.perf_counter()
                driver.send_message(event)
                shown = await clock.wait_for(drawn, 5.0)
                if i >= warmup:
                    out.append(shown - t0)
                await asyncio.sleep(gap)
    finally:
        await close()
    return out


def _cursor_at(screen: Any, column: int) -> Callable[[], bool]:
    return lambda: bool(screen.cursor.x == column)


def _lines(tab: Any) -> list[str]:
    with contextlib.suppress(Exception):
        return list(tab.terminal.display_lines())
    return []


def _row(name: str, values: list[float], base: list[float] | None) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    row: dict[str, Any] = {
        "client": name,
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
    }
    if base is not None:
        b = [v * 1000 for v in base]
        row["added_p50_ms"] = row["p50_ms"] - percentile(b, 50)
        row["added_p99_ms"] = row["p99_ms"] - percentile(b, 99)
        row["target"] = f"added p99 <= {TARGET_MS:g} ms"
        row["verdict"] = verdict(row["added_p99_ms"], TARGET_MS, higher_is_better=False)
    return row


async def main(
    samples: int, warmup: int, pace: bool, app: bool, gap: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """Measure every client against one simserver; return rows and notes."""
    async with remote_demo(pace=pace) as demo, remote_services(demo) as (clients, svc):
        inst = await instance(clients)
        clients_ = {
            "minimal client": await _open_min(clients, inst),
            "ssmtui transport": await _open_ours(svc, inst),
        }
        results: dict[str, list[float]] = {name: [] for name in clients_}
        try:
            for probe, send, _ in clients_.values():
                await probe.wait_for(b"$ ", 15.0)
                await probe.settle()
                await _samples(probe, send, warmup, gap)
            done, turn = 0, 0
            while done < samples:
                n = min(BLOCK, samples - done)
                names = list(clients_) if turn % 2 == 0 else list(clients_)[::-1]
                for name in names:
                    probe, send, _ = clients_[name]
                    results[name] += await _samples(probe, send, n, gap)
                done += n
                turn += 1
        finally:
            for _, _, close in clients_.values():
                await close()
        if app:
            results[FLOOR] = await _floor_samples(clients, inst, samples, warmup, gap)
            results["ssmtui app (key -> frame)"] = await _app_samples(
                svc, inst, samples, warmup, gap
            )
    bases = {"ssmtui transport": "minimal client", "ssmtui app (key -> frame)": FLOOR}
    rows = [
        _row(name, vals, results[bases[name]] if name in bases else None)
        for name, vals in results.items()
    ]
    notes = [
        f"{'paced' if pace else 'unpaced'} agent; {samples} samples after {warmup} warm-up, "
        f"{gap * 1000:g} ms between keys; keys alternate 'x' and DEL",
    ]
    if app:
        notes.append(
            "the app row is measured against the minimal TUI (the minimal client in a bare "
            "Textual app: the same key path and frame clock); frames are encoded to escape "
            "sequences as a real terminal driver would"
        )
    return rows, notes


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command line entry point; returns the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=500, help="samples per client")
    ap.add_argument("--warmup", type=int, default=50, help="warm-up samples per client")
    ap.add_argument("--gap", type=float, default=0.005, help="seconds between keys")
    ap.add_argument("--unpaced", action="store_true", help="unpaced agent (default: paced)")
    ap.add_argument("--no-app", action="store_true", help="skip the headless app row")
    args = ap.parse_args(argv)
    rows, notes = asyncio.run(
        main(args.samples, args.warmup, not args.unpaced, not args.no_app, args.gap)
    )
    cols = [
        "client",
        "n",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "added_p50_ms",
        "added_p99_ms",
        "target",
        "verdict",
    ]
    report("echo_latency", rows, cols, notes)
    return rows


if __name__ == "__main__":
    run()
