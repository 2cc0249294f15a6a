"""Playback accounting from Twilio marks: what the caller has actually heard. Pure.

For every assistant item we count the ms received from the backend and, from mark
echoes, the ms the caller has heard. Twilio echoes a mark when the audio before it
has played, or, after a `clear`, at once and unplayed (PROTOCOLS.md 1.4): names that
were pending when we sent `clear` are remembered and their echoes are not playback.

Between echoes, audio keeps playing at real time, so `heard_ms(item, now)` adds the
time since the last echo, capped at the next pending mark and at what was received.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from .audio import BYTES_PER_MS

# How many finished items to remember (for late truncation look-ups); older ones go.
_KEEP_ITEMS = 16


class MarkOutcome(Enum):
    PLAYED = "played"
    CLEARED = "cleared"  # echoed by a clear: not playback
    UNKNOWN = "unknown"  # a name we never sent


@dataclass
class ItemPlayback:
    item_id: str
    response_id: str
    content_index: int
    received_ms: float = 0.0
    heard_ms: float = 0.0
    heard_at: float | None = None
    audio_done: bool = False
    fully_played: bool = False
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class PendingMark:
    item_id: str
    ms: float
    is_end: bool


@dataclass(frozen=True, slots=True)
class Echo:
    outcome: MarkOutcome
    item: ItemPlayback | None = None
    is_end: bool = False


@dataclass(frozen=True, slots=True)
class Truncation:
    item_id: str
    content_index: int
    audio_end_ms: int
    received_ms: float


class Playback:
    """Per-call playback ledger; the caller serialises access (the call lock)."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, ItemPlayback] = OrderedDict()
        self._pending: OrderedDict[str, PendingMark] = OrderedDict()
        self._cleared: set[str] = set()

    def on_audio(self, item_id: str, response_id: str, content_index: int, nbytes: int) -> None:
        """Count audio received from the backend for an item."""
        item = self.items.get(item_id)
        if item is None:
            item = ItemPlayback(item_id, response_id, content_index)
            self.items[item_id] = item
            while len(self.items) > _KEEP_ITEMS:
                self.items.popitem(last=False)
        item.received_ms += nbytes / BYTES_PER_MS

    def on_audio_done(self, item_id: str) -> None:
        item = self.items.get(item_id)
        if item is not None:
            item.audio_done = True

    def on_mark_sent(self, name: str, item_id: str, ms: float, is_end: bool) -> None:
        """Record a mark sent after `ms` of the item's audio."""
        self._pending[name] = PendingMark(item_id, ms, is_end)

    def on_mark_echo(self, name: str, now: float) -> Echo:
        """Apply a mark echo from Twilio."""
        if name in self._cleared:
            self._cleared.discard(name)
            return Echo(MarkOutcome.CLEARED)
        mark = self._pending.pop(name, None)
        if mark is None:
            return Echo(MarkOutcome.UNKNOWN)
        item = self.items.get(mark.item_id)
        if item is None:
            return Echo(MarkOutcome.PLAYED, None, mark.is_end)
        if mark.ms >= item.heard_ms:
            item.heard_ms = mark.ms
            item.heard_at = now
        if mark.is_end:
            item.fully_played = True
        return Echo(MarkOutcome.PLAYED, item, mark.is_end)

    def on_clear(self) -> int:
        """Record that `clear` was sent: pending echoes will not be playback."""
        count = len(self._pending)
        self._cleared.update(self._pending)
        self._pending.clear()
        return count

    def has_unheard(self) -> bool:
        """True while any sent audio has not been confirmed played."""
        return bool(self._pending)

    def heard_ms(self, item_id: str, now: float) -> float:
        """Estimate the ms of an item the caller has heard by `now`."""
        item = self.items.get(item_id)
        if item is None:
            return 0.0
        heard = item.heard_ms
        next_mark = self._next_pending_ms(item_id)
        if next_mark is not None and item.heard_at is not None:
            heard = min(heard + (now - item.heard_at) * 1000.0, next_mark)
        return min(heard, item.received_ms)

    def truncations(self, response_id: str, now: float) -> list[Truncation]:
        """Plan `conversation.item.truncate` for the response's partly heard items."""
        plans = []
        for item in self.items.values():
            if item.response_id != response_id or item.truncated or item.received_ms <= 0:
                continue
            heard = self.heard_ms(item.item_id, now)
            if item.fully_played or heard >= item.received_ms:
                continue  # nothing remains unheard: skip
            item.truncated = True
            plans.append(Truncation(item.item_id, item.content_index, int(heard), item.received_ms))
        return plans

    def _next_pending_ms(self, item_id: str) -> float | None:
        for mark in self._pending.values():
            if mark.item_id == item_id:
                return mark.ms
        return None
