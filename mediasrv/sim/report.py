"""Outputs of an emulated call: WAVs, a timeline table, the JSON summary, a plot.

Every output is aligned on call time (0 = the call began). The heard WAV has silence
where nothing played; the stereo WAV puts the caller as sent on the left and the AI as
heard on the right, so a listener hears the call as the handset did.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from mediasrv.audio import SAMPLE_RATE, ULAW_SILENCE, Pcm16, ulaw_to_pcm16
from mediasrv.sim.metrics import BURST_GAP_S, CallResult

_ENVELOPE_MS = 10  # one plotted min/max pair per 10 ms keeps long calls fast to draw


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


def write_outputs(r: CallResult, prefix: Path | str, plot: bool = False) -> list[Path]:
    """Write <prefix>.heard.wav, .stereo.wav, .timeline.txt, .json (and .png); list them."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    heard = ulaw_to_pcm16(heard_ulaw(r))
    paths = [Path(f"{prefix}.{ext}") for ext in ("heard.wav", "stereo.wav", "timeline.txt")]
    write_wav(paths[0], heard)
    write_wav(paths[1], ulaw_to_pcm16(sent_ulaw(r)), heard)
    paths[2].write_text(format_timeline(r) + "\n")
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
    g = s["greeting"]
    for i, burst in enumerate(r.bursts()):
        bottom.axvspan(burst.start, burst.end, color="#2b8a3e", alpha=0.08)
        name = "greeting" if g and i == 0 else f"AI burst {i + 1}"
        bottom.text(burst.start, 0.92, f" {name}", fontsize=8, color="#2b8a3e", va="top")
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
