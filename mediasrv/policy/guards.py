"""Guards of one call against hostile or failing peers. Pure: time comes in as `now`.

Layer: policy.

- `InboundBudget`: Twilio sends caller audio in real time. A peer sending faster (a
  flood) is cut off at the budget so the caller audio path -- VAD, echo guard, appends
  to the backend -- costs at most real time plus a burst, whatever arrives.
- `DeadAirWatch`: the caller waits for the AI and hears nothing. Past `limit_s` the
  call logs why, once per silence.
"""

from __future__ import annotations

# Twilio may deliver a few seconds at once after a network stall (TCP holds them back);
# 5 s of audio ahead of real time is accepted, anything beyond is a flood.
INBOUND_BURST_MS = 5000.0
# Refill slightly faster than real time: clock drift and jitter must never drop audio.
INBOUND_RATE = 1.25
DEAD_AIR_LIMIT_S = 2.0


class InboundBudget:
    """Token bucket of caller audio milliseconds."""

    def __init__(self, now: float, burst_ms: float = INBOUND_BURST_MS,
                 rate: float = INBOUND_RATE) -> None:
        self.burst_ms = burst_ms
        self.rate = rate
        self._credit = burst_ms
        self._at = now

    def take(self, ms: float, now: float) -> bool:
        """Spend `ms` of audio received at `now`; False means: over budget, drop it."""
        if now > self._at:
            self._credit = min(self.burst_ms, self._credit + (now - self._at) * 1000.0 * self.rate)
            self._at = now
        if ms > self._credit:
            return False
        self._credit -= ms
        return True


class DeadAirWatch:
    """Report when the AI owes the caller audio and none has left for `limit_s`.

    Once per silence, and again if the reason changes while it lasts (e.g. the request
    was answered with `response.created` but no audio follows). A silence starts when
    the wait begins or when the last frame left, whichever is later.
    """

    def __init__(self, limit_s: float = DEAD_AIR_LIMIT_S) -> None:
        self.limit_s = limit_s
        self._waiting_since: float | None = None
        self._silence_from: float | None = None
        self._reported = ""

    def step(self, now: float, *, reason: str, last_sent_at: float | None) -> float | None:
        """Return the silence so far when it is (newly) worth a log line, else None.

        `reason`: why the caller waits for audio ("" when nothing is owed).
        """
        if not reason:
            self._waiting_since = self._silence_from = None
            self._reported = ""
            return None
        if self._waiting_since is None:
            self._waiting_since = now
        since = self._waiting_since if last_sent_at is None else max(
            self._waiting_since, last_sent_at)
        if since != self._silence_from:  # audio flowed: a new silence
            self._silence_from = since
            self._reported = ""
        silent = now - since
        if silent < self.limit_s or reason == self._reported:
            return None
        self._reported = reason
        return silent

    def next_deadline(self) -> float | None:
        """Return when the current silence is worth a line (None: not waiting, or said)."""
        if self._silence_from is None or self._reported:
            return None
        return self._silence_from + self.limit_s
