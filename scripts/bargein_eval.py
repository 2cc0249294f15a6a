"""Measure barge-in latency and echo safety of `TurnPolicy`, frame by frame, no server.

The phone path is simulated causally with the real policy: the bot's prompt goes out one
20 ms frame at a time (`on_sent`), the caller's phone plays it and its echo comes back
`--delay-ms` later, attenuated by the echo return loss (ERL), mixed with the caller's speech,
a -70 dBFS line hiss and optional background; the sum is mu-law encoded and fed in
(`feed`). When the policy says `BargeIn` the bot's audio stops (Twilio `clear`): only the
echo of what was already played still comes back.

Printed:

- caller runs: latency from the caller's first frame above -45 dBFS (caller alone) to the
  frame whose `feed` returned `BargeIn`, in ms (frames x 20), p50/p95/max per ERL and caller
  peak level, with misses (no barge-in while the caller talked over the bot) and early
  barge-ins (before the caller started: echo);
- echo-only runs: barge-ins, speech starts and turns when the only inbound audio is the bot's
  own voice, per ERL (0 dB is a stress figure: echo as loud as the bot) and delay;
- non-speech: turns and barge-ins on music, tones, noise and silence, idle and over the bot.

    PYTHONPATH=. .venv/bin/python scripts/bargein_eval.py [--quick] [--set FIELD=VALUE ...]

`--set` overrides `TurnConfig` fields, to compare settings on the same runs.
"""

from __future__ import annotations

import argparse
import functools
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw
from mediasrv.turns import BargeIn, EndOfUtterance, SpeechStarted, TurnConfig, TurnPolicy

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "audio"
PROMPTS = Path(__file__).resolve().parent.parent / "mediasrv" / "prompts"
FRAME = 160
TICK = 0.020
ONSET_DBFS = -45.0  # the caller's first frame above this starts the latency clock
HISS_DBFS = -70.0  # line hiss on every inbound frame: real lines are never digital zero
CALLERS = (
    "en_asterisk_allison_tt-weasels.wav",
    "en_asterisk_allison_hello-world.wav",
    "en_asterisk_allison_conf-onlyperson.wav",
    "en_alsa_front_center.wav",
    "en_espeak_caller.wav",
    "es_espeak_caller.wav",
)
LEVELS = (-3.0, -10.0, -20.0)  # caller peak, dBFS
ERLS = (6.0, 10.0, 20.0)
NON_SPEECH = ("music", "tones", "noise", "silence")

Floats = npt.NDArray[np.float64]
# A dispersive echo path, gain 1 at its loudest frequency: a telephone hybrid rings for a
# few ms, it is not a pure delay (a canceller tuned only on pure delays would overfit).
_H = np.array([0.1, 0.7, 1.0, 0.35, -0.3, -0.35, -0.1, 0.12, 0.15, 0.05, -0.05, -0.04])
HYBRID = np.convolve(_H, np.exp(-np.arange(24) / 6.0))
HYBRID /= np.abs(np.fft.rfft(HYBRID, 256)).max()  # ERL: the loss at the loudest frequency
MakePolicy = Callable[[], TurnPolicy]


def read_wav(path: Path) -> Floats:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)


def bots() -> dict[str, bytes]:
    """Return the bot prompts as whole mu-law frames (what the tx loop sends)."""
    prompt = pcm16_to_ulaw(read_wav(AUDIO / "speech/en_espeak_bot_prompt.wav").astype(np.int16))
    out = {"long_answer": (PROMPTS / "long_answer.ulaw").read_bytes(), "bot_prompt": prompt}
    return {name: data[: len(data) // FRAME * FRAME] for name, data in out.items()}


def at_peak(x: Floats, peak_dbfs: float) -> Floats:
    return x * (32767.0 * 10 ** (peak_dbfs / 20) / max(float(np.abs(x).max()), 1.0))


def pink(n: int, rms_dbfs: float, seed: int = 5) -> Floats:
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x * (32768.0 * 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(x * x)))


def hiss(n: int) -> Floats:
    return np.random.default_rng(11).standard_normal(n) * 32768.0 * 10 ** (HISS_DBFS / 20)


@dataclass
class Run:
    barge_ins: list[int] = field(default_factory=list)  # frame indices
    starts: int = 0
    turns: int = 0


def simulate(
    make: MakePolicy,
    bot: bytes,
    near: Floats,
    *,
    erl_db: float,
    delay_ms: int,
    stop_at_barge_in: bool = True,
    change: tuple[int, float, int] | None = None,
    path: Floats | None = None,
) -> Run:
    """Play `bot` out while `near` (caller + background, 8 kHz floats) comes back with echo.

    `path`: the echo's impulse response after the delay (peak gain 1; default a pure delay).
    """
    policy = make()
    bot_frames = len(bot) // FRAME
    n_frames = near.shape[0] // FRAME
    delay = delay_ms * 8
    fir = np.ones(1) if path is None else path
    echo = np.zeros(near.shape[0] + delay + FRAME + fir.shape[0])
    gain = 10 ** (-erl_db / 20)
    run = Run()
    playing = True
    now = 0.0
    for i in range(n_frames):
        now += TICK
        playing = playing and i < bot_frames
        if change is not None and i == change[0]:  # the echo path changes (speakerphone)
            gain, delay = 10 ** (-change[1] / 20), change[2] * 8
        if playing:
            out = bot[i * FRAME : (i + 1) * FRAME]
            policy.on_sent(out, now)
            start = i * FRAME + delay
            played = np.convolve(ULAW_DECODE[np.frombuffer(out, np.uint8)], fir) * gain
            echo[start : start + played.shape[0]] += played
        chunk = near[i * FRAME : (i + 1) * FRAME] + echo[i * FRAME : (i + 1) * FRAME]
        inbound = pcm16_to_ulaw(np.clip(np.rint(chunk), -32768, 32767).astype(np.int16))
        step = policy.feed(inbound, now, ai_playing=playing, closing=False)
        for event in step.events:
            if isinstance(event, BargeIn):
                run.barge_ins.append(i)
                playing = False  # the bridge clears Twilio: the bot's audio stops here
                if stop_at_barge_in:
                    return run
            elif isinstance(event, SpeechStarted):
                run.starts += 1
            elif isinstance(event, EndOfUtterance):
                run.turns += 1
    return run


def onset_frame(caller: Floats) -> int:
    peaks = np.abs(caller[: caller.shape[0] // FRAME * FRAME]).reshape(-1, FRAME).max(axis=1)
    loud = np.nonzero(peaks > 32768.0 * 10 ** (ONSET_DBFS / 20))[0]
    return int(loud[0])


@dataclass
class Latency:
    ms: list[int] = field(default_factory=list)
    misses: int = 0
    early: int = 0

    def line(self) -> str:
        if not self.ms:
            return f"{'-':>5} {'-':>5} {'-':>5}   misses {self.misses:3d}  early {self.early:2d}"
        p50, p95 = np.percentile(self.ms, [50, 95])
        return (
            f"{p50:5.0f} {p95:5.0f} {max(self.ms):5d}   misses {self.misses:3d}"
            f"  early {self.early:2d}  (n={len(self.ms) + self.misses + self.early})"
        )


def caller_runs(
    make: MakePolicy,
    bot: bytes,
    caller: Floats,
    offsets: Iterable[float],
    *,
    erl_db: float,
    delay_ms: int,
    background: Callable[[int], Floats] | None = None,
) -> Latency:
    """Place the caller at each offset (s into the bot's prompt); collect barge-in latency."""
    result = Latency()
    first = onset_frame(caller)
    for offset in offsets:
        start = int(offset * 8000)
        n = start + caller.shape[0] + 8000 // 2
        near = hiss(n)
        if background is not None:
            near += background(n)
        near[start : start + caller.shape[0]] += caller
        run = simulate(make, bot, near, erl_db=erl_db, delay_ms=delay_ms)
        onset = start // FRAME + first
        if not run.barge_ins:
            result.misses += 1
        elif run.barge_ins[0] < onset:
            result.early += 1
        else:
            result.ms.append((run.barge_ins[0] - onset) * 20)
    return result


def offsets_for(bot: bytes, quick: bool) -> list[float]:
    length = len(bot) / 8000
    step = 1.13 if quick else 0.37  # not a multiple of 20 ms: onsets fall on varied phases
    return [float(t) for t in np.arange(0.3, length - 2.0, step)]


def report_callers(make: MakePolicy, quick: bool, delay_ms: int) -> None:
    print(f"caller over the bot, echo delay {delay_ms} ms; latency ms: p50 p95 max")
    callers = {name: read_wav(AUDIO / "speech" / name) for name in CALLERS}
    totals = Latency()
    for erl in ERLS:
        for level in LEVELS:
            row = Latency()
            for bot in bots().values():
                for pcm in callers.values():
                    part = caller_runs(
                        make, bot, at_peak(pcm, level), offsets_for(bot, quick),
                        erl_db=erl, delay_ms=delay_ms,
                    )
                    row.ms += part.ms
                    row.misses += part.misses
                    row.early += part.early
            totals.ms += row.ms
            totals.misses += row.misses
            totals.early += row.early
            print(f"  ERL {erl:4.0f} dB  caller {level:4.0f} dBFS  {row.line()}")
    print(f"  all                           {totals.line()}")
    row = Latency()
    for bot in bots().values():
        for name in CALLERS[:3]:
            speech = at_peak(callers[name], -10.0)
            on = speech[np.abs(speech) > 0.05 * np.abs(speech).max()]
            rms_db = 10 * np.log10(np.mean(on * on) / 32768.0**2)
            part = caller_runs(
                make, bot, speech, offsets_for(bot, True), erl_db=10.0, delay_ms=delay_ms,
                background=functools.partial(pink, rms_dbfs=float(rms_db) - 10.0),
            )
            row.ms += part.ms
            row.misses += part.misses
            row.early += part.early
    print(f"  pink noise at 10 dB SNR, ERL 10, caller -10 dBFS  {row.line()}")


def report_echo(make: MakePolicy, delays: Iterable[int]) -> None:
    print("echo only (bot's own voice back, 2 s tail): barge-ins / speech starts / turns")
    for delay in delays:
        for erl in (0.0, 6.0, 10.0, 20.0):
            cells = []
            for name, bot in bots().items():
                near = hiss(len(bot) + 2 * 8000)
                run = simulate(make, bot, near, erl_db=erl, delay_ms=delay, stop_at_barge_in=False)
                cells.append(f"{name} {len(run.barge_ins)}/{run.starts}/{run.turns}")
            print(f"  delay {delay:3d} ms  ERL {erl:4.0f} dB   " + "   ".join(cells))
    for erl in (6.0, 10.0, 20.0):
        cells = []
        for name, bot in bots().items():
            near = hiss(len(bot) + 2 * 8000)
            run = simulate(
                make, bot, near, erl_db=erl, delay_ms=160, stop_at_barge_in=False, path=HYBRID
            )
            cells.append(f"{name} {len(run.barge_ins)}/{run.starts}/{run.turns}")
        print(f"  dispersive 160 ms  ERL {erl:4.0f} dB   " + "   ".join(cells))
    for new_erl, new_delay in ((6.0, 160), (6.0, 240), (0.0, 160)):
        cells = []
        for name, bot in bots().items():
            near = hiss(len(bot) + 2 * 8000)
            run = simulate(
                make, bot, near, erl_db=20.0, delay_ms=160, stop_at_barge_in=False,
                change=(200, new_erl, new_delay),
            )
            cells.append(f"{name} {len(run.barge_ins)}/{run.starts}/{run.turns}")
        print(
            f"  20 dB, 160 ms -> {new_erl:2.0f} dB, {new_delay} ms at 4 s   " + "   ".join(cells)
        )


def report_non_speech(make: MakePolicy) -> None:
    print("non-speech inbound: turns idle / barge-ins + turns over the bot (ERL 20)")
    bot = bots()["long_answer"]
    for kind in NON_SPEECH:
        for path in sorted((AUDIO / kind).glob("*.wav")):
            sound = read_wav(path)
            near = hiss(sound.shape[0] + 8000)
            near[: sound.shape[0]] += sound
            idle = simulate(make, b"", near, erl_db=20.0, delay_ms=160, stop_at_barge_in=False)
            reps = int(np.ceil(len(bot) / sound.shape[0]))
            over = hiss(len(bot) + 8000)
            over[: len(bot)] += np.tile(sound, reps)[: len(bot)]
            busy = simulate(make, bot, over, erl_db=20.0, delay_ms=160, stop_at_barge_in=False)
            print(
                f"  {kind + '/' + path.name:48} idle {idle.turns}   over bot "
                f"{len(busy.barge_ins)} + {busy.turns}"
            )


def parse_sets(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer caller offsets")
    parser.add_argument("--delay-ms", type=int, default=160)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--only", choices=("callers", "echo", "non-speech"))
    args = parser.parse_args()
    fields = TurnConfig.__dataclass_fields__
    types = {"int": int, "bool": bool, "float": float}
    settings = {k: types[str(fields[k].type)](v) for k, v in parse_sets(args.set).items()}
    config = TurnConfig(**settings)
    print(f"TurnConfig: {config}")
    t0 = time.perf_counter()

    def make() -> TurnPolicy:
        return TurnPolicy(config)

    if args.only in (None, "echo"):
        report_echo(make, (args.delay_ms, 40, 300))
    if args.only in (None, "non-speech"):
        report_non_speech(make)
    if args.only in (None, "callers"):
        report_callers(make, args.quick, args.delay_ms)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
