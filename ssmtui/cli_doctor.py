"""``ssmtui doctor [TARGET]``: why an instance is not in Session Manager, or why a session to it
won't start. Prints the report (or JSON); exits 1 when something stops sessions."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from typing import TYPE_CHECKING

from ssmtui.textfmt import can_encode

if TYPE_CHECKING:
    from ssmtui.runtime import AppContext

__all__ = ["doctor_main"]


async def _doctor(ctx: AppContext, args: argparse.Namespace) -> int:
    from ssmtui.doctor import run_doctor
    from ssmtui.doctor.render import render_report
    from ssmtui.runtime import open_runtime

    async with open_runtime(ctx) as rt:
        report = await run_doctor(rt.clients, rt.scopes, args.target)
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        width = min(shutil.get_terminal_size((100, 24)).columns, 120)
        sys.stdout.write(
            render_report(
                report,
                unicode=can_encode(sys.stdout, "✓✗·—→"),
                width=width,
                show_ok=True if args.all else None,
            )
        )
    sys.stdout.flush()
    return 1 if report.failed else 0


def doctor_main(ctx: AppContext, args: argparse.Namespace) -> int:
    """Entry point of the ``doctor`` verb (errors reach the CLI's one-line reporter)."""
    return int(asyncio.run(_doctor(ctx, args)))
