"""Save SVG screenshots of the UI on the demo fleet: ``python -m ssmtui.ui.screenshots [DIR]``.

Runs the real stack headless (loopback demo AWS endpoint -> aws clients -> list_fleet -> the app)
and writes ``DIR/fleet.svg`` (default ``screenshots/``). Used by the docs and by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m ssmtui.ui.screenshots", description=__doc__)
    parser.add_argument("out_dir", nargs="?", default="screenshots", type=Path)
    args = parser.parse_args(argv)
    _loopback_env()
    for path in asyncio.run(take_screenshots(args.out_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
