"""Deterministic wiring for DataChannel tests: ids, randomness, and an in-memory lossy network."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ssmtui.protocol.channel import ChannelConfig, DataChannel, Role
from ssmtui.protocol.events import Event, StreamData
from ssmtui.protocol.frames import PayloadType


def id_source(prefix: int = 0) -> Callable[[], uuid.UUID]:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=(prefix << 64) | next(counter))


def random_source(seed: int = 0) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def make(role: Role, config: ChannelConfig | None = None, **kw: object) -> DataChannel:
    prefix = 1 if role is Role.CLIENT else 2
    return DataChannel(
        role,
        new_id=id_source(prefix),
        random_bytes=random_source(prefix),
        config=config,
        session_id=str(kw.get("session_id", "sess-1")),
        target_id=str(kw.get("target_id", "i-0123456789abcdef0")),
    )


@dataclass
class Net:
    """Two channels joined by a virtual network with loss, duplication and reordering."""

    client: DataChannel
    agent: DataChannel
    loss: float = 0.0
    dup: float = 0.0
    jitter: float = 0.0  # max extra delay (s); > latency reorders
    latency: float = 0.001
    seed: int = 0
    now: float = 1_700_000_000.0
    rng: random.Random = field(init=False)
    wire: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=lambda: {"client": [], "agent": []})
    _n: itertools.count[int] = field(default_factory=itertools.count)
    on_event: Callable[[str, Event], None] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _collect(self, side: str, events: list[Event]) -> None:
        self.events[side].extend(events)
        if self.on_event is not None:
            for ev in events:
                self.on_event(side, ev)

    def flush(self) -> None:
        for side, ch in (("client", self.client), ("agent", self.agent)):
            dest = "agent" if side == "client" else "client"
            for msg in ch.data_to_send():
                copies = 0 if self.rng.random() < self.loss else 1
                if copies and self.rng.random() < self.dup:
                    copies = 2
                for _ in range(copies):
                    at = self.now + self.latency + self.rng.random() * self.jitter
                    self.wire.append((at, next(self._n), dest, msg))

    def step(self) -> bool:
        """Advance to the next delivery or timer; False when nothing is left to do."""
        self.flush()
        timers = [t for t in (self.client.get_timer(), self.agent.get_timer()) if t is not None]
        nxt = min([w[0] for w in self.wire] + timers, default=None)
        if nxt is None:
            return False
        self.now = max(self.now, nxt)
        self.wire.sort()
        while self.wire and self.wire[0][0] <= self.now:
            _, _, dest, msg = self.wire.pop(0)
            ch = self.client if dest == "client" else self.agent
            self._collect(dest, ch.receive_frame(msg, self.now))
        for side, ch in (("client", self.client), ("agent", self.agent)):
            timer = ch.get_timer()
            if timer is not None and timer <= self.now:
                self._collect(side, ch.handle_timer(self.now))
        self.flush()
        return True

    def run(self, until: Callable[[], bool], max_time: float = 600.0) -> None:
        start = self.now
        while not until():
            if not self.step() or self.now - start > max_time:
                break

    def received(self, side: str, ptype: int = PayloadType.OUTPUT) -> bytes:
        return b"".join(
            e.data
            for e in self.events[side]
            if isinstance(e, StreamData) and e.payload_type == ptype
        )
