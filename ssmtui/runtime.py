"""What a run of the app needs, for the CLI verbs and the TUI alike: AWS clients and the scopes.

:func:`open_runtime` opens :class:`~ssmtui.aws.clients.AwsClients` against real AWS, or (``demo``)
first starts the demo fleet in-process on a free loopback port, attaches the simulated agents when
:mod:`ssmtui.sim.agent` is available, and aims the clients at it. Heavy modules (aiobotocore,
aiohttp) are imported only when a runtime is opened.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmtui.config import Config
from ssmtui.errors import ConfigError, UsageError
from ssmtui.models import FleetScope

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients

__all__ = [
    "DEMO_HOST_MAP",
    "AppContext",
    "Runtime",
    "attach_demo_agents",
    "bypass_proxy_for_loopback",
    "load_demo_fleet",
    "open_runtime",
]

#: Remote host names the demo agents resolve for port forwarding through an instance
#: (``ssmtui --demo forward web-dev-1 15432:5432 --host db.demo.internal``): a database or web
#: server you run on this machine stands in for one in the demo VPC.
DEMO_HOST_MAP = {"db.demo.internal": "127.0.0.1", "web.demo.internal": "127.0.0.1"}


@dataclass(frozen=True)
class AppContext:
    """Everything the command line decided: settings, demo mode, profile/region narrowing."""

    config: Config
    demo: bool = False
    #: ``--profile`` values (empty: the config's / the demo's profiles).
    profiles: tuple[str, ...] = ()
    #: ``--region`` values (empty: the config's / each profile's region / the demo's regions).
    regions: tuple[str, ...] = ()
    #: Demo fleet file (None: the shipped fleet).
    demo_fleet: Path | None = None
    debug: bool = False
    #: Demo fault specs (hidden ``--demo-fault``): API faults for the demo server
    #: (``SimState.apply_fault``) or agent faults (``agent:…``, ``ssmtui.sim.faults``).
    demo_faults: tuple[str, ...] = ()
    #: ``--connect TARGET``: the TUI opens a shell on it at start.
    connect: str | None = None
    #: ``--record``: keep transcripts of shell sessions (output only, secrets scrubbed).
    record: bool = False


@dataclass
class Runtime:
    """An open runtime: the clients, the scopes to list, and the demo server if any."""

    context: AppContext
    clients: AwsClients
    scopes: list[FleetScope]
    #: The running ``ssmtui.sim.api.SimServer`` in demo mode.
    server: Any = None
    #: What :func:`attach_demo_agents` returned (the agent hub), if anything.
    agents: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def bypass_proxy_for_loopback() -> None:
    """Add loopback to ``NO_PROXY`` so a machine-wide HTTP(S)_PROXY never sees demo traffic."""
    for name in ("NO_PROXY", "no_proxy"):
        current = [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]
        wanted = [h for h in ("127.0.0.1", "localhost", "::1") if h not in current]
        if wanted or name not in os.environ:
            os.environ[name] = ",".join(current + wanted)


async def attach_demo_agents(state: Any, stack: AsyncExitStack, **kwargs: Any) -> Any:
    """Attach the simulated agents (``ssmtui.sim.agent.attach_agents``) if that module exists.

    Returns what ``attach_agents`` returned (None when agents are not available); anything with
    an ``aclose()`` is closed when ``stack`` unwinds.
    """
    try:
        from ssmtui.sim.agent import attach_agents
    except ImportError:
        return None
    hub: Any = attach_agents(state, **kwargs)
    if inspect.isawaitable(hub):
        hub = await hub
    closer = getattr(hub, "aclose", None)
    if closer is not None:
        stack.push_async_callback(closer)
    return hub


def _narrow(wanted: Sequence[str], available: Sequence[str], what: str, strict: bool) -> list[str]:
    if not wanted:
        return list(available)
    if strict:
        unknown = [w for w in wanted if w not in available]
        if unknown:
            raise UsageError(
                f"unknown demo {what} {unknown[0]!r}",
                hint=f"demo {what}s: {', '.join(available)}",
            )
    return list(dict.fromkeys(wanted))


@asynccontextmanager
async def open_runtime(context: AppContext) -> AsyncIterator[Runtime]:
    """Open clients (and, in demo mode, the demo fleet); close everything on exit."""
    from ssmtui.aws.clients import AwsClients, demo_clients

    async with AsyncExitStack() as stack:
        if context.demo:
            from ssmtui.sim.api import run_server
            from ssmtui.sim.fleet import default_fleet, load_fleet

            bypass_proxy_for_loopback()
            fleet = load_demo_fleet(context.demo_fleet, load_fleet, default_fleet)
            server = await stack.enter_async_context(run_server(fleet, "127.0.0.1", 0))
            plans = _demo_faults(server.state, context.demo_faults)
            agents = await attach_demo_agents(
                server.state, stack, host_map=DEMO_HOST_MAP, faults=plans or None
            )
            clients = demo_clients(server, context.config)
            stack.push_async_callback(clients.aclose)
            profiles = _narrow(context.profiles, fleet.profiles, "profile", strict=True)
            regions = _narrow(context.regions, fleet.regions, "region", strict=False)
            scopes = [FleetScope(p, r) for p in profiles for r in regions]
            yield Runtime(context, clients, scopes, server=server, agents=agents)
            return
        config = context.config.with_overrides(
            {
                "profiles": list(context.profiles) or None,
                "regions": list(context.regions) or None,
            }
        )
        clients = AwsClients(config)
        stack.push_async_callback(clients.aclose)
        scopes = config.scopes(clients.resolve_region)
        yield Runtime(context, clients, scopes)


def _demo_faults(state: Any, specs: Sequence[str]) -> list[Any]:
    """Apply ``--demo-fault`` specs to the demo server; returns the agent fault plans."""
    if not specs:
        return []
    from ssmtui.simcli import apply_faults

    try:
        return apply_faults(state, specs)
    except UsageError as err:
        raise UsageError(err.message.replace("--fault", "--demo-fault", 1), hint=err.hint) from None


def load_demo_fleet(path: Path | None, load_fleet: Any, default_fleet: Any) -> Any:
    """The demo fleet from ``path`` (None: the shipped one); bad files -> :class:`ConfigError`."""
    if path is None:
        return default_fleet()
    try:
        return load_fleet(path)
    except FileNotFoundError:
        raise ConfigError("no such fleet file", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read fleet file ({exc.strerror})", path=str(path)) from exc
    except ValueError as exc:  # includes tomllib.TOMLDecodeError
        raise ConfigError(f"bad fleet file: {exc}", path=str(path), cause=exc) from exc


def open_history() -> Any:
    """The session history (``ssmtui.store.history.History``), or None when it is switched off
    (``SSMTUI_HISTORY=off``) or cannot be opened — a history problem never stops a session."""
    if os.environ.get("SSMTUI_HISTORY", "").lower() in ("0", "off", "no", "false"):
        return None
    try:
        from ssmtui.store.history import History

        return History()
    except Exception as exc:  # a read-only home, a newer schema, ...
        import logging

        logging.getLogger(__name__).warning("session history is off: %s", exc)
        return None


def session_service(runtime: Runtime, **kwargs: Any) -> Any:
    """The :class:`~ssmtui.services.SessionService` of this run, recording to the history."""
    from ssmtui.services import SessionService

    kwargs.setdefault("history", open_history())
    kwargs.setdefault("transcripts", runtime.context.record or _env_on("SSMTUI_TRANSCRIPTS"))
    return SessionService(runtime.clients, **kwargs)


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "on", "yes", "true")
