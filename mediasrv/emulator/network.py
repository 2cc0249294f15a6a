"""Transit between the server and Twilio's media edge, one way at a time. Pure.

Layer: emulator.

A Media Stream is one WebSocket over TCP, so each direction delivers messages in the
order sent, each `delay + jitter` after it left; a late message holds back the ones
behind it (head-of-line blocking), it never overtakes them. `Link` models one
direction: `push` a message at the time it leaves, `pop_due(now)` what has arrived.

What is late, as Twilio behaves:
- server -> Twilio: `media`, `mark` and `clear` act on the playout only on arrival, so
  a `clear` lets `down_ms` more audio play than the server saw when it sent it;
- Twilio -> server: inbound `media` and mark echoes leave Twilio when their audio was
  captured / played and reach the server `up_ms` later.

Defaults of 30 ms each way are a server in the same region as Twilio's media edge
(ITU-T G.114 budgets a whole mouth-to-ear path at 150 ms; this leg is a small part of
it); benchmarks vary 10-80 ms.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class NetworkTiming:
    """One-way transit each way (ms), with up to `jitter_ms` extra per message."""

    down_ms: float = 30.0  # server -> Twilio
    up_ms: float = 30.0  # Twilio -> server
    jitter_ms: float = 0.0
    seed: int = 0

    @classmethod
    def instant(cls) -> NetworkTiming:
        """Return a zero-delay network (a server co-located with Twilio: tests only)."""
        return cls(0.0, 0.0, 0.0)

    def describe(self) -> str:
        jitter = f" +0-{self.jitter_ms:g}" if self.jitter_ms else ""
        return f"{self.down_ms:g}/{self.up_ms:g} ms{jitter}"


class Link(Generic[T]):
    """One direction of the socket: in-order delivery after a delay. Pure: `now` in."""

    def __init__(self, delay_ms: float, jitter_ms: float = 0.0, seed: int = 0) -> None:
        self._delay = delay_ms / 1000.0
        self._jitter = jitter_ms / 1000.0
        self._rng = random.Random(seed)
        self._queue: deque[tuple[float, T]] = deque()
        self._last_due = float("-inf")

    def push(self, item: T, sent_at: float, not_before: float = float("-inf")) -> float:
        """Queue `item` leaving at `sent_at`; return when it arrives (never before
        `not_before`: the receiver's present, when it learns of the item late)."""
        extra = self._rng.uniform(0.0, self._jitter) if self._jitter else 0.0
        due = max(self._last_due, sent_at + self._delay + extra, not_before)  # never overtakes
        self._last_due = due
        self._queue.append((due, item))
        return due

    def next_due(self) -> float | None:
        """Return when the next queued item arrives (None if nothing is in flight)."""
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[tuple[float, T]]:
        """Return every (arrival time, item) that has arrived by `now`, in order."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft())
        return out

    def pop_next(self) -> tuple[float, T]:
        """Return the next item in flight, whenever it arrives."""
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)
