"""Start-up time: the CLI's ``--help`` and the app's first frame, against ``python -c pass``.

* ``python -c pass``: the interpreter alone (baseline), median of ``--runs``;
* ``ssmtui --help``: the console script (``python -m ssmtui`` if none), median of ``--runs``;
* the app, headless, on the demo fleet: a fresh process imports the UI, builds
  ``demo_clients`` aimed at :mod:`bench.simserver` (a separate, already running process),
  starts the app over ``AwsFleetSource`` and reports when its first frame and its first frame
  with rows were composed; wall time from spawning the process, median of ``--app-runs``;
* ``ssmtui --demo`` in a real pseudo-terminal (with ``--pty``): from spawning to the first
  output showing a fleet row (this one also starts the in-process demo fleet).

    python -m bench.startup [--runs 10] [--app-runs 5] [--pty]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, RemoteDemo, child_env, median, remote_demo, report

SIZE = (160, 48)


def _timed(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``argv`` (output discarded; must exit 0)."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=child_env(), timeout=120
        )
        out.append(time.perf_counter() - t0)
    return out


def ssmtui_argv() -> list[str]:
    """The console script next to this interpreter, else ``python -m ssmtui``."""
    script = Path(sys.executable).with_name("ssmtui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ssmtui"]


async def _app_once(demo: RemoteDemo) -> dict[str, float]:
    """Spawn a child that starts the app headless; its milestones in seconds from the spawn."""
    t0 = time.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.startup",
        "--child",
        demo.to_json(),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"the start-up child failed ({proc.returncode})")
    marks = json.loads(out.decode().strip().splitlines()[-1])
    return {k: v - t0 for k, v in marks.items()}


def child(demo_json: str) -> None:
    """In the child: import, start the app, print the wall-clock milestones as JSON."""
    started = time.time()
    from bench.common import FrameClock, settle
    from ssmtui.aws.clients import demo_clients
    from ssmtui.models import FleetScope
    from ssmtui.ui.app import create_app
    from ssmtui.ui.source import AwsFleetSource

    imported = time.time()
    demo = RemoteDemo.from_json(demo_json)
    scopes = [FleetScope(p, r) for p in demo.profiles for r in demo.regions]

    async def go() -> dict[str, float]:
        clients = demo_clients(demo)
        try:
            app = create_app(AwsFleetSource(clients, scopes), refresh_interval=0)
            clock = FrameClock(app)
            first = clock.watch(lambda: True)
            rows = clock.watch(lambda: app.fleet.table.row_count > 0)
            async with app.run_test(size=SIZE):
                f, r = await settle(first, 60), await settle(rows, 60)
        finally:
            await clients.aclose()
        offset = time.time() - time.perf_counter()
        return {"first_frame": f + offset, "first_rows": r + offset}

    marks = asyncio.run(go())
    print(json.dumps({"interpreter": started, "imported": imported, **marks}))


def pty_demo(timeout: float = 60.0) -> float:
    """Seconds from spawning ``ssmtui --demo`` in a pty to output showing ``web-dev-1``."""
    import pty

    argv = [*ssmtui_argv(), "--demo"]
    env = child_env()
    env.update(TERM="xterm-256color", COLUMNS="160", LINES="48")
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(ROOT)
        os.execve(argv[0], argv, env)
    seen = b""
    found = float("nan")
    try:
        with contextlib.suppress(OSError):
            import fcntl
            import struct
            import termios

            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen = (seen + chunk)[-8192:]
            if b"web-dev-1" in seen:
                found = time.perf_counter() - t0
                break
        with contextlib.suppress(OSError):
            os.write(fd, b"q")
        end = time.perf_counter() + 10
        while time.perf_counter() < end:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            with contextlib.suppress(OSError):
                select.select([fd], [], [], 0.05)
                os.read(fd, 65536)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return found


async def main(runs: int, app_runs: int, pty: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Every measurement; return rows and notes."""
    base = median(_timed([sys.executable, "-c", "pass"], runs))
    help_ = median(_timed([*ssmtui_argv(), "--help"], runs))
    imp = median(_timed([sys.executable, "-c", "import textual.app"], runs))
    rows: list[dict[str, Any]] = [
        {"case": "python -c pass (baseline)", "median_ms": base * 1000, "vs_python": 1.0},
        {
            "case": "python -c 'import textual.app'",
            "median_ms": imp * 1000,
            "vs_python": imp / base,
        },
        {"case": "ssmtui --help", "median_ms": help_ * 1000, "vs_python": help_ / base},
    ]
    marks: list[dict[str, float]] = []
    async with remote_demo() as demo:
        await _app_once(demo)  # warm the page cache and the server's first-call paths
        for _ in range(app_runs):
            marks.append(await _app_once(demo))
    for key, label in (
        ("imported", "app child: UI imported"),
        ("first_frame", "app child: first frame (headless)"),
        ("first_rows", "app child: first frame with rows (demo fleet)"),
    ):
        value = median(m[key] for m in marks)
        rows.append({"case": label, "median_ms": value * 1000, "vs_python": value / base})
    if pty:
        value = median(pty_demo() for _ in range(max(1, min(3, app_runs))))
        rows.append(
            {
                "case": "ssmtui --demo in a pty: fleet row shown",
                "median_ms": value * 1000,
                "vs_python": value / base,
            }
        )
    notes = [
        f"--help: {runs} runs; app child: {app_runs} runs (+1 warm-up), wall time from spawn; "
        "the demo server runs in a separate process",
        f"ssmtui command: {' '.join(ssmtui_argv())}",
    ]
    return rows, notes


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command line entry point; returns the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="runs of each command")
    ap.add_argument("--app-runs", type=int, default=5, help="runs of the headless app child")
    ap.add_argument("--pty", action="store_true", help="also time 'ssmtui --demo' in a pty")
    ap.add_argument("--child", metavar="DEMO_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return []
    rows, notes = asyncio.run(main(args.runs, args.app_runs, args.pty))
    report("startup", rows, ["case", "median_ms", "vs_python"], notes)
    return rows


if __name__ == "__main__":
    run()
