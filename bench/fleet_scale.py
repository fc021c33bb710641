"""A 10,000-instance fleet in the UI (headless Textual), and listing it.

* baseline: an empty Textual app's first frame, and the ssmtui app's with no instances;
* static: ``StaticFleetSource`` over ``generate_fleet(N, seed=1)`` converted to Instances:
  time from creating the app to its first frame, to the first frame showing rows, and to all
  rows; then filter keystroke -> repaint (30 keys typed into the filter: time from the key
  to the first frame after the table was re-filtered; p50/p99) with the filter's own compute
  time (``FleetScreen.last_filter_seconds``) beside it;
* demo server: the same fleet served by :mod:`bench.simserver` in a separate process, listed
  by ``AwsFleetSource`` (real aiobotocore clients, created cold as at start-up): first frame,
  first rows (the first rows streamed in), all rows, and the worst event-loop stall while
  loading;
* ``aws.fleet.list_fleet`` alone against that server, cold and warm clients.

Frames are timestamped by wrapping the app's display hook (:class:`bench.common.FrameClock`).

    python -m bench.fleet_scale [--instances 10000] [--keys 30]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    CpuMeter,
    FrameClock,
    LoopLag,
    fleet_instances,
    percentile,
    remote_demo,
    report,
    settle,
)

SIZE = (160, 48)
#: 30 keystrokes into the filter: type, then delete, three times.
KEYS = [
    *"web",
    *["backspace"] * 3,
    *"db-prod",
    *["backspace"] * 7,
    *"linux",
    *["backspace"] * 5,
]


def _rows(app: Any) -> int:
    return int(app.fleet.table.row_count)


async def empty_app() -> float:
    """Seconds from constructing a trivial Textual app to its first frame."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Empty(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("empty")

    t0 = time.perf_counter()
    app = Empty()
    clock = FrameClock(app)
    first = clock.watch(lambda: True)
    async with app.run_test(size=SIZE):
        shown = await settle(first, 30)
    return shown - t0


async def load_app(source: Any, expected: int, keys: list[str]) -> dict[str, Any]:
    """Start the ssmtui app on ``source``; time first frame, first rows, all rows; then type
    ``keys`` into the filter and time each repaint."""
    from ssmtui.ui.app import create_app

    t0 = time.perf_counter()
    app = create_app(source, refresh_interval=0)
    clock = FrameClock(app)
    first = clock.watch(lambda: True)
    rows = clock.watch(lambda: _rows(app) > 0)
    done = clock.watch(lambda: app.fleet.fleet_loaded and _rows(app) >= expected)
    lag = LoopLag().start()
    out: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        shown = await settle(first, 60)
        out["first_frame_ms"] = (shown - t0) * 1000
        if expected:
            out["first_rows_ms"] = (await settle(rows, 120) - t0) * 1000
            loaded = await settle(done, 120)
            out["all_rows_ms"] = (loaded - t0) * 1000
            await lag.stop()
            out["max_stall_ms"] = max(lag.between(shown, loaded), default=0.0) * 1000
            out["rows"] = _rows(app)
        else:
            await app.workers.wait_for_complete()
            await lag.stop()
        if keys:
            out.update(await _type_filter(app, pilot, clock, keys))
    return out


async def _type_filter(app: Any, pilot: Any, clock: FrameClock, keys: list[str]) -> dict[str, Any]:
    screen = app.fleet
    count = [0]
    original = screen._refilter

    def counted(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        count[0] += 1

    screen._refilter = counted
    await pilot.press("slash")
    await pilot.pause()
    latencies: list[float] = []
    compute: list[float] = []
    for key in keys:
        shown = clock.watch(_more_than(count, count[0]))
        t0 = time.perf_counter()
        await pilot.press(key)
        latencies.append((await settle(shown, 30) - t0) * 1000)
        compute.append(screen.last_filter_seconds * 1000)
    return {
        "key_p50_ms": percentile(latencies, 50),
        "key_p99_ms": percentile(latencies, 99),
        "filter_p50_ms": percentile(compute, 50),
        "filter_p99_ms": percentile(compute, 99),
        "keys": len(keys),
    }


def _more_than(count: list[int], before: int) -> Callable[[], bool]:
    return lambda: count[0] > before


async def main(n: int, keys: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Every phase in one run; return rows and notes."""
    from ssmtui.aws.clients import demo_clients
    from ssmtui.aws.fleet import list_fleet
    from ssmtui.models import FleetResult, FleetScope
    from ssmtui.sim.fleet import generate_fleet
    from ssmtui.ui.source import AwsFleetSource, StaticFleetSource

    typed = (KEYS * (keys // len(KEYS) + 1))[:keys]
    rows: list[dict[str, Any]] = []
    empty = await empty_app() * 1000
    rows.append({"case": "empty Textual app (baseline)", "first_frame_ms": empty})

    fleet = generate_fleet(n, seed=1)
    scopes = tuple(FleetScope(p, r) for p in fleet.profiles for r in fleet.regions)
    t0 = time.perf_counter()
    instances = fleet_instances(fleet)
    convert_ms = (time.perf_counter() - t0) * 1000

    none = await load_app(StaticFleetSource(FleetResult((), {}, scopes)), 0, [])
    rows.append(
        {"case": "ssmtui app, no instances", **none, "vs_empty": none["first_frame_ms"] / empty}
    )

    static = await load_app(
        StaticFleetSource(FleetResult(tuple(instances), {}, scopes)), len(instances), typed
    )
    rows.append(
        {
            "case": f"ssmtui app, {len(instances)} static instances",
            **static,
            "vs_empty": static["first_rows_ms"] / empty,
        }
    )

    async with remote_demo(generate=n, seed=1) as demo:
        clients = demo_clients(demo)
        try:
            source = AwsFleetSource(clients, scopes)
            served = await load_app(source, len(instances), [])
            rows.append(
                {
                    "case": f"ssmtui app, demo server ({demo.instances} served)",
                    **served,
                    "vs_empty": served["first_rows_ms"] / empty,
                }
            )
        finally:
            await clients.aclose()
        for label in ("cold", "warm"):
            if label == "cold":
                clients = demo_clients(demo)
            with CpuMeter(demo.pid) as cpu:
                result = await list_fleet(clients, scopes)
            rows.append(
                {
                    "case": f"aws.fleet.list_fleet, {label} clients",
                    "all_rows_ms": cpu.wall * 1000,
                    "rows": len(result.instances),
                    "client_cpu": cpu.ours,
                    "sim_cpu": cpu.theirs,
                }
            )
        await clients.aclose()
    notes = [
        f"{n} generated instances (seed 1) -> {len(instances)} rows "
        f"(converting them for the static source took {convert_ms:.0f} ms, not counted)",
        "vs_empty: time to the first frame with rows (no instances: to the first frame) / the "
        "empty app's first frame; max_stall: worst event-loop stall between the first frame "
        "and the frame with all rows",
        f"filter: {len(typed)} keys, 'key' = key -> frame, 'filter' = FleetScreen compute",
        "list_fleet: client_cpu / sim_cpu = cores used by this process / the simserver (sim_cpu "
        "near 1: the simulated AWS is the bottleneck); each scope lists EC2 pages and looks "
        "their instances up in SSM by id chunks in parallel (aws.fleet_scan.ScopeScan)",
    ]
    return rows, notes


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command line entry point; returns the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=10_000, help="generated fleet size")
    ap.add_argument("--keys", type=int, default=30, help="filter keystrokes to time")
    args = ap.parse_args(argv)
    rows, notes = asyncio.run(main(args.instances, args.keys))
    cols = [
        "case",
        "rows",
        "first_frame_ms",
        "first_rows_ms",
        "all_rows_ms",
        "vs_empty",
        "max_stall_ms",
        "key_p50_ms",
        "key_p99_ms",
        "filter_p50_ms",
        "filter_p99_ms",
        "client_cpu",
        "sim_cpu",
    ]
    report("fleet_scale", rows, cols, notes)
    return rows


if __name__ == "__main__":
    run()
