"""Compare echo cancellers on phone echo: ours (`mediasrv/policy/aec.py`) against libraries.

Signals: `aec_signals` (the bot's ~23 s turn, its echo through each path, hiss, a caller,
mu-law); candidates: `aec_candidates` (skipped with a message when not installed).

Tables (markdown, `--only` picks one):

- `echo`: per path, delay and ERL: time from the first echo to a 0.5 s window of
  ERLE >= 10 / 20 dB, steady ERLE over the last 10 s of the turn, the residual's
  95th-percentile frame level (dBFS) there; then the same around the path change; then
  the wall time per 20 ms frame (say how loaded the machine was);
- `double-talk`: callers at 0/-10/-20 dB of their natural level over the echo: on the
  caller's frames, the caller's part of the output over the rest (residual echo and
  distortion), and the caller's part over the caller (far below 0 dB: it was eaten);
- `bargein`: the candidate's output feeding `TurnPolicy` (see `aec_candidates`): barge-in
  latency per caller level and path, and false barge-ins on echo alone;
- `harness`: `bargein_eval`'s own echo-only and caller tables with each candidate;
- `limits`: ours with a wider delay hysteresis and longer filters (what limits it);
- `cost`: the wall time per frame alone, three interleaved runs of each candidate.

In the barge-in tables `none` becomes `guard` (today's echo guard), and `webrtc+gate`,
`speex+gate` and `ours-hop` are added when their base candidate is there.

    PYTHONPATH=. .venv/bin/python scripts/aec_compare.py [--only echo] [--candidates ours,webrtc]

The libraries are not project dependencies: install them in a scratch venv (see
docs/aec-evaluation.md); without them only `none` and `ours` run.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable

import numpy as np
from aec_candidates import (
    FACTORIES,
    Canceller,
    Timed,
    available,
    make_policy,
    ours_variant,
)
from aec_signals import (
    BAD_LINE,
    CALLERS,
    CHANGE,
    CHANGE_S,
    FRAME,
    HANDSET,
    HYBRID,
    RATE,
    REL_LEVELS,
    SPEAKER,
    TAIL30,
    TAIL30_REFL,
    EchoPath,
    Floats,
    Line,
    bot_turn,
    build,
    caller_frames,
    callers,
    frame_power,
    onset_frame,
    paths,
    place,
)

from mediasrv.audio import pcm16_to_ulaw
from mediasrv.policy.turns import BargeIn, EndOfUtterance, TurnPolicy, UtteranceStarted
from mediasrv.testing.frames import Net

ACTIVE = 32768.0**2 * 10 ** (-55 / 10)  # echo frame power that counts as echo
WINDOW = 25  # frames in an ERLE window (0.5 s)


def cancel(canceller: Canceller, line: Line) -> Floats:
    out = np.zeros(line.frames * FRAME)
    for i in range(line.frames):
        s = slice(i * FRAME, (i + 1) * FRAME)
        out[s] = canceller.process(line.inbound[s], line.far[s])
    return out


def erle_windows(echo: Floats, out: Floats) -> Floats:
    """Return the ERLE (dB) of the 0.5 s window ending at each frame (nan: too little echo)."""
    pe, po = frame_power(echo), frame_power(out)
    act = pe > ACTIVE
    k = np.ones(WINDOW)
    se = np.convolve(np.where(act, pe, 0.0), k)[: pe.shape[0]]
    so = np.convolve(np.where(act, po, 0.0), k)[: pe.shape[0]]
    count = np.convolve(act.astype(float), k)[: pe.shape[0]]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count >= 5, 10 * np.log10(se / np.maximum(so, 1e-3)), np.nan)


def reach_s(curve: Floats, start: int, threshold: float) -> float | None:
    hits = np.nonzero(curve[start:] >= threshold)[0]
    return None if hits.shape[0] == 0 else (int(hits[0]) + 1) * 0.020


def steady(echo: Floats, out: Floats, a: int, b: int) -> tuple[float, float]:
    """Return the ERLE (dB) and the residual's p95 frame level (dBFS) over frames a..b."""
    pe, po = frame_power(echo)[a:b], frame_power(out)[a:b]
    act = pe > ACTIVE
    erle = 10 * np.log10(pe[act].sum() / max(po[act].sum(), 1e-3))
    level = 10 * np.log10(max(float(np.percentile(po[act], 95)), 1e-3) / 32768.0**2)
    return float(erle), level


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}"


def echo_cell(line: Line, out: Floats, bot_frames: int) -> str:
    curve = erle_windows(line.echo, out)
    first = int(np.argmax(frame_power(line.echo) > ACTIVE))
    erle, level = steady(line.echo, out, bot_frames - 500, bot_frames)
    t10, t20 = reach_s(curve, first, 10.0), reach_s(curve, first, 20.0)
    return f"{_s(t10)} / {_s(t20)} s, {erle:.0f} dB, {level:.0f}"


def change_cell(line: Line, out: Floats, bot_frames: int) -> str:
    at = int(CHANGE_S * RATE) // FRAME
    curve = erle_windows(line.echo, out)
    before, _ = steady(line.echo, out, at - 250, at)
    dip = float(np.nanmin(curve[at : at + 150]))
    back = reach_s(curve, at + WINDOW, 10.0)
    back = None if back is None else back + WINDOW * 0.020
    after, level = steady(line.echo, out, bot_frames - 300, bot_frames)
    again = f"10 dB again {_s(back)} s"
    return f"{before:.0f} dB, dip {dip:.0f} dB, {again}, {after:.0f} dB, {level:.0f}"


COST: dict[str, list[float]] = {}


def report_echo(names: list[str]) -> None:
    bot = bot_turn()
    frames = len(bot) // FRAME
    n = len(bot) + 2 * RATE
    print("| path | delay ms | ERL dB | " + " | ".join(names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for path in paths():
        line = build(bot, path, np.zeros(n))
        cells = [echo_cell(line, _timed_cancel(name, line), frames) for name in names]
        print(f"| {path.kind} | {path.delay_ms} | {path.erl_db:.0f} | " + " | ".join(cells) + " |")
    print("\ncells: to 10 / to 20 dB ERLE (s from the first echo), steady ERLE, residual p95 dBFS")
    line = build(bot, CHANGE, np.zeros(n))
    print("\n| candidate | path change 160 ms 20 dB -> 60 ms 10 dB at 11.5 s |\n|---|---|")
    for name in names:
        print(f"| {name} | {change_cell(line, _timed_cancel(name, line), frames)} |")
    print("\ncells: ERLE before, lowest 0.5 s ERLE in the 3 s after, time to 10 dB again,")
    print("steady ERLE over the last 6 s, residual p95 dBFS there")


def _timed_cancel(name: str, line: Line) -> Floats:
    timed = Timed(FACTORIES[name]())
    out = cancel(timed, line)
    COST.setdefault(name, []).extend(timed.seconds)
    return out


def measure_cost(names: list[str], repeats: int = 3) -> None:
    """Time each candidate on the same 25 s line (hybrid, 160 ms, 10 dB), interleaved."""
    bot = bot_turn()
    line = build(bot, EchoPath("hybrid", 160, 10.0, HYBRID), np.zeros(len(bot) + 2 * RATE))
    COST.clear()
    for _ in range(repeats):
        for name in names:
            _timed_cancel(name, line)
    report_cost()


def report_cost() -> None:
    print(f"\nwall time per 20 ms frame (load average {os.getloadavg()[0]:.2f}):")
    print("| candidate | mean us | p50 us | p99 us |\n|---|---|---|---|")
    for name, secs in COST.items():
        us = np.array(secs) * 1e6
        p50, p99 = np.percentile(us, [50, 99])
        print(f"| {name} | {us.mean():.0f} | {p50:.0f} | {p99:.0f} |")


def dt_numbers(caller: Floats, out: Floats, mask: Floats) -> tuple[float, float, float]:
    """Return the caller's power, and the output's caller part and rest, on caller frames.

    Libraries delay their output (WebRTC by ~11 ms at 8 kHz, speex's preprocessor by a
    frame) and colour it (a high-pass): so the caller part is the best 33-tap linear fit
    of the output from the caller, around the lag where they correlate best. What the fit
    cannot explain (residual echo, a gain that pumps, distortion) is the rest.
    """
    m = np.repeat(mask, FRAME)
    n = m.shape[0]
    c, o = np.where(m, caller[:n], 0.0), out[:n]
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    cc = np.fft.irfft(np.fft.rfft(o, nfft) * np.conj(np.fft.rfft(c, nfft)), nfft)[:400]
    lag = int(np.argmax(np.abs(cc)))
    idx = np.nonzero(m)[0]
    idx = idx[(idx >= 16) & (idx + lag < n) & (idx + 16 < n)]
    x = np.stack([caller[idx + k] for k in range(-16, 17)], axis=1)
    target = out[idx + lag]
    w, *_ = np.linalg.lstsq(x, target, rcond=None)
    fit = x @ w
    rest = target - fit
    kept = caller[idx]
    return float(np.dot(kept, kept)), float(np.dot(fit, fit)), float(np.dot(rest, rest))


def report_double_talk(names: list[str]) -> None:
    bot = bot_turn()
    n = len(bot) + 2 * RATE
    voices = callers()
    runs = [
        [(voices[CALLERS[0]], 5.0), (voices[CALLERS[4]], 15.0)],
        [(voices[CALLERS[2]], 8.0), (voices[CALLERS[5]], 18.0)],
    ]
    print("| path | caller dB | " + " | ".join(names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for path in (None, HANDSET, BAD_LINE, SPEAKER):
        for gain in REL_LEVELS:
            sums = {name: np.zeros(3) for name in names}
            for parts in runs:
                placed = place(parts, gain, n)
                line = build(bot, path, placed.near)
                mask = caller_frames(placed)
                for name in names:
                    out = cancel(FACTORIES[name](), line)
                    sums[name] += dt_numbers(placed.near, out, mask)
            cells = [_dt_cell(s) for s in sums.values()]
            label = "no echo" if path is None else path.kind
            if path is not None:
                label += f" ({path.erl_db:.0f} dB, {path.delay_ms} ms)"
            print(f"| {label} | {gain:.0f} | " + " | ".join(cells) + " |")
    print("\ncells: caller part / rest of the output (dB) on the caller's frames; caller part")
    print("over the caller (dB: how much of the caller is kept)")


def _dt_cell(s: Floats) -> str:
    return f"{10 * np.log10(s[1] / s[2]):.1f}; {10 * np.log10(s[1] / s[0]):+.1f}"


def run_policy(policy: TurnPolicy, line: Line, bot_frames: int, stop: int) -> list[tuple[str, int]]:
    """Feed a precomputed line to the policy; return its events (kind, frame) up to `stop`."""
    events = []
    ulaw = pcm16_to_ulaw(line.inbound.astype(np.int16))
    now = 0.0
    for i in range(min(stop, line.frames)):
        now += 0.020
        playing = i < bot_frames
        if playing:
            policy.on_sent(line.sent[i], now)
        frame = ulaw[i * FRAME : (i + 1) * FRAME]
        step = policy.feed(frame, now, ai_playing=playing, closing=False)
        for e in step.events:
            kind = {BargeIn: "b", UtteranceStarted: "s", EndOfUtterance: "t"}.get(type(e))
            if kind is not None:
                events.append((kind, i))
    return events


def report_bargein(names: list[str], quick: bool) -> None:
    bot = bot_turn()
    frames = len(bot) // FRAME
    voices = callers()
    offsets = np.arange(0.5, 16.0, 3.7 if quick else 1.9)
    print("| path | caller dB | " + " | ".join(names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for path in (None, HANDSET, BAD_LINE):
        for gain in REL_LEVELS:
            cells = []
            for name in names:
                cells.append(_latency_cell(name, bot, frames, path, voices, offsets, gain))
            label = "no echo" if path is None else f"{path.kind}"
            print(f"| {label} | {gain:.0f} | " + " | ".join(cells) + " |")
    print("\ncells: latency p50/p95 ms (onset -> BargeIn), misses, early (false) barge-ins")
    print("\necho only, whole turn: barge-ins/speech starts/turns")
    print("| path | delay ms | ERL dB | " + " | ".join(names) + " |")
    print("|---" * (3 + len(names)) + "|")
    n = len(bot) + 2 * RATE
    for path in [*paths(), CHANGE]:
        line = build(bot, path, np.zeros(n))
        cells = []
        for name in names:
            ev = run_policy(make_policy(name), line, frames, line.frames)
            cells.append("/".join(str(sum(k == x for k, _ in ev)) for x in "bst"))
        print(f"| {path.kind} | {path.delay_ms} | {path.erl_db:.0f} | " + " | ".join(cells) + " |")


def _latency_cell(
    name: str, bot: bytes, frames: int, path: EchoPath | None,
    voices: dict[str, Floats], offsets: Floats, gain: float,
) -> str:
    ms, misses, early = [], 0, 0
    n = len(bot) + 2 * RATE
    for pcm in voices.values():
        for at in offsets:
            placed = place([(pcm, float(at))], gain, n)
            line = build(bot, path, placed.near)
            onset = onset_frame(placed.near)
            stop = placed.spans[0][1] // FRAME + 25
            ev = [i for k, i in run_policy(make_policy(name), line, frames, stop) if k == "b"]
            if not ev:
                misses += 1
            elif ev[0] < onset:
                early += 1
            else:
                ms.append((ev[0] - onset) * 20)
    if not ms:
        return f"- / -, {misses} missed, {early} early"
    p50, p95 = np.percentile(ms, [50, 95])
    return f"{p50:.0f}/{p95:.0f}, {misses} missed, {early} early"


def report_limits() -> None:
    """Show what limits ours: filter resets on delay hops, filter length, nonlinearity."""
    bot = bot_turn()
    frames = len(bot) // FRAME
    n = len(bot) + 2 * RATE
    voice = callers()[CALLERS[0]]
    print("| path (160 ms, 10 dB) | taps | realign if moved > | echo only: realigns, ERLE "
          "| caller at 0 dB from 5 s: realigns, caller / rest, worst error frame dBFS |")
    print("|---|---|---|---|---|")
    for kind, fir, clip in (("hybrid", HYBRID, None), ("tail30", TAIL30, None),
                            ("tail30+refl", TAIL30_REFL, None), ("clip -9 dBFS", HYBRID, -9.0)):
        path = EchoPath(kind, 160, 10.0, fir, clip)
        for taps, hop in ((256, 16), (256, 400), (1024, 400)):
            ours = ours_variant(taps, hop)
            line = build(bot, path, np.zeros(n))
            erle, _ = steady(line.echo, cancel(ours, line), frames - 500, frames)
            quiet = ours.guard.canceller.realigns  # type: ignore[union-attr]
            ours = ours_variant(taps, hop)
            placed = place([(voice, 5.0)], 0.0, n)
            line = build(bot, path, placed.near)
            out = cancel(ours, line)
            s = dt_numbers(placed.near, out, caller_frames(placed))
            err = frame_power(out - placed.near[: out.shape[0]]).max() / 32768.0**2
            talk = ours.guard.canceller.realigns  # type: ignore[union-attr]
            print(f"| {kind} | {taps} | {hop} | {quiet}, {erle:.1f} dB | {talk}, "
                  f"{10 * np.log10(s[1] / s[2]):.1f} dB, {10 * np.log10(err):.0f} |")


def report_harness(names: list[str], quick: bool) -> None:
    import bargein_eval

    for name in names:
        print(f"\n### {name}\n```")
        make: Callable[[], TurnPolicy] = functools.partial(make_policy, name)
        bargein_eval.report_echo(make, Net())
        bargein_eval.report_callers(make, quick, Net())
        print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = ("echo", "cost", "double-talk", "bargein", "harness", "limits")
    parser.add_argument("--only", choices=kinds)
    parser.add_argument("--candidates", default=",".join(FACTORIES))
    parser.add_argument("--quick", action="store_true", help="fewer caller offsets")
    args = parser.parse_args()
    names = available(args.candidates.split(","))
    t0 = time.perf_counter()
    if args.only in (None, "echo"):
        report_echo([n for n in names if n != "none"])
        report_cost()
    if args.only == "cost":
        measure_cost([n for n in names if n != "none"])
    if args.only in (None, "double-talk"):
        report_double_talk(names)
    policies = ["guard" if n == "none" else n for n in names]
    policies += [f"{n}+gate" for n in ("webrtc", "speex") if n in names]
    policies += ["ours-hop"] if "ours" in names else []
    if args.only in (None, "bargein"):
        report_bargein(policies, args.quick)
    if args.only == "limits":
        report_limits()
    if args.only == "harness":
        report_harness(policies, args.quick)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
