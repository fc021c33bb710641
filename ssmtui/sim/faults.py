"""Fault injection for the simulated agents, applied where the agent meets its websocket.

A :class:`FaultPlan` says what goes wrong; a :class:`FaultInjector` (one per agent session,
with its own seeded RNG) applies it to the frames the agent writes and reads. The protocol core
never sees a fault: frames are dropped, duplicated, held back, delayed or corrupted on their way
between :class:`~ssmtui.protocol.channel.DataChannel` and the socket, exactly as a lossy network
or a misbehaving peer would do it.

Plans come from tests (``FaultPlan(drop=Rate(0.2))``) or from a ``--fault`` spec through
:func:`parse_fault`::

    [agent:]ITEM[,ITEM...]          ITEM = KEY[=VALUE]

    drop=RATE        drop frames                     dup=RATE     send frames twice
    reorder=RATE     swap a frame with the next one  delay=SECONDS[@RATE]  hold frames back
    noack            drop every acknowledge the agent sends (it "stops acking")
    close=N          drop the websocket abruptly (no close frame) after the N-th frame sent
    corrupt=N        flip a payload byte of the N-th output_stream_data sent (bad digest)
    slow=SECONDS     extra delay after each output_stream_data sent (a slow agent)
    handshake=ignore|drop   ignore the client's HandshakeResponse (the agent times out), or
                     drop the connection when it arrives (like a failed kms:Decrypt)
    offline=SECONDS  the instance goes offline that long after the session started
                     (PingStatus ConnectionLost, the session drops without channel_closed)
    slowstart=SECONDS       the session plugin (pty, command, port) starts that much later
    dir=out|in|both  which frames drop/dup/reorder/delay act on (default out: agent -> client)
    seed=N           RNG seed (default 0)       instance=ID / session=ID   restrict the plan

    RATE is a probability (``0.1``) or ``1/N`` for every N-th eligible frame.

Eligible frames for drop/dup/reorder/delay are the reliability layer's own (stream data and
acknowledgements), so every such fault is recoverable by retransmission;
``agent_session_state`` and the service's ``channel_closed`` pass untouched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["FaultInjector", "FaultPlan", "Rate", "parse_fault"]

Direction = Literal["out", "in", "both"]

_TYPE = slice(4, 36)
_PTYPE = slice(112, 116)
_HEADER = 120
_STREAM_TYPES = (b"output_stream_data", b"input_stream_data")
_ACK = b"acknowledge"
_HANDSHAKE_RESPONSE = 6


@dataclass(frozen=True, slots=True)
class Rate:
    """How often a fault hits: with probability ``prob``, or on every ``every``-th frame."""

    prob: float = 0.0
    every: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"probability {self.prob} is not in [0, 1]")
        if self.every < 0:
            raise ValueError(f"every-N count {self.every} is negative")

    @property
    def active(self) -> bool:
        return self.prob > 0 or self.every > 0

    def hit(self, rng: random.Random, count: int) -> bool:
        """Whether the ``count``-th (1-based) eligible frame is hit."""
        if self.every:
            return count % self.every == 0
        return self.prob > 0 and rng.random() < self.prob

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``0.25`` (probability) or ``1/4`` (every fourth)."""
        text = text.strip()
        if "/" in text:
            one, _, n = text.partition("/")
            if one.strip() != "1" or int(n) < 1:
                raise ValueError(f"bad rate {text!r}: use 1/N")
            return cls(every=int(n))
        return cls(prob=float(text))


NEVER = Rate()
ALWAYS = Rate(prob=1.0)


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong for the agent sessions it selects (see the module docstring)."""

    #: Only sessions on this instance (None: any).
    instance_id: str | None = None
    #: Only this session (None: any).
    session_id: str | None = None
    #: Seed of the per-session RNG (same seed, same losses).
    seed: int = 0
    #: Frames that drop/duplicate/reorder/delay act on: sent by the agent, received, or both.
    direction: Direction = "out"
    drop: Rate = NEVER
    duplicate: Rate = NEVER
    reorder: Rate = NEVER
    #: Seconds a delayed frame is held back (later frames overtake it).
    delay: float = 0.0
    delay_rate: Rate = ALWAYS
    #: Drop every acknowledge the agent sends.
    stop_acking: bool = False
    #: Abort the websocket (no close frame) right after this many frames were sent.
    close_after: int | None = None
    #: Flip one payload byte of the N-th (1-based) output_stream_data sent.
    corrupt: int | None = None
    #: Extra seconds after each output_stream_data sent.
    slow: float = 0.0
    #: ``"ignore"``: drop the client's HandshakeResponse; ``"drop"``: drop the connection on it.
    handshake: Literal["ignore", "drop"] | None = None
    #: Seconds after the session started when its instance goes offline.
    offline_after: float | None = None
    #: Seconds the session plugin waits before it starts (input meanwhile is not acked).
    slow_start: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in ("out", "in", "both"):
            raise ValueError(f"direction must be out, in or both, not {self.direction!r}")
        if self.handshake not in (None, "ignore", "drop"):
            raise ValueError(f"handshake fault must be ignore or drop, not {self.handshake!r}")
        for name in ("delay", "slow", "slow_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("close_after", "corrupt"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")

    def matches(self, instance_id: str, session_id: str) -> bool:
        """Whether the plan applies to this session."""
        return self.instance_id in (None, instance_id) and self.session_id in (None, session_id)

    def for_session(self, session_id: str) -> FaultPlan:
        """A copy restricted to one session."""
        return replace(self, session_id=session_id)


# --------------------------------------------------------------------------- parsing

_RATE_KEYS = {"drop": "drop", "dup": "duplicate", "duplicate": "duplicate", "reorder": "reorder"}
_FLOAT_KEYS = {"slow": "slow", "offline": "offline_after", "slowstart": "slow_start"}
_INT_KEYS = {"close": "close_after", "corrupt": "corrupt", "seed": "seed"}
_TEXT_KEYS = {"instance": "instance_id", "session": "session_id", "dir": "direction"}
_GRAMMAR = (
    "[agent:]ITEM[,ITEM...] with ITEM one of drop=RATE, dup=RATE, reorder=RATE, "
    "delay=SECONDS[@RATE], noack, close=N, corrupt=N, slow=SECONDS, handshake=ignore|drop, "
    "offline=SECONDS, slowstart=SECONDS, dir=out|in|both, seed=N, instance=ID, session=ID "
    "(RATE: a probability like 0.1, or 1/N for every N-th frame)"
)


def parse_fault(spec: str) -> FaultPlan:
    """Parse a ``--fault`` spec for the agents (grammar in the module docstring).

    Raises :class:`ValueError` with the grammar on any mistake.
    """
    text = spec.strip()
    if text.lower().startswith("agent:"):
        text = text[len("agent:") :]
    kw: dict[str, object] = {}
    try:
        if not text:
            raise ValueError("empty spec")
        for item in text.split(","):
            key, sep, value = item.strip().partition("=")
            key = key.strip().lower().replace("-", "").replace("_", "")
            value = value.strip()
            if key in ("noack", "stopacking") and not sep:
                kw["stop_acking"] = True
            elif not sep or not value:
                raise ValueError(f"{key!r} needs a value")
            elif key in _RATE_KEYS:
                kw[_RATE_KEYS[key]] = Rate.parse(value)
            elif key == "delay":
                seconds, _, rate = value.partition("@")
                kw["delay"] = float(seconds)
                if rate:
                    kw["delay_rate"] = Rate.parse(rate)
            elif key in _FLOAT_KEYS:
                kw[_FLOAT_KEYS[key]] = float(value)
            elif key in _INT_KEYS:
                kw[_INT_KEYS[key]] = int(value)
            elif key in _TEXT_KEYS:
                kw[_TEXT_KEYS[key]] = value
            elif key == "handshake":
                kw["handshake"] = value.lower()
            else:
                raise ValueError(f"unknown item {key!r}")
        return FaultPlan(**kw)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad agent fault spec {spec!r} ({exc}): use {_GRAMMAR}") from None


# --------------------------------------------------------------------------- applying

Emit = list[tuple[float, bytes]]
"""Frames to put on the wire: (delay in seconds, message); delay 0 means now, in order."""


def _message_type(msg: bytes) -> bytes:
    return msg[_TYPE].strip(b" \x00")


def _payload_type(msg: bytes) -> int:
    return int.from_bytes(msg[_PTYPE], "big") if len(msg) >= _HEADER else 0


class FaultInjector:
    """Applies one :class:`FaultPlan` to one agent session's traffic (sans-I/O).

    :meth:`outgoing` and :meth:`incoming` take one websocket message and return what to put
    through instead. Flags tell the caller to act: :attr:`close_requested` (abort the socket now)
    and :attr:`abort_requested` (drop the connection, the handshake "failed").
    """

    def __init__(self, plan: FaultPlan, rng: random.Random | None = None) -> None:
        self.plan = plan
        self.rng = rng or random.Random(plan.seed)
        self._out = plan.direction in ("out", "both")
        self._in = plan.direction in ("in", "both")
        self._eligible_out = 0
        self._eligible_in = 0
        self._outputs = 0
        self.frames_sent = 0
        self._held: bytes | None = None
        self._held_in: bytes | None = None
        self.close_requested = False
        self._closed_once = False
        self.abort_requested = False
        #: What was done, for tests and logs.
        self.stats: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    @property
    def holding(self) -> bool:
        """A reordered frame waits for a successor (call :meth:`release_held` if none comes)."""
        return self._held is not None

    def release_held(self) -> Emit:
        held, self._held = self._held, None
        return [(0.0, held)] if held is not None else []

    def release_held_in(self) -> Emit:
        held, self._held_in = self._held_in, None
        return [(0.0, held)] if held is not None else []

    @property
    def holding_in(self) -> bool:
        return self._held_in is not None

    def sent(self, n: int = 1) -> None:
        """Count frames actually written; arms :attr:`close_requested` at ``close_after``."""
        self.frames_sent += n
        limit = self.plan.close_after
        if limit is not None and not self._closed_once and self.frames_sent >= limit:
            self._closed_once = True
            self.close_requested = True

    def slow_delay(self, msg: bytes) -> float:
        """Seconds to pause after writing ``msg`` (the slow-agent fault)."""
        if self.plan.slow and _message_type(msg) == b"output_stream_data":
            return self.plan.slow
        return 0.0

    def outgoing(self, msg: bytes) -> Emit:
        """Apply the plan to a frame the agent is about to send."""
        mtype = _message_type(msg)
        plan = self.plan
        if mtype == _ACK and plan.stop_acking:
            self._count("ack_dropped")
            return []
        if mtype == b"output_stream_data":
            self._outputs += 1
            if plan.corrupt is not None and self._outputs == plan.corrupt and len(msg) > _HEADER:
                flipped = bytearray(msg)
                flipped[_HEADER] ^= 0xFF
                msg = bytes(flipped)
                self._count("corrupted")
        if not (self._out and (mtype in _STREAM_TYPES or mtype == _ACK)):
            return self._with_held([(0.0, msg)])
        self._eligible_out += 1
        return self._apply(msg, self._eligible_out, outgoing=True)

    def incoming(self, msg: bytes) -> Emit:
        """Apply the plan to a frame the agent received."""
        mtype = _message_type(msg)
        if mtype == b"input_stream_data" and _payload_type(msg) == _HANDSHAKE_RESPONSE:
            if self.plan.handshake == "ignore":
                self._count("handshake_ignored")
                return []
            if self.plan.handshake == "drop":
                self._count("handshake_dropped")
                self.abort_requested = True
                return []
        if not (self._in and (mtype in _STREAM_TYPES or mtype == _ACK)):
            return [(0.0, msg)]
        self._eligible_in += 1
        return self._apply(msg, self._eligible_in, outgoing=False)

    def _apply(self, msg: bytes, count: int, *, outgoing: bool) -> Emit:
        plan, rng = self.plan, self.rng
        if plan.drop.hit(rng, count):
            self._count("dropped_out" if outgoing else "dropped_in")
            return self._with_held([], outgoing)
        copies = 2 if plan.duplicate.hit(rng, count) else 1
        if copies == 2:
            self._count("duplicated_out" if outgoing else "duplicated_in")
        if plan.delay and plan.delay_rate.hit(rng, count):
            self._count("delayed_out" if outgoing else "delayed_in")
            return self._with_held([(plan.delay, msg)] * copies, outgoing)
        held = self._held if outgoing else self._held_in
        if held is None and plan.reorder.hit(rng, count):
            self._count("reordered_out" if outgoing else "reordered_in")
            if outgoing:
                self._held = msg
            else:
                self._held_in = msg
            return [(0.0, msg)] * (copies - 1)
        return self._with_held([(0.0, msg)] * copies, outgoing)

    def _with_held(self, emit: Emit, outgoing: bool = True) -> Emit:
        """Append a held (reordered) frame after the frames that overtake it."""
        if outgoing:
            return emit + self.release_held()
        return emit + self.release_held_in()
