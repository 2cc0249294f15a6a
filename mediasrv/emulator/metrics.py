"""What an emulated call recorded, and the numbers drawn from it. Pure: no I/O.

Layer: emulator.

All times are seconds of *call time*: 0 is when the emulated call began (before the
voice webhook). Stream time s of the caller's script is call time `media_t0 + s`.

Two times per `clear`: `clear_sent` is when the emulator read it from the socket (on
loopback, when the server sent it), `ClearRecord.at` when it reached Twilio's playout
(after the modelled server -> Twilio transit). Barge-in latency is measured to the
first (the server's decision plus its own delays); what played is judged at the second.

Server audio is tied to marks through stream offsets (see playout.py): byte x of the
server's audio belongs to the first mark received after it. When mark names look like
"<response_id>:<item_id>:<sent_ms>", responses and items are counted from them;
otherwise bursts of heard audio stand in for responses.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np

from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.playout import (
    RATE,
    ClearRecord,
    HeardSegment,
    MarkEcho,
    MarkName,
    ServerMark,
)
from mediasrv.emulator.script import SpeechSegment

BURST_GAP_S = 0.4  # a silence this long, closed by a mark echo, separates two responses
LEAK_WINDOW_S = 0.4  # without response ids: audio arriving this soon after a clear is stale
UNDERRUN_SLACK_MS = 10.0  # a frame later than its predecessor's length plus this is a gap
_EPS = 1e-3


@dataclass(frozen=True)
class TimelineEvent:
    t: float
    event: str
    detail: str = ""


@dataclass(frozen=True)
class Burst:
    start: float
    end: float
    heard_bytes: int
    interrupted: bool
    offset: int = 0  # stream offset of its first heard byte


@dataclass(frozen=True)
class CallResult:
    """Everything one emulated call saw and did; `summary()` gives the metrics."""

    call_sid: str
    stream_sid: str
    stream_url: str
    ws_url: str
    custom_parameters: dict[str, str]
    connected: bool
    error: str | None
    media_t0: float
    ended_at: float
    frames_sent: int
    sent_ulaw: bytes
    timeline: tuple[TimelineEvent, ...]
    media_arrivals: tuple[tuple[float, int], ...]
    heard: tuple[HeardSegment, ...]
    server_marks: tuple[ServerMark, ...]
    echoes: tuple[MarkEcho, ...]
    clears: tuple[ClearRecord, ...]
    speech: tuple[SpeechSegment, ...]
    hangup_by: str | None
    hangup_at: float | None
    tx_late_max_ms: float = 0.0  # how far our own pacer slipped: emulator overload
    tx_late_frames: int = 0
    clear_sent: tuple[float, ...] = ()  # per clear: read from the socket (server send)
    network: NetworkTiming | None = None

    def clear_sent_at(self, i: int) -> float:
        """Return when clear i left the server (its arrival if unknown)."""
        return self.clear_sent[i] if i < len(self.clear_sent) else self.clears[i].at

    def bursts(self) -> list[Burst]:
        """Return heard AI audio grouped into bursts (split by clears or long marked gaps)."""
        return heard_bursts(self.heard, self.clears, self.echoes, bool(self.server_marks))

    def summary(self) -> dict[str, Any]:
        """Return the call's metrics as a JSON-able dict."""
        return summarize(self)


def heard_bursts(
    heard: tuple[HeardSegment, ...],
    clears: tuple[ClearRecord, ...],
    echoes: tuple[MarkEcho, ...],
    marks_in_use: bool,
) -> list[Burst]:
    """Group heard segments: a clear, or a >= 400 ms gap with a mark echo, starts a burst."""
    spans: list[list[float]] = []  # [start, end, bytes, offset]
    for seg in heard:
        if spans:
            start, end = spans[-1][1], seg.start
            cleared = any(start - _EPS <= c.at <= end + _EPS for c in clears)
            marked = any(e.played and start - _EPS <= e.at <= end + _EPS for e in echoes)
            if not cleared and (end - start < BURST_GAP_S or (marks_in_use and not marked)):
                spans[-1][1] = seg.end
                spans[-1][2] += len(seg.data)
                continue
        spans.append([seg.start, seg.end, float(len(seg.data)), float(seg.offset)])
    return [
        Burst(s, e, int(n), any(c.dropped_bytes and s <= c.at <= e + _EPS for c in clears), int(o))
        for s, e, n, o in spans
    ]


def heard_bytes_in(heard: tuple[HeardSegment, ...], lo: int, hi: int) -> int:
    """Return how many bytes of the server's stream range [lo, hi) were played."""
    total = 0
    for seg in heard:
        a, b = max(lo, seg.offset), min(hi, seg.offset + len(seg.data))
        total += max(0, b - a)
    return total


def heard_span(heard: tuple[HeardSegment, ...], lo: int, hi: int) -> Burst | None:
    """Return when the stream range [lo, hi) was heard: first to last played byte."""
    start = end = None
    total = 0
    for seg in heard:
        a, b = max(lo, seg.offset), min(hi, seg.offset + len(seg.data))
        if b > a:
            if start is None:
                start = seg.start + (a - seg.offset) / RATE
            end = seg.start + (b - seg.offset) / RATE
            total += b - a
    if start is None or end is None:
        return None
    return Burst(start, end, total, False)


def greeting(r: CallResult, bursts: list[Burst]) -> Burst | None:
    """Return the first response as heard: the first burst, cut where marks show the
    next response's audio following in the same burst."""
    ids = response_ids(r)
    if len(ids) < 2 or response_id(r.server_marks[0].name) is None:
        return bursts[0] if bursts else None
    rid = ids[0]
    hi = 0
    for m in r.server_marks:  # the first response's audio ends at its last mark
        if response_id(m.name) != rid:
            break
        hi = m.offset
    span = heard_span(r.heard, 0, hi)
    if span is None:
        return None
    cut = any(response_id(n) == rid for c in r.clears for n in c.flushed)
    # A server pacing at real time may have no mark pending when the clear lands; then a
    # clear after the greeting began and before the next response's first mark, its end
    # mark (":end") never heard, still cuts it.
    ended = any(e.played and response_id(e.name) == rid and e.name.endswith(":end")
                for e in r.echoes)
    nxt = next((m.at for m in r.server_marks if response_id(m.name) != rid), float("inf"))
    cut = cut or (not ended and any(span.start <= c.at <= nxt for c in r.clears))
    return Burst(span.start, span.end, span.heard_bytes, cut)


def response_ids(r: CallResult) -> list[str]:
    """Return the distinct response ids named by the server's marks, in order."""
    return list(dict.fromkeys(i for m in r.server_marks if (i := response_id(m.name))))


def count_responses(r: CallResult, bursts: list[Burst]) -> int:
    """Count responses: ids from marks, plus bursts with no mark behind them at all."""
    ids = response_ids(r)
    if not ids:
        return len(bursts)
    last = max(m.offset for m in r.server_marks)
    return len(ids) + sum(1 for b in bursts if b.offset >= last)


def response_id(name: str) -> str | None:
    """Return the response id from a "<response_id>:<item_id>:<sent_ms>" mark name."""
    mark = MarkName.parse(name)
    return mark.response_id if mark else None


def item_of(name: str) -> str:
    """Return the item id of a "<response_id>:<item_id>:..." mark name (else the name)."""
    mark = MarkName.parse(name)
    return mark.item_id if mark else name


def _ms(nbytes: float) -> float:
    return round(nbytes * 1000 / RATE, 1)


def _t(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def heard_per_item(r: CallResult) -> dict[str, float]:
    """Return ms heard per item: each heard byte counts for the next mark's item."""
    out: dict[str, float] = {}
    lo = 0
    for m in r.server_marks:
        key = item_of(m.name)
        out[key] = out.get(key, 0.0) + _ms(heard_bytes_in(r.heard, lo, m.offset))
        lo = m.offset
    tail = heard_bytes_in(r.heard, lo, sum(n for _, n in r.media_arrivals))
    if tail:
        out["(unmarked)"] = _ms(tail)
    return out


def marked_per_item(echoes: tuple[MarkEcho, ...]) -> dict[str, float]:
    """Return, per item, the largest <sent_ms> among its marks echoed as played."""
    out: dict[str, float] = {}
    for e in echoes:
        mark = MarkName.parse(e.name)
        if e.played and mark is not None and mark.sent_ms is not None:
            out[mark.item_id] = max(out.get(mark.item_id, 0.0), float(mark.sent_ms))
    return out


def leaked_after_clear(r: CallResult, clear: ClearRecord) -> int:
    """Return bytes heard after `clear` that belong to the burst it interrupted."""
    before = [m for m in r.server_marks if m.offset <= clear.offset and m.at <= clear.at]
    rid = response_id(before[-1].name) if before else None
    if rid is not None:
        hi = clear.offset
        for m in r.server_marks:
            if m.offset >= clear.offset and m.at > clear.at:
                if response_id(m.name) != rid:
                    break
                hi = m.offset
    else:
        hi, offset = clear.offset, 0
        for t, n in r.media_arrivals:
            offset += n
            if clear.at < t <= clear.at + LEAK_WINDOW_S:
                hi = offset
    return heard_bytes_in(r.heard, clear.offset, hi)


def pacing(r: CallResult) -> tuple[dict[str, Any], list[float]]:
    """Return inter-arrival deviation stats while the AI speaks, and the underrun gaps."""
    deviations: list[float] = []
    gaps: list[float] = []
    clear_times = [c.at for c in r.clears]
    for (t0, n0), (t1, _) in zip(r.media_arrivals, r.media_arrivals[1:], strict=False):
        dt_ms, expected_ms = (t1 - t0) * 1000, n0 * 1000 / RATE
        if t1 - t0 >= BURST_GAP_S or bisect_right(clear_times, t1) > bisect_right(clear_times, t0):
            continue  # between bursts, not inside one
        deviations.append(abs(dt_ms - expected_ms))
        if dt_ms - expected_ms > UNDERRUN_SLACK_MS:
            gaps.append(round(dt_ms, 1))
    stats: dict[str, Any] = {"intervals": len(deviations)}
    if deviations:
        d = np.asarray(deviations)
        stats |= {
            "p50_ms": round(float(np.percentile(d, 50)), 2),
            "p99_ms": round(float(np.percentile(d, 99)), 2),
            "max_ms": round(float(d.max()), 2),
        }
    return stats, gaps


def speech_report(r: CallResult, bursts: list[Burst]) -> list[dict[str, Any]]:
    """Return per caller-speech segment: onset, whether the AI was talking, barge-in latency."""
    rows = []
    onsets = [r.media_t0 + s.onset if s.onset is not None else None for s in r.speech]
    for i, (seg, onset) in enumerate(zip(r.speech, onsets, strict=True)):
        row: dict[str, Any] = {
            "file": seg.name,
            "placed_s": _t(r.media_t0 + seg.placed_at),
            "onset_s": _t(onset),
            "end_s": _t(None if seg.end is None else r.media_t0 + seg.end),
            "during_ai_audio": False,
            "barge_in_latency_ms": None,
            "after_hangup": onset is not None and onset >= r.ended_at,
        }
        if onset is not None:
            row["during_ai_audio"] = any(b.start <= onset < b.end for b in bursts)
            nxt = min((o for o in onsets[i + 1 :] if o is not None), default=float("inf"))
            sent = [r.clear_sent_at(k) for k in range(len(r.clears))]
            clear = next((t for t in sent if onset <= t < nxt), None)
            if row["during_ai_audio"] and clear is not None:
                row["barge_in_latency_ms"] = round((clear - onset) * 1000, 1)
        rows.append(row)
    return rows


def summarize(r: CallResult) -> dict[str, Any]:
    """Return the call's metrics as a JSON-able dict (times in s of call time, else ms)."""
    bursts = r.bursts()
    ids = response_ids(r)
    pace, gaps = pacing(r)
    first = greeting(r, bursts)
    speech = speech_report(r, bursts)
    return {
        "call_sid": r.call_sid,
        "stream_sid": r.stream_sid,
        "connected": r.connected,
        "error": r.error,
        "duration_s": _t(r.ended_at),
        "frames_sent": r.frames_sent,
        "media_received": len(r.media_arrivals),
        "time_to_first_audio_ms": (
            round(r.media_arrivals[0][0] * 1000, 1) if r.media_arrivals else None
        ),
        # from the stream's start (the `start` message sent), not from the webhook
        "first_audio_after_start_ms": (
            round((r.media_arrivals[0][0] - r.media_t0) * 1000, 1) if r.media_arrivals
            else None
        ),
        "greeting": None
        if first is None
        else {
            "start_s": _t(first.start),
            "end_s": _t(first.end),
            "heard_ms": _ms(first.heard_bytes),
            "interrupted": first.interrupted,
        },
        "caller_speech": speech,
        "barge_in_latency_ms": [
            s["barge_in_latency_ms"] for s in speech if s["barge_in_latency_ms"] is not None
        ],
        "clears": [
            {
                "t_s": _t(c.at),
                "sent_s": _t(r.clear_sent_at(i)),
                "dropped_ms": _ms(c.dropped_bytes),
                "flushed_marks": len(c.flushed),
                "heard_after_ms": _ms(leaked_after_clear(r, c)),
            }
            for i, c in enumerate(r.clears)
        ],
        "bursts": len(bursts),
        "responses": count_responses(r, bursts),
        "response_ids": ids,
        "heard_ms_total": _ms(sum(len(h.data) for h in r.heard)),
        "heard_ms_per_item": heard_per_item(r),
        "marked_ms_per_item": marked_per_item(r.echoes),
        "marks": {
            "received": len(r.server_marks),
            "echoed_played": sum(e.played for e in r.echoes),
            "echoed_flushed": sum(not e.played for e in r.echoes),
        },
        "pacing": pace,
        "underruns": len(gaps),
        "underrun_gaps_ms": gaps[:20],
        "hangup": {"by": r.hangup_by, "t_s": _t(r.hangup_at)},
        "emulator": {"tx_late_max_ms": r.tx_late_max_ms, "tx_late_frames": r.tx_late_frames},
        "network": None if r.network is None else r.network.describe(),
    }
