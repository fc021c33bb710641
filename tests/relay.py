"""A fault-injecting websocket relay between the client and the demo fleet's data channel.

The relay listens on its own loopback port; every websocket it accepts is forwarded to the
same path on the real data-channel server. Binary frames of the reliability layer
(``input_stream_data``, ``output_stream_data`` and ``acknowledge``) can be dropped, duplicated,
reordered or delayed per direction with a seeded RNG; every other frame (the OpenDataChannel
text frame, ``agent_session_state``, ``channel_closed``) passes untouched, so every fault is
recoverable by retransmission. The relay can also cut the connection (abort both TCP sockets,
no close frame) after N frames or on demand, and stall one direction.

Directions: ``"up"`` is client -> service, ``"down"`` is service -> client.

The client reaches the relay through :class:`RelayedService`, a :class:`SessionService` whose
stream endpoints (StartSession and ResumeSession) point at the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ssmtui.models import Instance
from ssmtui.services import SessionService
from ssmtui.transport.websocket import StreamEndpoint

Direction = Literal["up", "down"]
_FAULTABLE = (b"input_stream_data", b"output_stream_data", b"acknowledge")


def message_type(msg: bytes) -> bytes:
    return msg[4:36].strip(b" \x00")


@dataclass
class Faults:
    """What happens to the faultable frames of one direction."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0  # seconds a delayed frame is held back
    delay_rate: float = 0.0


@dataclass
class RelayStats:
    connections: int = 0
    cuts: int = 0
    frames: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


class _Pipe:
    """One relayed websocket: the client's side and the upstream side."""

    def __init__(self, client: ServerConnection, upstream: ClientConnection) -> None:
        self.client = client
        self.upstream = upstream
        self.held: dict[str, bytes | None] = {"up": None, "down": None}
        self.stalled: dict[str, list[bytes | str]] = {"up": [], "down": []}

    def abort(self) -> None:
        for ws in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                ws.transport.abort()


class Relay:
    """See the module docstring. Use ``async with Relay(seed=…) as relay``."""

    def __init__(self, *, seed: int = 0, up: Faults | None = None, down: Faults | None = None):
        #: One RNG per direction: the losses of one do not depend on the traffic of the other.
        self.rngs = {"up": random.Random(seed), "down": random.Random(seed + 1)}
        self.faults: dict[str, Faults] = {"up": up or Faults(), "down": down or Faults()}
        #: Cut the connection after this many binary frames (both directions) on it.
        self.cut_after: int | None = None
        self.stall: set[str] = set()
        self.stats = RelayStats()
        self.pipes: list[_Pipe] = []
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def __aenter__(self) -> Relay:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for pipe in self.pipes:
            pipe.abort()
        for task in list(self._tasks):
            task.cancel()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    # ------------------------------------------------------------------ addresses

    def rewrite(self, url: str) -> str:
        """The relay's URL for a real stream URL (its path and query kept; the upstream
        ``host:port`` goes in the first path segment)."""
        parts = urlsplit(url)
        path = f"/{parts.scheme}/{parts.netloc}{parts.path}"
        return urlunsplit(("ws", f"127.0.0.1:{self.port}", path, parts.query, ""))

    @staticmethod
    def _upstream(path: str) -> str:
        _, scheme, netloc, rest = path.split("/", 3)
        return f"{scheme}://{netloc}/{rest}"

    # ------------------------------------------------------------------ knobs

    def cut(self) -> None:
        """Abort every relayed connection now (both sides' TCP, no close frame)."""
        for pipe in self.pipes:
            pipe.abort()
        self.stats.cuts += 1

    def set_stall(self, direction: Direction, stalled: bool) -> None:
        """Hold every frame of ``direction`` (released, in order, when the stall ends)."""
        if stalled:
            self.stall.add(direction)
            return
        self.stall.discard(direction)
        for pipe in self.pipes:
            queued, pipe.stalled[direction] = pipe.stalled[direction], []
            for msg in queued:
                self._spawn(self._send(pipe, direction, msg))

    # ------------------------------------------------------------------ forwarding

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, client: ServerConnection) -> None:
        assert client.request is not None
        target = self._upstream(client.request.path)
        try:
            upstream = await connect(
                target, compression=None, max_size=None, ping_interval=None, proxy=None
            )
        except Exception:
            client.transport.abort()
            return
        pipe = _Pipe(client, upstream)
        self.pipes.append(pipe)
        self.stats.connections += 1
        try:
            await asyncio.gather(
                self._pump(pipe, "up", client, upstream),
                self._pump(pipe, "down", upstream, client),
            )
        finally:
            pipe.abort()
            self.pipes.remove(pipe)

    async def _pump(self, pipe: _Pipe, direction: str, src: Any, dst: Any) -> None:
        try:
            async for msg in src:
                if isinstance(msg, bytes):
                    self.stats.frames[direction] += 1
                    if self.cut_after is not None and sum(self.stats.frames.values()) >= (
                        self.cut_after
                    ):
                        self.cut_after = None
                        self.cut()
                        return
                    for delay, out in self._apply(pipe, direction, msg):
                        if delay:
                            self._spawn(self._later(pipe, direction, out, delay))
                        else:
                            await self._send(pipe, direction, out)
                else:
                    await self._send(pipe, direction, msg)
            # a normal close from one side closes the other side the same way
            code = src.close_code or 1000
            with contextlib.suppress(Exception):
                await dst.close(code if code not in (1005, 1006) else 1000, src.close_reason or "")
        except ConnectionClosed:
            pipe.abort()

    async def _later(self, pipe: _Pipe, direction: str, msg: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._send(pipe, direction, msg)

    async def _send(self, pipe: _Pipe, direction: str, msg: bytes | str) -> None:
        if direction in self.stall:
            pipe.stalled[direction].append(msg)
            return
        dst = pipe.upstream if direction == "up" else pipe.client
        with contextlib.suppress(ConnectionClosed):
            await dst.send(msg)

    def _apply(self, pipe: _Pipe, direction: str, msg: bytes) -> list[tuple[float, bytes]]:
        faults, rng, stats = self.faults[direction], self.rngs[direction], self.stats
        if message_type(msg) not in _FAULTABLE:
            return self._release(pipe, direction, [(0.0, msg)])
        if faults.drop and rng.random() < faults.drop:
            stats.count(f"dropped_{direction}")
            return self._release(pipe, direction, [])
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            stats.count(f"duplicated_{direction}")
            copies = 2
        if faults.delay and rng.random() < faults.delay_rate:
            stats.count(f"delayed_{direction}")
            return self._release(pipe, direction, [(faults.delay, msg)] * copies)
        if pipe.held[direction] is None and faults.reorder and rng.random() < faults.reorder:
            stats.count(f"reordered_{direction}")
            pipe.held[direction] = msg
            self._spawn(self._flush_held(pipe, direction, msg))
            return [(0.0, msg)] * (copies - 1)
        return self._release(pipe, direction, [(0.0, msg)] * copies)

    def _release(
        self, pipe: _Pipe, direction: str, emit: list[tuple[float, bytes]]
    ) -> list[tuple[float, bytes]]:
        """A reordered (held) frame goes out after the frames that overtook it."""
        held, pipe.held[direction] = pipe.held[direction], None
        return [*emit, (0.0, held)] if held is not None else emit

    async def _flush_held(self, pipe: _Pipe, direction: str, msg: bytes) -> None:
        """A held frame that no successor released goes out after 50 ms anyway."""
        await asyncio.sleep(0.05)
        if pipe.held[direction] is msg:
            pipe.held[direction] = None
            await self._send(pipe, direction, msg)


class RelayedService(SessionService):
    """A :class:`SessionService` whose data channels (and resumes) go through ``relay``."""

    def __init__(self, *args: Any, relay: Relay, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.relay = relay

    async def _endpoint(self, instance: Instance, url: str, token: str) -> StreamEndpoint:
        real = await super()._endpoint(instance, url, token)
        return StreamEndpoint(self.relay.rewrite(url), token, real.headers)
