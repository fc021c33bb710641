"""``ssmtui forward TARGET [BIND:]LOCAL:REMOTE [...] [--host HOST]``: port-forwarding tunnels.

Each spec is its own :class:`~ssmtui.transport.tunnel.Tunnel` (a local listener plus a port
session that is reopened with backoff when it drops). The command prints one line per tunnel
once it is up, then a compact live status line (redrawn in place on a terminal, plain lines now
and then otherwise), and stops every tunnel cleanly (Flag TerminateSession) on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ssmtui.cli_sessions import (
    interactive,
    label,
    report,
    resolve_instance,
    session_errors,
    signal_handlers,
    stall_timeout,
)
from ssmtui.errors import SessionError, SsmtuiError, UsageError
from ssmtui.textfmt import can_encode

if TYPE_CHECKING:
    from ssmtui.models import Instance
    from ssmtui.runtime import AppContext
    from ssmtui.services import SessionService
    from ssmtui.transport.tunnel import Tunnel, TunnelStats
    from ssmtui.transport.websocket import DataChannelConnection

__all__ = ["ForwardSpec", "format_bytes", "forward_main", "parse_forward_spec"]

SPEC_HINT = "use [BIND:]LOCAL:REMOTE, e.g. 15432:5432 or 0.0.0.0:8080:80 (LOCAL 0 = any free port)"
#: Seconds to wait for every tunnel's first session.
FIRST_SESSION_TIMEOUT = 60.0
#: Seconds between plain status lines when stdout is not a terminal.
PLAIN_STATUS_EVERY = 10.0
_MODES = {"mux": "smux", "basic": "basic"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class ForwardSpec:
    """One ``[BIND:]LOCAL:REMOTE`` argument."""

    bind: str
    local_port: int
    remote_port: int
    #: Whether BIND was written out (a non-loopback address must be).
    explicit_bind: bool = False

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.bind)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(spec: str, text: str, what: str, low: int) -> int:
    if not text.isdigit():
        shown = repr(text) if text else "nothing"
        raise UsageError(
            f"bad forward spec {spec!r}: {what} is {shown}, not a port", hint=SPEC_HINT
        )
    value = int(text)
    if not low <= value <= 65535:
        raise UsageError(
            f"bad forward spec {spec!r}: {what} {value} is out of range ({low}-65535)",
            hint=SPEC_HINT,
        )
    return value


def parse_forward_spec(spec: str) -> ForwardSpec:
    """``PORT`` | ``LOCAL:REMOTE`` | ``BIND:LOCAL:REMOTE`` (``[v6]:LOCAL:REMOTE``; ``*`` or an
    empty BIND = every interface). Raises :class:`UsageError` naming what is wrong."""
    text = spec.strip()
    bind, explicit = "127.0.0.1", False
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise UsageError(f"bad forward spec {spec!r}: unclosed [address]", hint=SPEC_HINT)
        bind, explicit, text = text[1:end], True, text[end + 2 :]
        parts = text.split(":")
        if len(parts) != 2:
            raise UsageError(f"bad forward spec {spec!r}", hint=SPEC_HINT)
    else:
        parts = text.split(":")
        if len(parts) == 3:
            bind, explicit, parts = parts[0], True, parts[1:]
        elif len(parts) > 3:
            raise UsageError(
                f"bad forward spec {spec!r}: too many ':'",
                hint="write an IPv6 bind address in brackets: [::1]:8080:80",
            )
    if explicit:
        bind = {"": "0.0.0.0", "*": "0.0.0.0", "localhost": "127.0.0.1"}.get(bind, bind)
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise UsageError(
                f"bad forward spec {spec!r}: bind address {bind!r} is not an IP address",
                hint=SPEC_HINT,
            ) from None
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
        if parts[0] == "0":
            raise UsageError(f"bad forward spec {spec!r}: remote port 0", hint=SPEC_HINT)
    local = _port(spec, parts[0], "local port", 0)
    remote = _port(spec, parts[1], "remote port", 1)
    return ForwardSpec(bind, local, remote, explicit)


def format_bytes(n: int) -> str:
    """``999 B``, ``1.2 kB``, ``3.4 MB``, ``5.6 GB`` (decimal units)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # not reached


# --------------------------------------------------------------------------- the verb


def forward_main(ctx: AppContext, args: Any) -> int:
    """Parse and check everything that can be checked offline, then run the tunnels."""
    specs = [parse_forward_spec(s) for s in args.specs]
    seen: set[tuple[str, int]] = set()
    for spec in specs:
        key = (spec.bind, spec.local_port)
        if spec.local_port and key in seen:
            raise UsageError(f"local port {spec.bind}:{spec.local_port} is given twice")
        seen.add(key)
        if not spec.loopback and not args.bind_any_ok:
            raise UsageError(
                f"refusing to listen on {spec.bind}:{spec.local_port}: other machines could "
                "use the tunnel",
                hint="add --bind-any-ok if that is what you want",
            )
    host = args.host.strip() if args.host else None
    if args.host is not None and not host:
        raise UsageError("--host is empty", hint="e.g. --host db.internal.example")
    pool = int(getattr(args, "sessions", 1) or 1)
    if not 1 <= pool <= 32:
        raise UsageError(f"--sessions {pool}: use 1 to 32 sessions per tunnel")
    return int(asyncio.run(_forward(ctx, args.target, specs, host, quiet=args.quiet, pool=pool)))


class _Watch:
    """Tracks one tunnel's first session: up, or the error that kept it down."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.failed = asyncio.Event()
        self.was_up = False

    def on_change(self, stats: TunnelStats) -> None:
        if stats.state == "up":
            self.was_up = True
        elif stats.state == "reconnecting" and not self.was_up and not self.failed.is_set():
            if self.error is None:
                self.error = SessionError(stats.error or "the port session did not start")
            self.failed.set()


async def _forward(
    ctx: AppContext,
    target: str,
    specs: Sequence[ForwardSpec],
    host: str | None,
    *,
    quiet: bool,
    pool: int = 1,
) -> int:
    from ssmtui.runtime import open_runtime, session_service

    with session_errors():
        async with open_runtime(ctx) as rt:
            inst = await resolve_instance(rt, target, interactive=interactive())
            _check_remote_host(inst, host)
            svc = session_service(rt, stall_timeout=stall_timeout())
            pairs = [_tunnel(svc, inst, spec, host, pool) for spec in specs]
            tunnels = [tunnel for tunnel, _ in pairs]
            stop = asyncio.Event()
            try:
                with signal_handlers(dict.fromkeys(STOP_SIGNALS, stop.set)):
                    await _start_listeners(specs, tunnels)
                    first = asyncio.create_task(_first_sessions(pairs))
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({first, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    if not first.done():  # Ctrl-C before the tunnels were up
                        first.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await first
                        return EXIT_INTERRUPTED
                    first.result()
                    _announce(tunnels, inst, host, sys.stdout)
                    await _run_until_stopped(tunnels, sys.stdout, stop, quiet=quiet)
            finally:
                await asyncio.gather(*(t.stop() for t in tunnels), return_exceptions=True)
    return 0


def _tunnel(
    svc: SessionService, inst: Instance, spec: ForwardSpec, host: str | None, pool: int = 1
) -> tuple[Tunnel, _Watch]:
    """A tunnel for one spec, whose first failure to open a session is kept for the user."""
    from ssmtui.services import SessionKind
    from ssmtui.transport.tunnel import Tunnel, TunnelSpec

    watch = _Watch()
    kind = SessionKind.port(spec.remote_port, host)

    async def opener() -> DataChannelConnection:
        try:
            return await svc.open(inst, kind)
        except Exception as exc:
            if not watch.was_up and watch.error is None:
                watch.error = exc
            raise

    tspec = TunnelSpec(inst.instance_id, spec.local_port, spec.remote_port, host, spec.bind)
    return Tunnel(tspec, opener, on_change=watch.on_change, pool=pool), watch


async def _start_listeners(specs: Sequence[ForwardSpec], tunnels: Sequence[Tunnel]) -> None:
    """Bind every listener (port in use: one clear error) and start the sessions."""
    from ssmtui.transport.websocket import TransportError

    for spec, tunnel in zip(specs, tunnels, strict=True):
        try:
            await tunnel.start()
        except TransportError as exc:
            raise SsmtuiError(
                str(exc), hint="pick another local port (0 = any free port)", cause=exc
            ) from exc
        if not spec.loopback:
            report(
                f"warning: listening on {spec.bind}:{tunnel.stats.local_port}: other machines "
                "can reach the tunnel"
            )


def _announce(tunnels: Sequence[Tunnel], inst: Instance, host: str | None, out: TextIO) -> None:
    """``Forwarding 127.0.0.1:15432 → i-… (web-dev-1) → db:5432  [smux]`` per tunnel."""
    arrow = "→" if can_encode(out, "→") else "->"
    for tunnel in tunnels:
        s = tunnel.stats
        where = f"{host or 'localhost'}:{tunnel.spec.remote_port}"
        out.write(
            f"Forwarding {tunnel.spec.bind_host}:{s.local_port} {arrow} {label(inst)} "
            f"{arrow} {where}  [{_MODES.get(s.mode, s.mode)}]\n"
        )
    out.flush()


def _check_remote_host(inst: Instance, host: str | None) -> None:
    from ssmtui.models import REMOTE_HOST_MIN_AGENT

    if host and inst.agent_version and not inst.supports_remote_host:
        raise SessionError(
            f"the SSM agent on {label(inst)} ({inst.agent_version}) cannot forward to other "
            f"hosts (--host needs agent {REMOTE_HOST_MIN_AGENT} or newer)",
            hint="update the agent, or forward to a port on the instance itself",
        )


async def _first_sessions(pairs: Sequence[tuple[Tunnel, _Watch]]) -> None:
    """Wait until every tunnel is up; the first one that cannot start ends the command."""

    async def one(tunnel: Tunnel, watch: _Watch) -> None:
        up = asyncio.create_task(tunnel.wait_up(FIRST_SESSION_TIMEOUT))
        failed = asyncio.create_task(watch.failed.wait())
        try:
            await asyncio.wait({up, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            failed.cancel()
        if tunnel.stats.state == "up" or watch.was_up:
            return
        if isinstance(watch.error, SsmtuiError):
            raise watch.error
        if watch.error is not None:
            raise SessionError(str(watch.error) or type(watch.error).__name__) from watch.error
        raise SessionError(
            f"the tunnel to port {tunnel.spec.remote_port} did not come up within "
            f"{FIRST_SESSION_TIMEOUT:.0f} s"
            + (f": {tunnel.stats.error}" if tunnel.stats.error else "")
        )

    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            for tunnel, watch in pairs:
                group.create_task(one(tunnel, watch))
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


def _status(tunnels: Sequence[Tunnel], fancy: bool) -> tuple[str, str]:
    """(the status line, its state part: a change there is printed at once)."""
    dot, down, up = ("·", "↓", "↑") if fancy else ("-", "in", "out")
    parts, states = [], []
    for tunnel in tunnels:
        s = tunnel.stats
        text = f":{s.local_port} {s.state}"
        if s.state != "up" and s.error:
            text += f" ({s.error[:60]})"
        text += (
            f" {dot} {s.connections_active} conn ({s.connections_total} total)"
            f" {dot} {down} {format_bytes(s.bytes_in)} {up} {format_bytes(s.bytes_out)}"
        )
        if s.reconnects:
            text += f" {dot} {s.reconnects} reconnect{'s' if s.reconnects != 1 else ''}"
        parts.append(text)
        states.append(f"{s.state}/{s.reconnects}")
    return "  |  ".join(parts), " ".join(states)


async def _run_until_stopped(
    tunnels: Sequence[Tunnel], out: TextIO, stop: asyncio.Event, *, quiet: bool
) -> None:
    """Show the status until ``stop`` (Ctrl-C / SIGTERM / SIGHUP)."""
    tty = out.isatty()
    fancy = can_encode(out, "·↓↑")
    shown, shown_state, shown_at = "", "", 0.0
    while not stop.is_set():
        if not quiet:
            line, state = _status(tunnels, fancy)
            now = time.monotonic()
            if tty and line != shown:
                width = _columns(out)
                out.write("\r\x1b[2K" + line[: width - 1])
                out.flush()
                shown = line
            elif not tty and (
                state != shown_state or (line != shown and now - shown_at >= PLAIN_STATUS_EVERY)
            ):
                out.write(line + "\n")
                out.flush()
                shown, shown_state, shown_at = line, state, now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    if tty and not quiet:
        out.write("\r\x1b[2K")
        out.flush()


def _columns(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return shutil.get_terminal_size().columns
