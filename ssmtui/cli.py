"""Command line: argument parsing and dispatch only.

``ssmtui [--profile P] [--region R] [--config FILE] [--demo] VERB …``

* ``list [--json] [FILTER …]``: the fleet as a table (or JSON);
* ``connect TARGET [-- COMMAND…]``: a shell (or one command) on the terminal;
* ``forward TARGET [BIND:]LOCAL:REMOTE … [--host HOST]``: port-forwarding tunnels;
* ``proxy TARGET [PORT]``: stdin/stdout to sshd, for ``ssh -o ProxyCommand``;
* ``exec TARGET -- COMMAND…``: run a command, with its output streams and exit code;
* ``sessions [--history] [--json]``: sessions in the fleet, anyone's (:mod:`ssmtui.cli_active`);
* ``terminate SESSION_ID [--yes]``: TerminateSession, asking first on a terminal;
* ``plugin ARGS…``: act as AWS's ``session-manager-plugin`` (:mod:`ssmtui.plugin`);
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
from ssmtui.textfmt import can_encode

if TYPE_CHECKING:
    from ssmtui.runtime import AppContext

__all__ = ["build_parser", "main"]

PROG = "ssmtui"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_SIM_PORT = 8780
#: Global options that take a value (to find the verb before argparse sees ``plugin`` args).
_VALUE_OPTIONS = ("--profile", "-p", "--region", "-r", "--config", "--demo-fault")

TARGET_HELP = "instance id, Name tag, tag:KEY=VALUE or private IP"
CONNECT_EPILOG = """\
exit status: 0 when the remote shell ends, 255 when ssmtui fails (no such target, AccessDenied,
the connection is lost, ~.). Session Manager does not carry a shell's exit status, so with a
COMMAND (or --exit-status) ssmtui runs it through AWS-StartInteractiveCommand inside a small
wrapper that reports the status back invisibly, and exits with it. Trade-off: that needs
permission to use the AWS-StartInteractiveCommand document, and the session preferences'
shell profile and Run As settings for shells do not apply. One COMMAND argument is shell code
('ls; exit 3'); several are quoted as an argv (sh -c 'exit 3').

escapes (after a newline, on a terminal): ~. ends the session, ~? help, ~~ a literal ~."""
FORWARD_EPILOG = """\
SPEC: [BIND:]LOCAL:REMOTE, or PORT for PORT:PORT. LOCAL 0 picks a free port (printed).
BIND defaults to 127.0.0.1; another address (0.0.0.0, *, an interface IP) must be written out
and needs --bind-any-ok. Sessions that drop are reopened with backoff while the listeners stay.
Ctrl-C stops every tunnel (the sessions are terminated) and exits 0.

examples:
  ssmtui forward web-1 8080:80
  ssmtui forward web-1 15432:5432 --host db.internal.example   (through the instance)
  ssmtui --demo forward web-dev-1 0:5432 --host db.demo.internal"""
PROXY_EPILOG = """\
use with ssh:
  ssh -o ProxyCommand='ssmtui proxy %h %p' ec2-user@i-0123456789abcdef0
%h may be an instance id, a Name or tag:KEY=VALUE. Only the byte stream goes to stdout."""


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


def _add_scope_flags(
    parser: argparse.ArgumentParser, suffix: str = "", *, purpose: str = "list"
) -> None:
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
        help=f"AWS region to {purpose} (repeat, or comma-separate, for several)",
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
    parser.add_argument(
        "--demo-fault", dest="demo_faults", action="append", default=[], help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="keep transcripts of shell sessions (asciicast v2; output only, secrets scrubbed;"
        " also SSMTUI_TRANSCRIPTS=1)",
    )
    parser.add_argument(
        "--connect",
        metavar="TARGET",
        help="open the app straight into a shell on TARGET (id, Name, tag:Key=Value or IP)",
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
    _add_session_verbs(verbs)

    active = verbs.add_parser(
        "sessions",
        help="list sessions running in the fleet (anyone's), or recent ones",
        description="Session Manager sessions (DescribeSessions) over profiles and regions: "
        "who started them, on what, when.",
    )
    _add_scope_flags(active, "_verb")
    active.add_argument("--history", action="store_true", help="recently ended sessions")
    active.add_argument("--json", action="store_true", help="print JSON instead of a table")
    active.set_defaults(handler=_cmd_session("sessions_main", "cli_active"))
    terminate = verbs.add_parser(
        "terminate",
        help="end a session (TerminateSession), whoever started it",
        description="TerminateSession by id; asks first on a terminal unless --yes.",
    )
    _add_scope_flags(terminate, "_verb", purpose="look for SESSION_ID in")
    terminate.add_argument("session_id", metavar="SESSION_ID", help="see: ssmtui sessions")
    terminate.add_argument("--yes", "-y", action="store_true", help="do not ask")
    terminate.set_defaults(handler=_cmd_session("terminate_main", "cli_active"))

    doctor = verbs.add_parser(
        "doctor",
        help="why is an instance missing, or why won't a session start?",
        description="Check what Session Manager needs: instance state, instance profile and "
        "its role's policies, the route to the internet or the VPC endpoints (private DNS, "
        "HTTPS open), agent version; for a TARGET also whether you may start sessions on it; "
        "and each region's session preferences (logging, KMS, timeouts, run-as). Without "
        "TARGET: every EC2 instance not registered in SSM, and registered ones not online. "
        "Exits 1 when something stops sessions.",
    )
    _add_scope_flags(doctor, "_verb", purpose="examine")
    doctor.add_argument("target", nargs="?", metavar="TARGET", help=TARGET_HELP)
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")
    doctor.add_argument("--all", action="store_true", help="also list the checks that passed")
    doctor.set_defaults(handler=_cmd_session("doctor_main", "cli_doctor"))

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


def _add_session_verbs(verbs: Any) -> None:
    """connect, forward, proxy, exec and plugin."""
    raw = argparse.RawDescriptionHelpFormatter
    connect = verbs.add_parser(
        "connect",
        help="open a shell (or run a command) on an instance",
        description="An interactive shell on this terminal, every key passed through.",
        epilog=CONNECT_EPILOG,
        formatter_class=raw,
    )
    _add_scope_flags(connect, "_verb", purpose="look for TARGET in")
    connect.add_argument("--reason", metavar="TEXT", help="reason recorded with the session")
    connect.add_argument("--no-escape", action="store_true", help="disable the ~ escapes")
    connect.add_argument(
        "--exit-status",
        action="store_true",
        help="exit with the remote shell's status (see below for the trade-off)",
    )
    connect.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    connect.add_argument(
        "command",
        nargs="*",
        metavar="COMMAND",
        help="a command to run instead of the shell (after --)",
    )
    connect.set_defaults(handler=_cmd_session("connect_main", "cli_sessions"))

    forward = verbs.add_parser(
        "forward",
        help="forward local ports to an instance (or through it to --host)",
        description="Port forwarding: one tunnel (listener + port session) per SPEC.",
        epilog=FORWARD_EPILOG,
        formatter_class=raw,
    )
    _add_scope_flags(forward, "_verb", purpose="look for TARGET in")
    forward.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    forward.add_argument("specs", nargs="+", metavar="SPEC", help="[BIND:]LOCAL:REMOTE")
    forward.add_argument("--host", metavar="HOST", help="forward to HOST:REMOTE via the instance")
    forward.add_argument(
        "--bind-any-ok", action="store_true", help="allow a BIND address other than loopback"
    )
    forward.add_argument("--quiet", "-q", action="store_true", help="no status line")
    forward.add_argument(
        "--sessions",
        type=int,
        default=1,
        metavar="N",
        help="spread connections over N sessions (the agent paces each session; default 1)",
    )
    forward.set_defaults(handler=_cmd_session("forward_main", "cli_forward"))

    proxy = verbs.add_parser(
        "proxy",
        help="stdin/stdout to sshd on an instance (ssh ProxyCommand)",
        description="Pipe stdin/stdout to a port on the instance (AWS-StartSSHSession).",
        epilog=PROXY_EPILOG,
        formatter_class=raw,
    )
    _add_scope_flags(proxy, "_verb", purpose="look for TARGET in")
    proxy.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    proxy.add_argument("port", nargs="?", type=int, default=22, metavar="PORT", help="default 22")
    proxy.set_defaults(handler=_cmd_session("proxy_main", "cli_sessions"))

    execute = verbs.add_parser(
        "exec",
        help="run a command non-interactively, with its exit code",
        description="Run COMMAND (AWS-StartNonInteractiveCommand): remote stdout to stdout, "
        "stderr to stderr; exits with the remote exit code (255 if ssmtui fails). The first "
        "Ctrl-C interrupts the remote command, the second gives up.",
    )
    _add_scope_flags(execute, "_verb", purpose="look for TARGET in")
    execute.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    execute.add_argument("command", nargs="+", metavar="COMMAND", help="the command (after --)")
    execute.set_defaults(handler=_cmd_session("exec_main", "cli_sessions"))

    plugin = verbs.add_parser(
        "plugin",
        help="act as AWS's session-manager-plugin (same arguments)",
        description="The AWS CLI's session-manager-plugin, argument for argument; also "
        "installed as the session-manager-plugin command.",
    )
    plugin.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    plugin.set_defaults(handler=_cmd_plugin)


def _cmd_session(function: str, module: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``ssmtui.<module>`` only when the verb runs."""

    def handler(args: argparse.Namespace) -> int:
        mod = importlib.import_module(f"ssmtui.{module}")
        return int(getattr(mod, function)(_context(args), args))

    return handler


def _cmd_plugin(args: argparse.Namespace) -> int:
    from ssmtui.plugin import main as plugin_main

    return plugin_main(["session-manager-plugin", *args.args])


def _plugin_argv(argv: Sequence[str]) -> list[str] | None:
    """The arguments after ``plugin`` when that is the verb (they are the plugin's, unparsed)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "plugin":
            return list(argv[i + 1 :])
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if not arg.startswith("-") or arg == "--":
            return None
        i += 1
    return None


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
    faults = tuple(getattr(args, "demo_faults", None) or ())
    if faults and not args.demo:
        raise UsageError("--demo-fault needs --demo")
    config = Config.load(args.config)
    return AppContext(
        config=config,
        demo=bool(args.demo),
        profiles=profiles,
        regions=regions,
        debug=_debug(),
        demo_faults=faults,
        connect=getattr(args, "connect", None),
        record=bool(getattr(args, "record", False)),
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
        out.write(render_table(shown, unicode=can_encode(out, "●○◐·"), footer=out.isatty()))
    out.flush()
    for scope, err in result.errors.items():
        msg = err.message if str(scope) in err.message else f"{scope}: {err.message}"
        _report_lines([msg] + ([f"hint: {err.hint}"] if err.hint else []))
    if not shown and not result.errors and not as_json:
        print(f"{PROG}: no instances match", file=sys.stderr)
    return EXIT_FAILURE if result.errors else EXIT_OK


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
    if getattr(args, "connect", None):
        raise UsageError(
            "--connect opens the TUI, which needs a terminal",
            hint=f"for a shell without the app: ssmtui connect {args.connect}",
        )
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
    args_list = list(sys.argv[1:] if argv is None else argv)
    plugin_args = _plugin_argv(args_list)
    if plugin_args is not None:
        from ssmtui.plugin import main as plugin_main

        return plugin_main(["session-manager-plugin", *plugin_args])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
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
