"""When has a response's audio drained out of our queues? Pure; time comes in as `now`.

Layer: policy.

After the backend says a response's audio is done, speaking state must stay set until
the audio has left the playout buffer, and must never stick: if no frame leaves for
Twilio for `timeout_s` (a stalled or dead socket) the drain ends anyway. Progress is
when a frame last *left* (the tx loop's clock), not the queue size: audio moving from
the overflow into the queue changes sizes without bringing the end any closer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DrainOutcome(Enum):
    EMPTY = "empty"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class DrainWatch:
    """One response's drain, from `started` (when all its audio was queued)."""

    response_id: str
    started: float
    timeout_s: float

    def step(self, queued: int, last_sent_at: float | None, now: float) -> DrainOutcome | None:
        """Judge the drain from the frames still queued and when a frame last left."""
        if queued <= 0:
            return DrainOutcome.EMPTY
        if now >= self.deadline(last_sent_at):
            return DrainOutcome.TIMEOUT
        return None

    def deadline(self, last_sent_at: float | None) -> float:
        """Return when the drain times out unless another frame leaves first."""
        progress = self.started if last_sent_at is None else max(self.started, last_sent_at)
        return progress + self.timeout_s

    def elapsed_ms(self, now: float) -> int:
        return int((now - self.started) * 1000)

