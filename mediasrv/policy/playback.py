"""Playback accounting: what the caller has actually heard. Pure.

Layer: policy.

For every assistant item we count the ms received from the backend and, from mark
echoes, the ms the caller has certainly heard. Twilio echoes a mark when the audio before
it has played, or, after a `clear`, at once and unplayed (PROTOCOLS.md 1.4): names that
were pending when we sent `clear` are remembered and their echoes are not playback.

Where a barge-in cuts an item, marks alone are late: an echo reaches us a network
transit after its audio played, and the next one is up to a mark interval away (the
estimate "last echo plus time since, capped at the next pending mark" came out 60-140 ms
short on an independent emulator). The truncation point is therefore read off the
playout timeline the writer keeps (`mediasrv.call.tx`: each frame plays from max(sent, end
of the previous one) on the sender's clock; frames and `clear` travel the same path, so
what had played when `clear` reached Twilio is what that timeline had played when it was
sent). Twilio can play later than that: network jitter may drain its buffer, or delay the
first frame of a response. Every mark echo measures the timeline's lateness (echo time
minus the timeline's end of its audio); marks sent while nothing plays (probes, echoed at
once) and the smallest lateness seen give the pure network round trip, and the excess of
the recent echoes over it is how far playback has fallen behind. The cut is taken that
much earlier, never below what marks confirmed, never above what was received.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum

from mediasrv.audio import BYTES_PER_MS, FRAME_MS

# Of the least mark round trip, this much is not credited to the network when the echo
# reference is moved by it (Twilio may echo a mark some ms after its audio played).
ECHO_RTT_MARGIN_S = 0.060
# How many finished items to remember (for late truncation look-ups); older ones go.
_KEEP_ITEMS = 16
# Lateness of playback is judged on the last 3 echoes (600 ms of marks): the least of them,
# so one echo slowed on its way back does not move the cut.
_RECENT_ECHOES = 3


@dataclass(frozen=True, slots=True)
class SentFrame:
    """A frame on the phone's playout timeline (sender's clock)."""

    item_id: str
    item_ms: float  # ms of the item's audio sent up to and including this frame
    play_end: float  # when it has finished playing, if Twilio played it on arrival


@dataclass(frozen=True, slots=True)
class ClearPoint:
    """When `clear` left, and the frames that had been sent before it (oldest first)."""

    at: float
    frames: tuple[SentFrame, ...]


class MarkOutcome(Enum):
    PLAYED = "played"
    CLEARED = "cleared"  # echoed by a clear: not playback
    PROBE = "probe"  # a round-trip probe: nothing was playing
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
    play_end: float | None = None  # the playout timeline's end of the audio before it


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
        self._marks_out: OrderedDict[str, PendingMark] = OrderedDict()
        self._cleared: set[str] = set()
        self._round_trip: float | None = None  # least echo lateness seen: network alone
        self._recent: deque[float] = deque(maxlen=_RECENT_ECHOES)
        self._probes: dict[str, float] = {}  # probe name -> when it was sent

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

    def on_mark_sent(
        self, name: str, item_id: str, ms: float, is_end: bool, play_end: float | None = None
    ) -> None:
        """Record a mark sent after `ms` of the item's audio (timeline end `play_end`)."""
        self._marks_out[name] = PendingMark(item_id, ms, is_end, play_end)

    def on_probe_sent(self, name: str, at: float) -> None:
        """Record a mark sent while nothing played: its echo times the round trip alone."""
        self._probes[name] = at
        while len(self._probes) > _RECENT_ECHOES:  # a peer that never echoes: keep a few
            del self._probes[next(iter(self._probes))]

    def on_mark_echo(self, name: str, now: float) -> Echo:
        """Apply a mark echo from Twilio."""
        sent_at = self._probes.pop(name, None)
        if sent_at is not None:
            self._lateness(now - sent_at)
            return Echo(MarkOutcome.PROBE)
        if name in self._cleared:
            self._cleared.discard(name)
            return Echo(MarkOutcome.CLEARED)
        mark = self._marks_out.pop(name, None)
        if mark is None:
            return Echo(MarkOutcome.UNKNOWN)
        if mark.play_end is not None:
            late = now - mark.play_end
            self._recent.append(late)
            self._lateness(late)
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
        count = len(self._marks_out)
        self._cleared.update(self._marks_out)
        self._marks_out.clear()
        return count

    def _lateness(self, late: float) -> None:
        if self._round_trip is None or late < self._round_trip:
            self._round_trip = late

    def network_echo_delay(self) -> float:
        """Return how much of our echo's delay the network surely accounts for (s).

        The least mark round trip seen is the network both ways; less a margin, since
        Twilio may answer a mark some ms after the audio before it played, and the echo
        reference must never be moved past its echo. 0 before the first mark came back.
        """
        if self._round_trip is None:
            return 0.0
        return max(0.0, self._round_trip - ECHO_RTT_MARGIN_S)

    def playout_lag(self) -> float:
        """Return how far (s) Twilio's playback now runs behind the playout timeline."""
        if self._round_trip is None or not self._recent:
            return 0.0
        return max(0.0, min(self._recent) - self._round_trip)

    def has_unheard(self) -> bool:
        """True while any sent audio has not been confirmed played."""
        return bool(self._marks_out)

    def truncations(self, response_id: str, clear: ClearPoint) -> list[Truncation]:
        """Plan `conversation.item.truncate` for the response's partly heard items."""
        played = _played_by(clear.frames, clear.at - self.playout_lag())
        plans = []
        for item in self.items.values():
            if item.response_id != response_id or item.truncated or item.received_ms <= 0:
                continue
            heard = min(max(played.get(item.item_id, 0.0), item.heard_ms), item.received_ms)
            if item.fully_played or heard >= item.received_ms:
                continue  # nothing remains unheard: skip
            item.truncated = True
            # float error must not cost a whole ms (299.9999 played is 300)
            ms = int(heard + 1e-6)
            plans.append(Truncation(item.item_id, item.content_index, ms, item.received_ms))
        return plans


def _played_by(frames: tuple[SentFrame, ...], t: float) -> dict[str, float]:
    """Return, per item, the ms the playout timeline had played by `t`."""
    played: dict[str, float] = {}
    tick = FRAME_MS / 1000.0
    for f in frames:
        if f.play_end <= t:
            done = f.item_ms
        elif f.play_end - tick < t:
            done = f.item_ms - FRAME_MS + (t - (f.play_end - tick)) * 1000.0
        else:
            continue
        played[f.item_id] = max(played.get(f.item_id, 0.0), done)
    return played
