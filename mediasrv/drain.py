"""When has a response's audio drained out of our queues? Pure; time comes in as `now`.

After the backend says a response's audio is done, speaking state must stay set until
the audio has left both queues, and must never stick: if the queues make no progress
for `timeout_s` (a stalled or dead socket) the drain ends anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DrainOutcome(Enum):
    EMPTY = "empty"
    TIMEOUT = "timeout"


@dataclass
class DrainTracker:
    response_id: str
    started: float
    timeout_s: float
    _last_size: int | None = field(default=None, init=False)
    _last_progress: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._last_progress = self.started

    def step(self, queued: int, now: float) -> DrainOutcome | None:
        """Feed the frames still queued; return the outcome once decided."""
        if queued <= 0:
            return DrainOutcome.EMPTY
        if self._last_size is None or queued < self._last_size:
            self._last_size = queued
            self._last_progress = now
            return None
        self._last_size = queued
        if now - self._last_progress >= self.timeout_s:
            return DrainOutcome.TIMEOUT
        return None

    def elapsed_ms(self, now: float) -> int:
        return int((now - self.started) * 1000)
