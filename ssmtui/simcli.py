"""``ssmtui sim``: serve the demo fleet standalone until Ctrl-C / SIGTERM.

Prints the endpoint and exactly what a client needs (``AWS_ENDPOINT_URL``, per-profile demo keys,
an ssmtui ``endpoints`` setting) so the AWS CLI, SDKs and ssmtui itself can talk to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import ssl
import sys
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ssmtui.config import ENDPOINT_SERVICES
from ssmtui.errors import SsmtuiError, UsageError
from ssmtui.runtime import attach_demo_agents, load_demo_fleet

__all__ = ["SimOptions", "apply_faults", "banner", "serve"]

_FAULT_HELP = (
    "use expired | throttle[:N[:OP]] | error:OP:CODE[:N] | latency:SECONDS[:OP] | "
    "agent:ITEM[,ITEM...] (drop=RATE, dup=RATE, noack, close=N, offline=SECONDS, ...)"
)


@dataclass(frozen=True)
class SimOptions:
    """What ``ssmtui sim`` was asked to serve."""

    host: str = "127.0.0.1"
    port: int = 0
    fleet: Path | None = None
    generate: int | None = None
    seed: int = 0
    faults: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None


def apply_faults(state: Any, specs: Sequence[str]) -> list[Any]:
    """Apply API fault specs to ``state``; return the agent fault plans (``agent:…`` specs)."""
    plans: list[Any] = []
    for spec in specs:
        agent_like = spec.strip().lower().startswith("agent:") or "=" in spec
        if not spec.strip().lower().startswith("agent:"):
            try:
                state.apply_fault(spec)
                continue
            except ValueError:
                pass
        try:
            from ssmtui.sim.faults import parse_fault
        except ImportError:
            raise UsageError(f"bad --fault {spec!r}", hint=_FAULT_HELP) from None
        try:
            plans.append(parse_fault(spec))
        except ValueError as exc:
            detail = f": {str(exc).split(': use ')[0]}" if agent_like else ""
            raise UsageError(f"bad --fault {spec!r}{detail}", hint=_FAULT_HELP) from exc
    return plans


def _ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {exc.filename or cert}") from exc
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"cannot load --tls-cert/--tls-key: {exc}") from exc
    return context


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def banner(server: Any, fleet: Any, tls_cert: Path | None = None) -> str:
    """The text printed once the server listens."""
    from ssmtui.sim.fleet import demo_credentials

    endpoint = server.endpoint
    regions = list(fleet.regions) or ["us-east-1"]
    lines = [
        f"ssmtui demo fleet: {len(fleet)} instances; profiles {', '.join(fleet.profiles)}; "
        f"regions {', '.join(regions)}",
        f"endpoint: {endpoint}",
        "",
        "# Point the AWS CLI / SDKs / ssmtui at it (one profile's keys at a time):",
        f"export AWS_ENDPOINT_URL={endpoint}",
        f"export AWS_REGION={regions[0]} AWS_DEFAULT_REGION={regions[0]}",
    ]
    if tls_cert is not None:
        lines.append(f"export AWS_CA_BUNDLE={tls_cert.resolve()}")
    for n, profile in enumerate(fleet.profiles):
        access, secret = demo_credentials(profile)
        lines.append(f"# profile {profile} (account {fleet.account_for(profile)}):")
        prefix = "" if n == 0 else "# "
        lines.append(f"{prefix}export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret}")
    lines += ["", "# ...or as named profiles in a credentials file (AWS_SHARED_CREDENTIALS_FILE):"]
    for profile in fleet.profiles:
        access, secret = demo_credentials(profile)
        lines += [
            f"[{profile}]",
            f"aws_access_key_id = {access}",
            f"aws_secret_access_key = {secret}",
        ]
    services = ", ".join(f'{s} = "{endpoint}"' for s in ENDPOINT_SERVICES)
    lines += [
        "",
        f"# ssmtui config.toml: endpoints = {{ {services} }}",
        "",
        "Serving until Ctrl-C.",
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT / SIGTERM while inside (where the loop supports it)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(options: SimOptions, *, out: TextIO | None = None) -> int:
    """Serve until a stop signal; return the exit status."""
    from ssmtui.sim.api import run_server
    from ssmtui.sim.fleet import default_fleet, generate_fleet, load_fleet
    from ssmtui.sim.state import SimState

    stream = out if out is not None else sys.stdout
    if options.generate is not None:
        fleet = generate_fleet(options.generate, options.seed)
    else:
        fleet = load_demo_fleet(options.fleet, load_fleet, default_fleet)
    state = SimState(fleet)
    plans = apply_faults(state, options.faults)
    context = None
    if options.tls_cert is not None and options.tls_key is not None:
        context = _ssl_context(options.tls_cert, options.tls_key)
    if not _is_loopback(options.host):
        print(
            f"ssmtui: warning: serving the demo fleet on {options.host}, not loopback; "
            "anyone who can reach it can use the demo keys",
            file=sys.stderr,
        )
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        stack.enter_context(_stop_on_signals(stop))
        try:
            server = await stack.enter_async_context(
                run_server(fleet, options.host, options.port, state=state, ssl_context=context)
            )
        except OSError as exc:
            raise SsmtuiError(
                f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}",
                hint="pick another --port (0 = any free port)",
                cause=exc,
            ) from exc
        hub = await attach_demo_agents(state, stack, faults=plans or None)
        if hub is None:
            note = "sessions are refused: the simulated agents are not available"
            print(f"ssmtui: warning: {note}", file=sys.stderr)
        stream.write(banner(server, fleet, options.tls_cert))
        stream.flush()
        await stop.wait()
    print("ssmtui: demo fleet stopped", file=sys.stderr)
    return 0
