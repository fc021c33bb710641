"""Command line: argument parsing and dispatch only.

``ssmtui [--profile P] [--region R] [--config FILE] [--demo] VERB …``

* ``list [--json] [FILTER …]``: the fleet as a table (or JSON);
* ``sim [--port N] …``: run the demo fleet standalone and print how to point clients at it;
* no verb: the TUI when :mod:`ssmtui.ui` exists (``--demo``: on the demo fleet); until then
  ``--demo`` alone prints the demo fleet listing and plain ``ssmtui`` prints help.

Every failure is one ``ssmtui: <message>`` line on stderr (plus an optional ``hint:`` line), exit
status 2 for usage errors and 1 otherwise; ``SSMTUI_DEBUG=1`` adds the traceback. Ctrl-C exits
130 quietly. Only argparse and ssmtui's plain modules are imported up front, so ``--help`` is
fast; the AWS SDK, aiohttp and textual load inside the verbs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ssmtui import __version__
from ssmtui.errors import SsmtuiError, UsageError, one_line

if TYPE_CHECKING:
    from ssmtui.runtime import AppContext

__all__ = ["build_parser", "main"]

PROG = "ssmtui"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_SIM_PORT = 8780


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument VERB: invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if match:
            verbs = match.group(2).replace("'", "")
            raise UsageError(
                f"unknown verb {match.group(1)!r} (verbs: {verbs})", hint=f"see: {PROG} --help"
            )
        raise UsageError(message, hint=f"see: {self.prog} --help")


def _split(values: Sequence[str] | None) -> tuple[str, ...]:
    """``["dev,prod", "qa"]`` -> ``("dev", "prod", "qa")`` (order kept, duplicates dropped)."""
    out = [p.strip() for v in values or () for p in v.split(",") if p.strip()]
    return tuple(dict.fromkeys(out))


def _add_scope_flags(parser: argparse.ArgumentParser, suffix: str = "") -> None:
    parser.add_argument(
        "--profile",
        "-p",
        dest="profiles" + suffix,
        action="append",
        metavar="P",
        help="AWS profile to use (repeat, or comma-separate, for several)",
    )
    parser.add_argument(
        "--region",
        "-r",
        dest="regions" + suffix,
        action="append",
        metavar="R",
        help="AWS region to list (repeat, or comma-separate, for several)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``ssmtui`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Terminal UI and CLI for AWS Systems Manager Session Manager.",
        epilog="Try it without an AWS account: ssmtui --demo",
    )
    _add_scope_flags(parser)
    parser.add_argument("--config", metavar="FILE", help="config file (default: XDG config dir)")
    parser.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated fleet (no AWS)"
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    listing = verbs.add_parser(
        "list",
        help="list managed instances",
        description="List SSM managed nodes and EC2 instances over profiles and regions.",
        epilog="FILTER: a substring, tag:KEY=VALUE, tag:KEY, ping:online|connectionlost|"
        "inactive|notregistered, name:, id:, ip:, profile:, region:, platform:",
    )
    _add_scope_flags(listing, "_verb")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("filters", nargs="*", metavar="FILTER", help="keep matching instances")
    listing.set_defaults(handler=_cmd_list)

    sim = verbs.add_parser(
        "sim",
        help="run the demo fleet's AWS endpoint standalone",
        description="Serve the demo fleet (SSM, EC2, KMS, STS and the data channel) until Ctrl-C.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    sim.add_argument("--port", type=int, default=DEFAULT_SIM_PORT, help="port (0 = any free port)")
    source = sim.add_mutually_exclusive_group()
    source.add_argument("--fleet", metavar="FILE", help="fleet definition (TOML)")
    source.add_argument("--generate", type=int, metavar="N", help="generate N instances")
    sim.add_argument("--seed", type=int, default=0, help="seed for --generate")
    sim.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a failure: expired | throttle[:N[:OP]] | error:OP:CODE[:N] | "
        "latency:SECONDS[:OP] | agent:ITEM[,ITEM…] (see ssmtui.sim.faults)",
    )
    sim.add_argument("--tls-cert", metavar="CERT", help="serve HTTPS/WSS with this certificate")
    sim.add_argument("--tls-key", metavar="KEY", help="private key of --tls-cert")
    sim.set_defaults(handler=_cmd_sim)
    return parser


# --------------------------------------------------------------------------- context


def _context(args: argparse.Namespace) -> AppContext:
    """Settings + demo flag + profile/region narrowing from the parsed arguments."""
    from ssmtui.config import Config
    from ssmtui.models import FleetScope
    from ssmtui.runtime import AppContext

    profiles = _split((args.profiles or []) + (getattr(args, "profiles_verb", None) or []))
    regions = _split((args.regions or []) + (getattr(args, "regions_verb", None) or []))
    for region in regions:
        if not FleetScope.valid_region(region):
            raise UsageError(
                f"bad --region {region!r}: not an AWS region name", hint="e.g. us-east-1"
            )
    config = Config.load(args.config)
    return AppContext(
        config=config,
        demo=bool(args.demo),
        profiles=profiles,
        regions=regions,
        debug=_debug(),
    )


def _debug() -> bool:
    return os.environ.get("SSMTUI_DEBUG", "") not in ("", "0", "false", "no")


def _run_async(factory: Callable[[], Any]) -> Any:
    import asyncio

    return asyncio.run(factory())


# --------------------------------------------------------------------------- list


def _cmd_list(args: argparse.Namespace) -> int:
    from ssmtui.models import InstanceFilter

    filters = [InstanceFilter.parse(f) for f in args.filters]
    ctx = _context(args)
    return int(_run_async(lambda: _list(ctx, filters, as_json=args.json)))


async def _list(ctx: AppContext, filters: list[Any], *, as_json: bool) -> int:
    from ssmtui.aws.fleet import list_fleet
    from ssmtui.listing import render_json, render_table
    from ssmtui.runtime import open_runtime

    async with open_runtime(ctx) as rt:
        result = await list_fleet(rt.clients, rt.scopes)
    shown = result.filtered(filters)
    out = sys.stdout
    if as_json:
        out.write(render_json(result, shown) + "\n")
    else:
        out.write(render_table(shown, unicode=_can_encode(out, "●○◐·"), footer=out.isatty()))
    out.flush()
    for scope, err in result.errors.items():
        msg = err.message if str(scope) in err.message else f"{scope}: {err.message}"
        _report_lines([msg] + ([f"hint: {err.hint}"] if err.hint else []))
    if not shown and not result.errors and not as_json:
        print(f"{PROG}: no instances match", file=sys.stderr)
    return EXIT_FAILURE if result.errors else EXIT_OK


def _can_encode(stream: Any, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# --------------------------------------------------------------------------- sim


def _cmd_sim(args: argparse.Namespace) -> int:
    from ssmtui.simcli import SimOptions, serve

    if args.demo:
        raise UsageError("--demo does not apply to 'sim' (it always serves the demo fleet)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"bad --port {args.port}: use 0-65535 (0 = any free port)")
    if args.generate is not None and not 1 <= args.generate <= 200_000:
        raise UsageError(f"bad --generate {args.generate}: use 1-200000")
    options = SimOptions(
        host=args.host,
        port=args.port,
        fleet=Path(args.fleet) if args.fleet else None,
        generate=args.generate,
        seed=args.seed,
        faults=tuple(args.fault),
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
    )
    return int(_run_async(lambda: serve(options)))


# --------------------------------------------------------------------------- no verb


def _ui_module() -> Any:
    """``ssmtui.ui.app`` if the TUI is installed and this is an interactive terminal, else None."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    try:
        if importlib.util.find_spec("ssmtui.ui.app") is None:
            return None
        return importlib.import_module("ssmtui.ui.app")
    except ImportError:
        return None


async def _run_tui(ui: Any, ctx: AppContext) -> int:
    """Open the runtime (and demo fleet) and run the Textual app over it."""
    from ssmtui.runtime import open_runtime
    from ssmtui.ui.source import AwsFleetSource  # type: ignore[import-not-found,unused-ignore]

    async with open_runtime(ctx) as rt:
        app = ui.create_app(
            AwsFleetSource(rt.clients, rt.scopes),
            refresh_interval=ctx.config.refresh_interval,
            title="ssmtui (demo)" if ctx.demo else "ssmtui",
            keymap=ctx.config.keymap,
            theme=ctx.config.theme,
        )
        await app.run_async()
    return int(getattr(app, "return_code", None) or 0)


def _cmd_default(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """No verb: the TUI on an interactive terminal when :mod:`ssmtui.ui` is installed; otherwise
    ``--demo`` prints the demo fleet listing and plain ``ssmtui`` prints help.

    Hook for the UI: ``ssmtui.ui.app.run_tui(context: AppContext) -> int`` when defined, else
    ``ssmtui.ui.app.create_app(source, …)`` over an ``ssmtui.ui.source.AwsFleetSource``.
    """
    ui = _ui_module()
    if ui is not None and (hasattr(ui, "run_tui") or hasattr(ui, "create_app")):
        ctx = _context(args)
        if hasattr(ui, "run_tui"):
            return int(ui.run_tui(ctx))
        return int(_run_async(lambda: _run_tui(ui, ctx)))
    if args.demo:
        args.filters, args.json = [], False
        return _cmd_list(args)
    parser.print_help()
    return EXIT_OK


# --------------------------------------------------------------------------- main


def _report_lines(lines: Sequence[str]) -> None:
    for i, line in enumerate(lines):
        prefix = f"{PROG}: " if i == 0 else ""
        sys.stderr.write(prefix + line + "\n")
    sys.stderr.flush()


def _report(err: SsmtuiError) -> None:
    _report_lines(err.lines())
    if _debug():
        traceback.print_exception(err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            return _cmd_default(args, parser)
        return int(handler(args))
    except SsmtuiError as err:
        _report(err)
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``ssmtui list | head``): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_FAILURE
    except SystemExit as exc:  # argparse --help / --version
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_FAILURE)
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        _report_lines(
            [
                f"internal error: {type(exc).__name__}: {one_line(exc, 300)}",
                "hint: run again with SSMTUI_DEBUG=1 for the traceback, and report it",
            ]
        )
        return EXIT_FAILURE
