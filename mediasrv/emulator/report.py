"""Outputs of an emulated call: a turn-by-turn summary, WAVs, a timeline, JSON, a plot.

Layer: emulator.

Every output is aligned on call time (0 = the call began). The heard WAV has silence
where nothing played; the stereo WAV puts the caller as sent on the left and the AI as
heard on the right, so a listener hears the call as the handset did.

The summary names each AI response by what it is. The bridge's own prompts carry it in
their response id (`local_one_moment_3`); a backend response is named by where it falls:
the first one before the caller spoke is the greeting, one after caller speech is an
answer, the last one before the server hung up is the goodbye, any other is a
"still there?" prompt after a silence.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mediasrv.audio import SAMPLE_RATE, ULAW_SILENCE, Pcm16, ulaw_to_pcm16
from mediasrv.emulator.metrics import BURST_GAP_S, CallResult, heard_span, response_id
from mediasrv.emulator.playout import MarkName, ServerMark

_ENVELOPE_MS = 10  # one plotted min/max pair per 10 ms keeps long calls fast to draw
_LOCAL = "local_"  # the bridge's own prompts: local_<prompt>_<n>
_EPS = 1e-3


def _samples(t: float) -> int:
    return int(round(t * SAMPLE_RATE))


def _call_len(r: CallResult) -> int:
    ends = [r.ended_at, r.media_t0 + len(r.sent_ulaw) / SAMPLE_RATE]
    ends += [h.end for h in r.heard]
    return _samples(max(ends))


def heard_ulaw(r: CallResult) -> bytes:
    """Return what the caller heard over the whole call, mu-law, silence where none."""
    out = bytearray([ULAW_SILENCE]) * _call_len(r)
    for seg in r.heard:
        lo = _samples(seg.start)
        out[lo : lo + len(seg.data)] = seg.data
    return bytes(out[: _call_len(r)])


def sent_ulaw(r: CallResult) -> bytes:
    """Return the caller's audio as sent (echo included), placed on call time."""
    out = bytearray([ULAW_SILENCE]) * _call_len(r)
    lo = _samples(r.media_t0)
    out[lo : lo + len(r.sent_ulaw)] = r.sent_ulaw
    return bytes(out[: _call_len(r)])


def write_wav(path: Path, left: Pcm16, right: Pcm16 | None = None) -> None:
    """Write 8 kHz 16-bit PCM, mono or (with `right`) stereo."""
    data = left if right is None else np.stack([left, right], axis=1).ravel()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if right is None else 2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(data.astype("<i2").tobytes())


def timeline_rows(r: CallResult) -> list[tuple[float, str, str]]:
    """Return (time, event, detail) rows: recorded events, media runs, caller speech."""
    rows = [(e.t, e.event, e.detail) for e in r.timeline]
    for seg in r.speech:
        if seg.onset is not None:
            rows.append((r.media_t0 + seg.onset, "caller speech", f"{seg.name} onset"))
    if r.frames_sent:
        rows.append((r.media_t0, "send media", f"{r.frames_sent} frames of 20 ms"))
    clears = [c.at for c in r.clears]
    run: list[tuple[float, int]] = []
    for t, n in [*r.media_arrivals, (float("inf"), 0)]:
        if run and (t - run[-1][0] >= BURST_GAP_S or any(run[-1][0] <= c < t for c in clears)):
            ms = sum(k for _, k in run) / 8
            span = f"{len(run)} msgs, {ms:.0f} ms of audio, until {run[-1][0]:.3f}"
            rows.append((run[0][0], "recv media", span))
            run = []
        run.append((t, n))
    return sorted(rows, key=lambda row: row[0])


def format_timeline(r: CallResult) -> str:
    """Return the timeline as a fixed-width table."""
    lines = [f"{'time s':>8}  {'event':<14}  detail", f"{'-' * 8}  {'-' * 14}  {'-' * 40}"]
    lines += [f"{t:8.3f}  {ev:<14}  {detail}" for t, ev, detail in timeline_rows(r)]
    return "\n".join(lines)


@dataclass(frozen=True)
class AiTurn:
    """One AI response as the caller heard it."""

    response_id: str
    label: str
    start: float | None  # first byte heard (None: nothing of it was heard)
    end: float | None
    heard_ms: float
    ending: str  # "complete" | "interrupted" | "cut by the hang-up" | "not heard"


def ai_turns(r: CallResult) -> list[AiTurn]:
    """Return every AI response in the order it was sent, named and measured."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    first_mark: dict[str, float] = {}
    items: set[str] = set()
    lo, last = 0, None
    for m in r.server_marks:  # a byte belongs to the response of the next mark ...
        rid = response_id(m.name) or "?"
        if rid == "?" and m.offset == lo:
            continue  # a mark with no audio before it (a round-trip probe): no response
        # ... but for the audio before an item's first mark: that mark names how much of
        # the item went before it, and what went before that is the last response's
        # tail (a cut answer's last frames before the clear, after its last mark).
        begins = _item_start(m, items)
        if last is not None and last != rid and begins is not None and lo < begins < m.offset:
            ranges[last].append((lo, begins))
            lo = begins
        ranges.setdefault(rid, []).append((lo, m.offset))
        first_mark.setdefault(rid, m.at)
        lo, last = m.offset, rid
    ended = {response_id(e.name) for e in r.echoes if e.played and e.name.endswith(":end")}
    flushed = {response_id(n) for c in r.clears for n in c.flushed}
    firsts = list(first_mark.values())
    turns = []
    for i, (rid, spans) in enumerate(ranges.items()):
        heard = [h for a, b in spans if (h := heard_span(r.heard, a, b)) is not None]
        start = min((h.start for h in heard), default=None)
        end = max((h.end for h in heard), default=None)
        nxt = firsts[i + 1] if i + 1 < len(firsts) else float("inf")
        cleared = start is not None and any(start <= c.at <= nxt for c in r.clears)
        if start is None:
            ending = "not heard"
        elif rid in flushed or (rid not in ended and cleared):
            ending = "interrupted"
        elif rid not in ended:
            ending = "cut by the hang-up"
        else:
            ending = "complete"
        heard_ms = sum(h.heard_bytes for h in heard) / 8
        turns.append(AiTurn(rid, "", start, end, round(heard_ms, 1), ending))
    return _labelled(r, turns)


def _item_start(m: ServerMark, seen: set[str]) -> int | None:
    """Return where a "<response>:<item>:<sent_ms>" mark's item began in the stream, if it
    is the item's first mark (None otherwise, or for a mark named otherwise)."""
    mark = MarkName.parse(m.name)
    if mark is None or mark.sent_ms is None or mark.item_id in seen:
        return None
    seen.add(mark.item_id)
    return m.offset - mark.sent_ms * SAMPLE_RATE // 1000


def _labelled(r: CallResult, turns: list[AiTurn]) -> list[AiTurn]:
    onsets = sorted(r.media_t0 + s.onset for s in r.speech if s.onset is not None)
    out: list[AiTurn] = []
    backend = [t for t in turns if not t.response_id.startswith(_LOCAL)]
    for t in turns:
        if t.response_id.startswith(_LOCAL):
            label = t.response_id[len(_LOCAL):].rsplit("_", 1)[0].replace("_", " ")
        else:
            at = t.start if t.start is not None else float("inf")
            prev = max((o.start for o in out if o.start is not None and o.start < at),
                       default=0.0)
            if t is backend[0] and not any(o < at for o in onsets):
                label = "greeting"
            elif any(prev - _EPS <= o < at for o in onsets):  # the caller spoke since
                label = "answer"
            elif t is backend[-1] and r.hangup_by == "server":
                label = "goodbye"
            else:
                label = "still there?"
        out.append(AiTurn(t.response_id, label, t.start, t.end, t.heard_ms, t.ending))
    return out


def format_summary(r: CallResult) -> str:
    """Return the call turn by turn: who, when, how much was heard, barge-ins, the hang-up."""
    s = r.summary()
    if not r.connected:
        return f"call {r.call_sid}: not connected ({r.error})"
    first = s["time_to_first_audio_ms"]
    lines = [f"call {r.call_sid}: {s['duration_s']:.1f} s"
             + (f", first audio after {first:.0f} ms" if first is not None else ", no audio heard")]
    rows: list[tuple[float, str]] = []
    for t in ai_turns(r):
        if t.start is None:
            continue
        how = {"complete": "", "interrupted": ", cut off by the caller",
               "cut by the hang-up": ", cut off by the hang-up"}.get(t.ending, "")
        rows.append((t.start, f"AI      {t.label}, heard {t.heard_ms / 1000:.1f} s{how}"))
    for row in s["caller_speech"]:
        if row["onset_s"] is None or row["after_hangup"]:
            continue
        said = f"caller  {row['file']}, {row['end_s'] - row['onset_s']:.1f} s of speech"
        if row["barge_in_latency_ms"] is not None:
            said += f", barged in: AI stopped {row['barge_in_latency_ms']:.0f} ms later"
        elif row["during_ai_audio"]:
            said += ", over the AI, which did not stop"
        rows.append((row["onset_s"], said))
    for event in r.timeline:
        if event.event == "dtmf":
            rows.append((event.t, f"caller  pressed {event.detail}"))
    h = s["hangup"]
    if h["by"] == "twilio":
        rows.append((h["t_s"], "twilio  stopped the stream (the call's TwiML changed)"))
    elif h["by"] is not None:
        rows.append((h["t_s"], f"{h['by']:<7} hung up"))
    lines += [f"{t:7.2f} s  {text}" for t, text in sorted(rows, key=lambda row: row[0])]
    lat = s["barge_in_latency_ms"]
    leaked = sum(c["heard_after_ms"] for c in s["clears"])
    lines.append(f"barge-ins: {len(lat)}" + (f" ({', '.join(f'{x:.0f}' for x in lat)} ms to "
                 f"silence, {leaked:.0f} ms heard after the clear)" if lat else "")
                 + f"; underruns: {s['underruns']}")
    return "\n".join(lines)


def write_outputs(r: CallResult, prefix: Path | str, plot: bool = False) -> list[Path]:
    """Write <prefix>.heard.wav, .stereo.wav, .timeline.txt, .json (and .png); list them."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    heard = ulaw_to_pcm16(heard_ulaw(r))
    paths = [Path(f"{prefix}.{ext}") for ext in ("heard.wav", "stereo.wav", "timeline.txt")]
    write_wav(paths[0], heard)
    write_wav(paths[1], ulaw_to_pcm16(sent_ulaw(r)), heard)
    paths[2].write_text(format_summary(r) + "\n\n" + format_timeline(r) + "\n")
    summary_path = Path(f"{prefix}.json")
    summary_path.write_text(json.dumps(r.summary(), indent=2) + "\n")
    paths.append(summary_path)
    if plot:
        paths.append(plot_call(r, Path(f"{prefix}.png")))
    return paths


def _envelope(pcm: Pcm16) -> tuple[Any, Any, Any]:
    step = SAMPLE_RATE * _ENVELOPE_MS // 1000
    n = pcm.size // step
    blocks = pcm[: n * step].reshape(n, step).astype(np.float64) / 32768.0
    t = (np.arange(n) + 0.5) * step / SAMPLE_RATE
    return t, blocks.min(axis=1), blocks.max(axis=1)


def plot_call(r: CallResult, path: Path) -> Path:
    """Draw both waveforms on call time with the call's events; write a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    s = r.summary()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(15, 6.5), sharex=True)
    for ax, ulaw, colour, label in (
        (top, sent_ulaw(r), "#1f5fa8", "caller (as sent)"),
        (bottom, heard_ulaw(r), "#2b8a3e", "AI (as heard)"),
    ):
        t, lo, hi = _envelope(ulaw_to_pcm16(ulaw))
        ax.fill_between(t, lo, hi, color=colour, linewidth=0.4)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(label)
        ax.grid(axis="x", alpha=0.3)
    end = max(r.ended_at, 0.1)
    for seg in r.speech:
        if seg.onset is not None and seg.end is not None and r.media_t0 + seg.onset < end:
            a, b = r.media_t0 + seg.onset, r.media_t0 + seg.end
            top.axvspan(a, b, color="#1f5fa8", alpha=0.08)
            top.text(a, 0.92, f" {seg.name}", fontsize=8, color="#1f5fa8", va="top")
    for turn in ai_turns(r):
        if turn.start is None or turn.end is None:
            continue
        bottom.axvspan(turn.start, turn.end, color="#2b8a3e", alpha=0.08)
        bottom.text(turn.start, 0.92, f" {turn.label}", fontsize=8, color="#2b8a3e", va="top")
    above = blended_transform_factory(top.transData, top.transAxes)
    inside = blended_transform_factory(bottom.transData, bottom.transAxes)
    lines: list[tuple[float, str, str, str, Any]] = []
    for row in s["caller_speech"]:
        onset, lat = row["onset_s"], row["barge_in_latency_ms"]
        if onset is not None and onset < end:
            text = "speech onset" + (f" → clear +{lat:.0f} ms" if lat is not None else "")
            lines.append((onset, "#1f5fa8", "--", text, above))
    lines += [(c.at, "#c92a2a", "-", " clear", inside) for c in r.clears]
    if r.hangup_at is not None:
        lines.append((r.hangup_at, "black", "-", f"hang-up ({r.hangup_by})", above))
    for x, colour, style, text, where in lines:
        for ax in (top, bottom):
            ax.axvline(x, color=colour, linestyle=style, linewidth=1.2)
        if where is above:
            top.text(x, 1.02, text, transform=above, rotation=25, fontsize=8, color=colour)
        else:
            bottom.text(x, 0.80, text, transform=inside, fontsize=8, color=colour)
    played = [e.at for e in r.echoes if e.played]
    flushed = [e.at for e in r.echoes if not e.played]
    bottom.plot(played, [-0.95] * len(played), "v", color="#2b8a3e", ms=5, label="mark played")
    bottom.plot(flushed, [-0.95] * len(flushed), "x", color="#c92a2a", ms=6, label="mark flushed")
    if played or flushed:
        bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    bottom.set_xlabel("call time (s)")
    bottom.set_xlim(0, end)
    fig.suptitle(_headline(s), fontsize=10, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _headline(s: dict[str, Any]) -> str:
    parts = [s["call_sid"][:10] + "…"]
    if s["time_to_first_audio_ms"] is not None:
        parts.append(f"first audio {s['time_to_first_audio_ms']:.0f} ms")
    parts.append(f"responses {s['responses']}")
    if s["barge_in_latency_ms"]:
        parts.append("barge-in " + ", ".join(f"{x:.0f}" for x in s["barge_in_latency_ms"]) + " ms")
    leaked = sum(c["heard_after_ms"] for c in s["clears"])
    if s["clears"]:
        parts.append(f"heard after clear {leaked:.0f} ms")
    parts.append(f"underruns {s['underruns']}")
    h = s["hangup"]
    if h["by"]:
        parts.append(f"hang-up by {h['by']} at {h['t_s']:.2f} s")
    return "  ·  ".join(parts)
