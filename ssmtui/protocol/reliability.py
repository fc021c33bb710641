"""The sending half of the reliability layer: numbered frames kept until acknowledged, resent on
the reference RTT/RTO rules (PROTOCOL.md §4.3–§4.5), and held while publication is paused."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channel import ChannelConfig

__all__ = ["SendBuffer"]


@dataclass(slots=True)
class _Out:
    seq: int
    wire: bytes
    last_sent: float | None = None
    resends: int = 0


class SendBuffer:
    """Outgoing stream frames until their ack arrives.

    Frames are kept in the order of their last transmission, so the front is always the next to
    expire; a retransmission is the stored bytes, identical to the original.
    """

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.next_seq = 0
        self.rtt = config.rtt_initial
        self.rttvar = 0.0
        self.rto = config.rto_initial
        self.paused = False
        self.frames_sent = 0
        self.frames_resent = 0
        self._inflight: OrderedDict[int, _Out] = OrderedDict()
        self._unsent: deque[_Out] = deque()  # numbered while paused
        self._not_before = 0.0

    def __len__(self) -> int:
        return len(self._inflight) + len(self._unsent)

    def number(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def add(self, seq: int, wire: bytes, now: float) -> bytes | None:
        """Keep a new frame; returns the bytes to write now (None while paused)."""
        entry = _Out(seq, wire)
        if self.paused:
            self._unsent.append(entry)
            return None
        return self._transmit(entry, now)

    def _transmit(self, entry: _Out, now: float) -> bytes:
        entry.last_sent = now
        self._inflight[entry.seq] = entry
        self.frames_sent += 1
        return entry.wire

    def ack(self, seq: int, now: float) -> None:
        """Drop the acknowledged frame and feed the RTT estimator; unknown numbers are ignored."""
        entry = self._inflight.pop(seq, None)
        if entry is None or entry.last_sent is None:
            return
        sample = max(0.0, now - entry.last_sent)
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.rtt - sample)
        self.rtt = 0.875 * self.rtt + 0.125 * sample
        rto = self.rtt + max(self.config.clock_granularity, 4 * self.rttvar)
        self.rto = min(rto, self.config.rto_max)

    def pause(self) -> bool:
        """Stop writing (frames are still numbered and kept); False if already paused."""
        if self.paused:
            return False
        self.paused = True
        return True

    def resume(self, now: float) -> list[bytes] | None:
        """Write what was held; None if publication was not paused."""
        if not self.paused:
            return None
        self.paused = False
        return [self._transmit(self._unsent.popleft(), now) for _ in range(len(self._unsent))]

    def deadline(self) -> float | None:
        if not self._inflight or self.paused:
            return None
        front = next(iter(self._inflight.values()))
        assert front.last_sent is not None
        return max(front.last_sent + self.rto, self._not_before)

    def expire(self, now: float) -> tuple[list[bytes], tuple[int, int] | None]:
        """Resend expired frames, oldest first, at most ``resend_burst`` per call.

        Returns the bytes to write and, if a frame exceeded ``max_resends``, its (seq, resends).
        """
        out: list[bytes] = []
        if self.paused or now < self._not_before:
            return out, None
        budget = self.config.resend_burst
        limit = self.config.max_resends
        while self._inflight and budget:
            entry = next(iter(self._inflight.values()))
            assert entry.last_sent is not None
            if entry.last_sent + self.rto > now:  # the same expression as deadline()
                return out, None
            entry.resends += 1
            if limit is not None and entry.resends > limit:
                return out, (entry.seq, entry.resends - 1)
            self._inflight.move_to_end(entry.seq)
            entry.last_sent = now
            out.append(entry.wire)
            self.frames_resent += 1
            budget -= 1
        if self._inflight and not budget:
            self._not_before = now + self.config.resend_interval
        return out, None
