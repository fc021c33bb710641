"""Resident memory of the app: idle, and with 20 shell tabs and 10 tunnels open.

A fresh child process runs the app headless on the demo fleet (:mod:`bench.simserver` in a
separate process, so the agents' shells are not counted), listed through ``AwsFleetSource``
with a ``SessionService`` (session tabs and tunnels on). Measured in that child:

* idle: after the fleet is shown (VmRSS);
* loaded: after ``--shells`` shell tabs were opened through the Workbench (each ran a command
  printing ~200 lines, so the terminals hold some scrollback) and ``--tunnels`` tunnels were
  started and are up (VmRSS, and the peak VmHWM).

Baseline: a bare ``python -c`` process's VmRSS in the same run. Targets: <= 80 MB idle,
<= 150 MB loaded.

    python -m bench.memory [--shells 20] [--tunnels 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, RemoteDemo, child_env, remote_demo, report, verdict

IDLE_TARGET_MB = 80.0
LOADED_TARGET_MB = 150.0
SIZE = (160, 48)
MIB = 1024 * 1024


def bare_python_rss() -> int:
    """VmRSS of a bare interpreter (bytes)."""
    code = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return int(out.stdout) * 1024


def child(demo_json: str, shells: int, tunnels: int) -> None:
    """In the child: idle app, then sessions and tunnels; print the measurements as JSON."""
    from bench.common import rss_bytes
    from ssmtui.aws.clients import demo_clients
    from ssmtui.models import FleetScope
    from ssmtui.services import SessionService
    from ssmtui.transport.tunnel import TunnelSpec
    from ssmtui.ui.app import create_app
    from ssmtui.ui.source import AwsFleetSource

    demo = RemoteDemo.from_json(demo_json)
    scopes = [FleetScope(p, r) for p in demo.profiles for r in demo.regions]
    out: dict[str, Any] = {"imported_rss": rss_bytes()[0]}

    async def settle() -> None:
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.2)

    async def go() -> None:
        from ssmtui.aws.fleet import list_fleet

        clients = demo_clients(demo)
        await list_fleet(clients, scopes)  # clients created, service models loaded
        await settle()
        out["clients_rss"] = rss_bytes()[0]
        svc = SessionService(clients)
        app = create_app(AwsFleetSource(clients, scopes), refresh_interval=0, services=svc)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                await settle()
                out["idle_rss"] = rss_bytes()[0]
                out["rows"] = app.fleet.table.row_count
                wb = app.workbench
                assert wb is not None
                pool = [
                    i
                    for i in app.fleet.result.instances
                    if i.is_online and i.platform_type == "Linux"
                ]
                tabs = []
                t0 = time.perf_counter()
                for k in range(shells):
                    tabs.append(await wb.open_shell(pool[k % len(pool)]))
                async with asyncio.timeout(120):
                    while any(t.state == "connecting" for t in tabs):
                        await asyncio.sleep(0.1)
                    # The demo fleet has nodes that deny StartSession on purpose (for the
                    # doctor): replace those tabs with tabs on instances that took one.
                    usable = [t.instance for t in tabs if t.state == "ready"]
                    failed = [t for t in tabs if t.state != "ready"]
                    if usable and failed:
                        for n, _ in enumerate(failed):
                            tabs.append(await wb.open_shell(usable[n % len(usable)]))
                        tabs = [t for t in tabs if t not in failed]
                        while any(t.state == "connecting" for t in tabs):
                            await asyncio.sleep(0.1)
                out["shells_ready"] = sum(t.state == "ready" for t in tabs)
                out["shells_s"] = time.perf_counter() - t0
                for t in tabs:
                    t.send(b"seq 1 200\r")
                # Tunnels go to instances a shell could open a session on (the demo fleet has
                # nodes that deny StartSession on purpose, for the doctor).
                usable = [t.instance for t in tabs if t.state == "ready"] or pool
                t0 = time.perf_counter()
                for k in range(tunnels):
                    inst = usable[k % len(usable)]
                    await wb.start_tunnel(inst, TunnelSpec(inst.instance_id, 0, demo.sink_port))
                entries = list(wb.book)
                async with asyncio.timeout(120):
                    while any(e.state != "up" for e in entries):
                        await asyncio.sleep(0.1)
                out["tunnels_up"] = sum(e.state == "up" for e in entries)
                out["tunnels_s"] = time.perf_counter() - t0
                await asyncio.sleep(1.0)  # let the shells' output arrive and be drawn
                await pilot.pause()
                await settle()
                out["loaded_rss"], out["loaded_hwm"] = rss_bytes()
                await wb.aclose()
        finally:
            await clients.aclose()

    asyncio.run(go())
    print(json.dumps(out))


async def main(shells: int, tunnels: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the child against a simserver; return rows and notes."""
    bare = bare_python_rss()
    async with remote_demo() as demo:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.memory",
            "--child",
            demo.to_json(),
            "--shells",
            str(shells),
            "--tunnels",
            str(tunnels),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=child_env(),
        )
        raw, _ = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory child failed ({proc.returncode})")
    m = json.loads(raw.decode().strip().splitlines()[-1])
    idle, loaded = m["idle_rss"] / MIB, m["loaded_rss"] / MIB
    rows = [
        {"case": "bare python (baseline)", "rss_MB": bare / MIB, "vs_python": 1.0},
        {"case": "ssmtui imported (UI, services)", "rss_MB": m["imported_rss"] / MIB},
        {"case": "+ AWS clients after one listing", "rss_MB": m["clients_rss"] / MIB},
        {
            "case": f"app idle ({m['rows']} instances shown)",
            "rss_MB": idle,
            "target": f"<= {IDLE_TARGET_MB:g} MB",
            "verdict": verdict(idle, IDLE_TARGET_MB, higher_is_better=False),
        },
        {
            "case": f"app + {m['shells_ready']}/{shells} shells + {m['tunnels_up']}/{tunnels} "
            "tunnels",
            "rss_MB": loaded,
            "peak_MB": m["loaded_hwm"] / MIB,
            "target": f"<= {LOADED_TARGET_MB:g} MB",
            "verdict": verdict(loaded, LOADED_TARGET_MB, higher_is_better=False),
        },
    ]
    for row in rows[1:]:
        row["vs_python"] = row["rss_MB"] * MIB / bare
    per = (loaded - idle) / max(1, shells + tunnels)
    notes = [
        f"MB = MiB of VmRSS; {per:.2f} MB per session/tunnel over idle; shells opened in "
        f"{m['shells_s']:.1f} s, tunnels up in {m['tunnels_s']:.1f} s",
        "sessions and tunnels were opened through the app's Workbench (shell tabs with the "
        "terminal widget); the demo fleet and its shells run in a separate process",
    ]
    return rows, notes


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command line entry point; returns the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shells", type=int, default=20, help="shell tabs to open")
    ap.add_argument("--tunnels", type=int, default=10, help="tunnels to start")
    ap.add_argument("--child", metavar="DEMO_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.shells, args.tunnels)
        return []
    rows, notes = asyncio.run(main(args.shells, args.tunnels))
    report("memory", rows, ["case", "rss_MB", "peak_MB", "vs_python", "target", "verdict"], notes)
    return rows


if __name__ == "__main__":
    run()
