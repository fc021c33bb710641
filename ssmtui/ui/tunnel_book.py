"""The tunnels the app runs: start, stop, restart, remove, and throughput samples for the UI.

:class:`TunnelBook` wraps the :class:`~ssmtui.transport.tunnel.Tunnel` objects the
:class:`~ssmtui.services.SessionService` makes; :meth:`TunnelBook.sample` (called about once a
second) turns their byte counters into rates for the sparklines. Nothing here draws anything
(no textual), so the screen only reads :class:`TunnelEntry` objects.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ssmtui.models import Instance
from ssmtui.services import SessionService
from ssmtui.transport.tunnel import Tunnel, TunnelSpec, TunnelStats

__all__ = ["TunnelBook", "TunnelEntry", "human_bytes"]

#: Throughput samples kept per tunnel (one per :meth:`TunnelBook.sample`).
HISTORY = 60


def human_bytes(n: float) -> str:
    """``1.5 MB``-style sizes (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


@dataclass
class TunnelEntry:
    """One tunnel the user asked for, running or not."""

    key: str
    name: str
    instance: Instance
    spec: TunnelSpec
    tunnel: Tunnel | None = None
    #: Why the last start failed (the listener could not be bound…).
    error: str = ""
    rates: deque[float] = field(default_factory=lambda: deque([0.0] * 2, maxlen=HISTORY))
    _last_total: int = 0
    _last_time: float = 0.0

    @property
    def stats(self) -> TunnelStats:
        """Live counters (zeros when never started)."""
        return self.tunnel.stats if self.tunnel is not None else TunnelStats(state="stopped")

    @property
    def state(self) -> str:
        """starting, connecting, up, reconnecting, stopped or failed."""
        if self.tunnel is None:
            return "failed" if self.error else "stopped"
        return self.tunnel.stats.state

    @property
    def running(self) -> bool:
        """Whether its listener is open."""
        return self.tunnel is not None and self.state not in ("stopped", "failed")

    @property
    def local_port(self) -> int:
        """The bound port (or the requested one)."""
        return self.stats.local_port or self.spec.local_port

    @property
    def local_address(self) -> str:
        """``127.0.0.1:15432``."""
        host = self.spec.bind_host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.local_port}"

    @property
    def remote(self) -> str:
        """``web-dev-1 → 5432`` or ``web-dev-1 → db:5432``."""
        where = (
            f"{self.spec.remote_host}:{self.spec.remote_port}"
            if self.spec.remote_host
            else str(self.spec.remote_port)
        )
        return f"{self.instance.display_name} → {where}"

    @property
    def last_error(self) -> str:
        """The tunnel's last error, or the start error."""
        return self.stats.error if self.tunnel is not None and self.stats.error else self.error

    @property
    def rate(self) -> float:
        """Bytes per second over the last sample."""
        return self.rates[-1] if self.rates else 0.0


class TunnelBook:
    """Every tunnel, keyed ``t1``, ``t2``… in creation order."""

    def __init__(
        self,
        services: SessionService,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.entries: dict[str, TunnelEntry] = {}
        self.clock = clock
        self._count = 0

    def __iter__(self) -> Iterator[TunnelEntry]:
        return iter(list(self.entries.values()))

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> TunnelEntry | None:
        """The entry ``key`` (or None)."""
        return self.entries.get(key)

    async def _open(self, instance: Instance, spec: TunnelSpec) -> Tunnel:
        tunnel = self.services.tunnel(instance, spec)
        await tunnel.start()  # TransportError: port in use, bad address…
        return tunnel

    async def start(
        self, instance: Instance, spec: TunnelSpec, *, name: str | None = None
    ) -> TunnelEntry:
        """Bind and start a new tunnel; raises (one clear line) if the listener cannot open."""
        tunnel = await self._open(instance, spec)
        self._count += 1
        key = f"t{self._count}"
        entry = TunnelEntry(
            key,
            self._unique(name or f"{instance.display_name}:{spec.remote_port}"),
            instance,
            spec,
            tunnel,
        )
        entry._last_time = self.clock()
        self.entries[key] = entry
        return entry

    def _unique(self, name: str) -> str:
        taken = {e.name for e in self.entries.values()}
        n = 2
        unique = name
        while unique in taken:
            unique = f"{name} ({n})"
            n += 1
        return unique

    async def stop(self, entry: TunnelEntry) -> None:
        """Close the listener and its session (the entry stays, stopped)."""
        if entry.tunnel is not None and entry.running:
            await entry.tunnel.stop()

    async def restart(self, entry: TunnelEntry) -> None:
        """Stop if running, then start again on the same local port."""
        port = entry.local_port
        await self.stop(entry)
        spec = replace(entry.spec, local_port=port) if port else entry.spec
        try:
            tunnel = await self._open(entry.instance, spec)
        except Exception as err:
            entry.tunnel = None
            entry.error = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise
        entry.tunnel = tunnel
        entry.error = ""
        entry._last_total = 0
        entry._last_time = self.clock()

    async def remove(self, entry: TunnelEntry) -> None:
        """Stop and forget."""
        await self.stop(entry)
        self.entries.pop(entry.key, None)

    def sample(self) -> None:
        """Record each tunnel's throughput since the last sample."""
        now = self.clock()
        for entry in self.entries.values():
            stats = entry.stats
            total = stats.bytes_in + stats.bytes_out
            elapsed = now - entry._last_time if entry._last_time else 0.0
            rate = (total - entry._last_total) / elapsed if elapsed > 0 else 0.0
            entry.rates.append(max(0.0, rate))
            entry._last_total = total
            entry._last_time = now

    async def aclose(self) -> None:
        """Stop every tunnel."""
        for entry in list(self.entries.values()):
            with contextlib.suppress(Exception):
                await self.stop(entry)
