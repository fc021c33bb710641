"""``run_tui``: what the CLI runs for plain ``ssmtui`` on a terminal.

Opens the runtime (AWS clients, or the demo fleet with its agents), builds the
:class:`~ssmtui.services.SessionService` and the app over an
:class:`~ssmtui.ui.source.AwsFleetSource`, runs it, and returns the exit status. Everything the
app opened (sessions, tunnels) is closed when it exits, before the runtime closes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ssmtui.models import FleetScope, Instance

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients
    from ssmtui.runtime import AppContext
    from ssmtui.ui.workbench import Resolver

__all__ = ["make_resolver", "run_tui", "run_tui_async"]


def make_resolver(clients: AwsClients, scopes: list[FleetScope]) -> Resolver:
    """A preset resolver over ``scopes`` (narrowed by the preset's own profile / region)."""
    from ssmtui.aws.fleet import resolve_target

    async def resolve(target: str, profile: str | None, region: str | None) -> Instance:
        profiles = [profile] if profile else sorted({s.profile for s in scopes})
        regions = [region] if region else sorted({s.region for s in scopes})
        wanted = [FleetScope(p, r) for p in profiles for r in regions]
        return await resolve_target(clients, wanted, target)

    return resolve


async def run_tui_async(ctx: AppContext) -> int:
    """Open the runtime and run the app in it; returns the app's exit status."""
    from ssmtui.runtime import open_runtime, session_service
    from ssmtui.ui.app import create_app
    from ssmtui.ui.source import AwsFleetSource

    async with open_runtime(ctx) as rt:
        start_on = None
        if ctx.connect:  # resolved before the app starts, so a bad target is one clear line
            from ssmtui.aws.fleet import resolve_target

            start_on = await resolve_target(rt.clients, list(rt.scopes), ctx.connect)
        services = session_service(rt)
        app = create_app(
            AwsFleetSource(rt.clients, rt.scopes),
            refresh_interval=ctx.config.refresh_interval,
            title="ssmtui (demo)" if ctx.demo else "ssmtui",
            keymap=ctx.config.keymap,
            theme=ctx.config.theme,
            services=services,
            history=services.history,
            tunnel_presets=ctx.config.tunnels,
            resolver=make_resolver(rt.clients, list(rt.scopes)),
            favourites=ctx.config.favourites,
        )
        opener = None if start_on is None else asyncio.create_task(_connect_when_up(app, start_on))
        await app.run_async()
        if opener is not None:
            opener.cancel()
        if app.workbench is not None:  # normally done at unmount; idempotent
            await app.workbench.aclose()
    return int(app.return_code or 0)


def run_tui(ctx: AppContext) -> int:
    """``asyncio.run`` of :func:`run_tui_async`."""
    return asyncio.run(run_tui_async(ctx))


async def _connect_when_up(app: Any, instance: Instance) -> None:
    """Post the connect intent once the app shows its first screen."""
    from ssmtui.ui.messages import ConnectRequested

    for _ in range(400):
        if app.is_running and app.screen_stack:
            app.post_message(ConnectRequested(instance))
            return
        await asyncio.sleep(0.025)
