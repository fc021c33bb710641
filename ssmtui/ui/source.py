"""Where the UI gets the fleet from: the :class:`FleetSource` protocol and its AWS adapter.

The UI never calls AWS itself. Screens call a ``FleetSource`` from workers; the source owns the
clients. :class:`AwsFleetSource` lists through :func:`ssmtui.aws.fleet.list_fleet` (real AWS, or
the loopback demo fleet via :func:`demo_fleet_source`); tests may pass any object with the same
shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ssmtui.errors import SsmtuiError
from ssmtui.models import FleetResult, FleetScope, Instance

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients
    from ssmtui.sim.fleet import SimFleet

__all__ = [
    "AwsFleetSource",
    "FleetSource",
    "ScopeDone",
    "StaticFleetSource",
    "demo_fleet_source",
    "merge_results",
]

#: Called as each scope finishes listing: ``(scope, that scope's result)``.
ScopeDone = Callable[[FleetScope, FleetResult], None]


@runtime_checkable
class FleetSource(Protocol):
    """What the fleet screen needs: the scopes it covers and a way to list them.

    ``list_fleet`` lists every scope (concurrently) and returns one :class:`FleetResult` whose
    :attr:`~FleetResult.errors` name the scopes that failed; it must not raise for a failing
    scope. If given, ``on_scope`` is called for each scope as soon as that scope is done, so the
    UI can show progress and early rows; a source may also call it earlier with the scope's rows
    listed so far, marked :attr:`~FleetResult.partial` (each call replaces the previous one for
    that scope; the returned result is the authoritative one).
    """

    @property
    def scopes(self) -> Sequence[FleetScope]:
        """The (profile, region) pairs listed, in display order."""
        ...

    async def list_fleet(self, on_scope: ScopeDone | None = None) -> FleetResult:
        """The fleet over :attr:`scopes`."""
        ...


def merge_results(scopes: Sequence[FleetScope], results: Sequence[FleetResult]) -> FleetResult:
    """One :class:`FleetResult` from per-scope results (instances and errors in scope order)."""
    instances: list[Instance] = []
    errors: dict[FleetScope, SsmtuiError] = {}
    for res in results:
        instances.extend(res.instances)
        errors.update(res.errors)
    return FleetResult(instances=tuple(instances), errors=errors, scopes=tuple(scopes))


class AwsFleetSource:
    """Lists the fleet with :func:`ssmtui.aws.fleet.list_fleet`, one concurrent call per scope.

    ``clients`` is an open :class:`~ssmtui.aws.clients.AwsClients` (real or
    :func:`~ssmtui.aws.clients.demo_clients`); the caller owns and closes it.

    Rows stream: ``list_fleet`` hands over complete rows as each SSM lookup returns, and
    ``on_scope`` gets the scope's rows so far right away for its first batch, then at most every
    ``partial_interval`` seconds (each call makes the screen rebuild its index, so batching keeps
    a 10,000-row listing from being re-indexed per page), then once more with the final result.
    """

    def __init__(
        self,
        clients: AwsClients,
        scopes: Sequence[FleetScope],
        *,
        partial_interval: float = 0.25,
    ) -> None:
        self._clients = clients
        self._scopes = tuple(dict.fromkeys(scopes))
        self.partial_interval = partial_interval

    @property
    def scopes(self) -> Sequence[FleetScope]:
        """The (profile, region) pairs listed."""
        return self._scopes

    @property
    def clients(self) -> AwsClients:
        """The AWS clients this source lists with."""
        return self._clients

    async def list_fleet(self, on_scope: ScopeDone | None = None) -> FleetResult:
        """List every scope concurrently, reporting each one as it finishes."""
        from ssmtui.aws.fleet import list_fleet

        loop = asyncio.get_running_loop()

        async def one(scope: FleetScope) -> FleetResult:
            listed: list[Instance] = []
            last = [-1.0]  # when on_scope last got a partial result (-1: never)

            def on_rows(_scope: FleetScope, rows: list[Instance]) -> None:
                listed.extend(rows)
                now = loop.time()
                if on_scope is not None and (last[0] < 0 or now - last[0] >= self.partial_interval):
                    last[0] = now
                    on_scope(scope, FleetResult(tuple(listed), {}, (scope,), partial=True))

            result = await list_fleet(self._clients, [scope], on_rows=on_rows)
            if on_scope is not None:
                on_scope(scope, result)
            return result

        results = await asyncio.gather(*(one(s) for s in self._scopes))
        return merge_results(self._scopes, results)


class StaticFleetSource:
    """A fixed, in-memory fleet (previews, offline demos and unit tests); ``results`` are served
    in turn, the last one repeating."""

    def __init__(self, *results: FleetResult, delay: float = 0.0) -> None:
        if not results:
            raise ValueError("StaticFleetSource needs at least one FleetResult")
        self._results = list(results)
        self._delay = delay
        self.calls = 0

    @property
    def scopes(self) -> Sequence[FleetScope]:
        """The scopes of the first result (or those of its instances and errors)."""
        first = self._results[0]
        if first.scopes:
            return first.scopes
        found = {i.scope for i in first.instances} | set(first.errors)
        return tuple(sorted(found))

    async def list_fleet(self, on_scope: ScopeDone | None = None) -> FleetResult:
        """The next canned result (after ``delay`` seconds)."""
        result = self._results[min(self.calls, len(self._results) - 1)]
        self.calls += 1
        if self._delay:
            await asyncio.sleep(self._delay)
        if on_scope is not None:
            for scope in self.scopes:
                errors = {scope: result.errors[scope]} if scope in result.errors else {}
                on_scope(scope, FleetResult(tuple(result.in_scope(scope)), errors, (scope,)))
        return result


def demo_scopes(fleet: SimFleet) -> list[FleetScope]:
    """Every profile × region of a demo fleet."""
    return [FleetScope(p, r) for p in fleet.profiles for r in fleet.regions]


@asynccontextmanager
async def demo_fleet_source(
    fleet: SimFleet | None = None,
    *,
    scopes: Sequence[FleetScope] | None = None,
    threaded: bool = True,
) -> AsyncIterator[AwsFleetSource]:
    """Serve a demo fleet on loopback and list it through the real AWS clients.

    ``async with demo_fleet_source() as source: create_app(source)…``. With ``threaded`` (the
    default) the demo endpoint runs on its own event loop in a thread, so serving 10,000
    instances does not compete with the UI's loop; otherwise it runs on the current loop.
    """
    from ssmtui.aws.clients import demo_clients
    from ssmtui.sim.api import run_server, serve_in_thread

    if not threaded:
        async with run_server(fleet) as server, demo_clients(server) as clients:
            yield AwsFleetSource(clients, scopes or demo_scopes(server.state.fleet))
        return
    with ExitStack() as stack:
        server = await asyncio.to_thread(stack.enter_context, serve_in_thread(fleet))
        try:
            async with demo_clients(server) as clients:
                yield AwsFleetSource(clients, scopes or demo_scopes(server.state.fleet))
        finally:
            await asyncio.to_thread(stack.close)
