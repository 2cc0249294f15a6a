"""What really happened at Twilio's end, to judge the server by. Pure.

Layer: emulator.

Truncation truth: for every `clear`, how many ms of each interrupted assistant item the
emulated phone had played when the `clear` *reached* Twilio, from the playout model's
own byte accounting, set against the `audio_end_ms` the server sent in
`conversation.item.truncate` (read back from the Realtime backend). Nothing here uses
the server's mark arithmetic: marks only tell items apart, by where they sit in the
stream of audio bytes (a mark names the item of the audio received before it, back to
the previous mark; audio after an item's last mark, still unmarked when a clear drops
it, is that item's). Played bytes are counted from the playout's heard segments.

First syllable at the backend: whether the frame holding the caller's first speech
reached the Realtime backend's input buffer, and when: found by its exact bytes in
what the backend received (the bridge forwards the caller's frames as they came).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mediasrv.audio import FRAME_BYTES
from mediasrv.emulator.metrics import CallResult, item_of
from mediasrv.emulator.playout import RATE, HeardSegment, ServerMark

UNMARKED = "(unmarked)"


@dataclass(frozen=True)
class ItemCut:
    """One item at one clear: what had played, and where the server said it stopped."""

    item_id: str
    played_ms: float  # played at Twilio before the clear reached it: the truth
    received_ms: float  # of the item's audio, what had reached Twilio by then
    dropped_ms: float  # of that, thrown away by the clear
    audio_end_ms: int | None  # the server's truncate point (None: it sent none)

    @property
    def error_ms(self) -> float | None:
        """Signed error of the truncate point: negative = short of what played."""
        return None if self.audio_end_ms is None else round(self.audio_end_ms - self.played_ms, 3)


@dataclass(frozen=True)
class ClearTruth:
    index: int
    sent_at: float  # left the server (read from the socket)
    reached_at: float  # reached Twilio's playout
    items: tuple[ItemCut, ...]


def item_ranges(marks: Sequence[ServerMark], upto: int) -> list[tuple[str, int, int]]:
    """Return (item, first byte, end byte) stream ranges, audio before `upto` only."""
    out: list[tuple[str, int, int]] = []
    prev = 0
    for m in marks:
        if m.offset > prev:
            out.append((item_of(m.name), prev, min(m.offset, upto)))
            prev = m.offset
        if prev >= upto:
            return out
    if upto > prev:  # unmarked tail: the last marked item's, if it had not ended
        last = marks[-1].name if marks else ""
        owner = item_of(last) if last and not last.endswith(":end") else UNMARKED
        out.append((owner, prev, upto))
    return out


def _played_before(heard: Sequence[HeardSegment], lo: int, hi: int, t: float) -> int:
    total = 0
    for seg in heard:
        if seg.start >= t:
            break
        played = min(len(seg.data), int((t - seg.start) * RATE + 1e-6))
        a, b = max(lo, seg.offset), min(hi, seg.offset + played)
        total += max(0, b - a)
    return total


def _ms(nbytes: int) -> float:
    return round(nbytes * 1000 / RATE, 3)


def clear_truths(r: CallResult, truncations: Mapping[str, int]) -> list[ClearTruth]:
    """Return, per clear, the truth for every item it interrupted or the server truncated.

    `truncations` maps item id -> `audio_end_ms` the server sent for it (first one).
    """
    out = []
    claimed: set[str] = set()
    since = 0  # stream offset where this clear's generation of audio starts
    for i, c in enumerate(r.clears):
        marks = [m for m in r.server_marks if m.at <= c.at]
        per_item: dict[str, list[int]] = {}
        for item, lo, hi in item_ranges(marks, c.offset):
            if hi <= since:
                continue
            lo = max(lo, since)
            acc = per_item.setdefault(item, [0, 0, 0])
            acc[0] += _played_before(r.heard, lo, hi, c.at)
            acc[1] += hi - lo
            acc[2] += max(0, hi - max(lo, c.offset - c.dropped_bytes))
        cuts = []
        for item, (played, received, dropped) in per_item.items():
            truncated = item in truncations and item not in claimed
            if dropped or truncated:
                claimed.add(item)
                end = truncations.get(item) if truncated else None
                cuts.append(ItemCut(item, _ms(played), _ms(received), _ms(dropped), end))
        out.append(ClearTruth(i, r.clear_sent_at(i), c.at, tuple(cuts)))
        since = c.offset
    return out


def onset_frame(r: CallResult, segment: int) -> int | None:
    """Return the inbound frame index of a placed clip's first speech frame."""
    onset = r.speech[segment].onset
    return None if onset is None else int(round(onset / (FRAME_BYTES / RATE)))


def received_at(
    sent_ulaw: bytes, frame: int, appends: Sequence[tuple[float, bytes]]
) -> float | None:
    """Return when the backend's input buffer got inbound frame `frame`, None if never."""
    target = sent_ulaw[frame * FRAME_BYTES : (frame + 1) * FRAME_BYTES]
    if len(target) < FRAME_BYTES:
        return None
    stream = b"".join(audio for _, audio in appends)
    pos = stream.find(target)
    if pos < 0:
        return None
    end = 0
    for t, audio in appends:
        end += len(audio)
        if pos + FRAME_BYTES <= end:
            return t
    return None


def forwards_as_sent(sent_ulaw: bytes, appends: Sequence[tuple[float, bytes]]) -> bool:
    """Tell whether the backend got any of the caller's frames byte for byte.

    If the bridge transformed the audio (an echo canceller's residual, say) nothing
    matches and `received_at` cannot judge: the figure is then not available.
    """
    stream = b"".join(audio for _, audio in appends)
    silent = bytes([0xFF]) * FRAME_BYTES
    for i in range(0, len(sent_ulaw) - FRAME_BYTES + 1, FRAME_BYTES):
        frame = sent_ulaw[i : i + FRAME_BYTES]
        if frame != silent and frame in stream:
            return True
    return False

