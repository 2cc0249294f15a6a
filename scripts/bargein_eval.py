"""Measure barge-in and echo safety of `TurnPolicy` frame by frame, on issue 9's lines.

No server, no threads: the real policy is driven directly, in seconds. The phone side is
the emulator's own line model (mediasrv/emulator/line.py) and the same lines, callers and
gains as the end-to-end matrix (mediasrv/emulator/catalogue.py), so both describe the same
calls:

- the server sends the bot's prompt one 20 ms frame per tick (`on_sent`); each frame
  reaches Twilio `--down-ms` later and plays; a `BargeIn` stops the sending and, once the
  clear has reached Twilio, the playing (what was still buffered is dropped);
- Twilio captures the caller (a real recording at 0 / -10 / -20 dB of its natural level)
  plus the echo of what *played* through the line (bulk delay, dispersion, reflection,
  saturation, hiss, mu-law) and the captured frame reaches the server `--up-ms` later,
  where it is fed to the policy (`feed`).

`--stall-at S --stall-ms M`: the server's rx loop stalls at S s for M ms (a loaded
machine): the frames that arrive meanwhile are read in one burst at its end, each timed by
when it arrived (as the uplink's stream clock times them), while the bot's frames go on
being sent. Echo alone must stay 0/0/0 through it.

Printed:

- callers over the bot, per caller gain and line: detected (a barge-in after the caller's
  first speech frame, at most 0.5 s after their speech ended), latency from that frame
  to the barge-in decision (ms, includes the uplink transit), misses, early barge-ins
  (before the caller spoke: the echo was taken for the caller);
- echo alone: barge-ins / speech starts / turns with only the bot's ~20 s turn coming
  back, on each of the nine hard paths of issue 9;
- non-speech over the bot (handset line) and idle: turns and barge-ins; then steady noise
  and hold music under the bot from its first word at five levels, on both echo lines.

    PYTHONPATH=. .venv/bin/python scripts/bargein_eval.py [--quick] [--set FIELD=VALUE ...]
        [--only callers|echo|non-speech] [--down-ms 30] [--up-ms 30]
        [--stall-at 1.0 --stall-ms 1100]

`--set` overrides `TurnConfig` fields, to compare settings on the same runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import HANDSET, EchoPath, Line
from mediasrv.emulator.script import ONSET_DBFS, frame_levels_dbfs, load_8k
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing.frames import FRAME, TICK, Floats, MakePolicy, Net, bots, prompt, simulate

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "audio"
DETECT_SLACK_FRAMES = 25  # a barge-in 0.5 s after the caller stopped still counts
NON_SPEECH = ("music", "tones", "noise", "silence")

def speech_frames(caller: Floats) -> tuple[int, int]:
    """Return the first and last frame over -45 dBFS (the caller at natural level)."""
    loud = np.flatnonzero(frame_levels_dbfs(caller) > ONSET_DBFS)
    return int(loud[0]), int(loud[-1])


@dataclass
class Tally:
    ms: list[float] = field(default_factory=list)
    misses: int = 0
    early: int = 0

    def add(self, other: Tally) -> None:
        self.ms += other.ms
        self.misses += other.misses
        self.early += other.early

    def line(self) -> str:
        n = len(self.ms) + self.misses + self.early
        if not self.ms:
            return f"detected 0/{n}   misses {self.misses:3d}  early {self.early:2d}"
        p50, p95 = np.percentile(self.ms, [50, 95])
        return (f"detected {len(self.ms):3d}/{n:<3d} p50 {p50:5.0f} p95 {p95:5.0f} "
                f"max {max(self.ms):5.0f} ms   misses {self.misses:3d}  early {self.early:2d}")


def caller_runs(
    make: MakePolicy, bot: bytes, caller: Floats, offsets: Iterable[float], line: Line,
    net: Net, span: tuple[int, int],
) -> Tally:
    """Place the caller at each offset (s into the bot's prompt); tally barge-ins.

    `span`: the clip's first and last speech frames, taken at its natural level (as the
    emulator's onset is), whatever gain `caller` carries."""
    tally = Tally()
    first, last = span
    for offset in offsets:
        start = int(offset * 8000)
        near = np.zeros(start + caller.size + 8000)
        near[start : start + caller.size] += caller
        run = simulate(make, bot, near, line, net)
        onset, end = (start + first * FRAME) // FRAME, (start + (last + 1) * FRAME) // FRAME
        if not run.barge_ins or run.barge_ins[0][0] > end + DETECT_SLACK_FRAMES:
            tally.misses += 1
        elif run.barge_ins[0][0] < onset:
            tally.early += 1
        else:  # from the start of the caller's first speech frame at Twilio to the decision
            tally.ms.append(round((run.barge_ins[0][1] - onset * TICK) * 1000, 1))
    return tally


def offsets_for(bot: bytes, quick: bool) -> list[float]:
    length = len(bot) / 8000
    step = 1.13 if quick else 0.37  # not a multiple of 20 ms: onsets fall on varied phases
    return [float(t) for t in np.arange(0.3, length - 2.0, step)]


def report_callers(make: MakePolicy, quick: bool, net: Net) -> None:
    print(f"callers over the bot (transit {net.down_ms:g}/{net.up_ms:g} ms); latency = first "
          "speech frame -> barge-in decision")
    callers = {f: load_8k(AUDIO / f)[: int(n * 8000)] for f, n in cat.CALLERS}
    for gain in cat.GAINS_DB:
        for name, echo in cat.LINES.items():
            tally = Tally()
            for bot in bots().values():
                for pcm in callers.values():
                    scaled = pcm * 10 ** (gain / 20)
                    tally.add(caller_runs(make, bot, scaled, offsets_for(bot, quick),
                                          cat.line_of(echo), net, speech_frames(pcm)))
            print(f"  caller {gain:4.0f} dB  {name:9s} {tally.line()}")


def report_echo(make: MakePolicy, net: Net) -> None:
    print("echo alone, the ~20 s bot turn on issue 9's hard paths: barge-ins / starts / turns")
    bot = prompt(*cat.LONG_GREETING)
    for name, line in cat.echo_lines().items():
        near = np.zeros(len(bot) + 2 * 8000)
        run = simulate(make, bot, near, line, net, stop_at_barge_in=False)
        print(f"  {name:46s} {len(run.barge_ins)}/{run.starts}/{run.turns}")
    # Beyond the paths: a speakerphone in a room rings longer than the canceller's
    # 128 ms filter (40 dB of decay over the tail); built to fail, and did, before the
    # canceller carried a ringing response on past its filter. 20 dB / 300 ms still does.
    print("  beyond the filter (room tails):")
    for erl, tail in ((6.0, 200.0), (10.0, 200.0), (10.0, 300.0), (20.0, 300.0)):
        path = EchoPath(160.0, erl, tail)
        near = np.zeros(len(bot) + 2 * 8000)
        run = simulate(make, bot, near, cat.line_of(path), net, stop_at_barge_in=False)
        print(f"  {path.describe():46s} {len(run.barge_ins)}/{run.starts}/{run.turns}")


def under(bot: bytes, sound: Floats) -> Floats:
    """Return `sound`, looped, for as long as the bot talks, then 1 s of nothing."""
    over = np.resize(sound, len(bot) + 8000)
    over[len(bot) :] = 0.0
    return over


def report_non_speech(make: MakePolicy, net: Net) -> None:
    print("non-speech: turns idle / barge-ins + turns over the bot (handset line)")
    bot = bots()["long_answer"]
    for kind in NON_SPEECH:
        for path in sorted((AUDIO / kind).glob("*.wav")):
            sound = load_8k(path)
            near = np.zeros(sound.size + 8000)
            near[: sound.size] += sound
            idle = simulate(make, b"", near, cat.line_of(HANDSET), net, stop_at_barge_in=False)
            busy = simulate(make, bot, under(bot, sound), cat.line_of(HANDSET), net,
                            stop_at_barge_in=False)
            print(f"  {kind + '/' + path.name:48} idle {idle.turns}   over bot "
                  f"{len(busy.barge_ins)} + {busy.turns}")


# Steady noise and hold music under the bot at other levels than the recordings' own,
# on both echo lines: the non-speech rows above hold one level each.
NOISE_SWEEP = ("noise/pink_noise_peak-30dBFS_10s.wav", "noise/brown_noise_peak-25dBFS_10s.wav",
               "noise/white_noise_peak-30dBFS_10s.wav", "music/moh_macroform-cold_day_0-30s.wav")
NOISE_SWEEP_DB = (6.0, 0.0, -5.0, -10.0, -15.0)


def report_noise_sweep(make: MakePolicy, net: Net) -> None:
    print("non-speech under the bot from its first word, at +6/0/-5/-10/-15 dB: "
          "barge-ins + turns")
    bot = bots()["long_answer"]
    for line_name in ("handset", "bad line"):
        line = cat.LINES[line_name]
        for name in NOISE_SWEEP:
            sound = load_8k(AUDIO / name)
            cells = []
            for db in NOISE_SWEEP_DB:
                run = simulate(make, bot, under(bot, sound * 10 ** (db / 20)), cat.line_of(line),
                               net, stop_at_barge_in=False)
                cells.append(f"{len(run.barge_ins)}+{run.turns}")
            print(f"  {line_name:9} {Path(name).name:42} {'  '.join(cells)}")


def parse_sets(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer caller offsets")
    parser.add_argument("--down-ms", type=float, default=30.0, help="server -> Twilio transit")
    parser.add_argument("--up-ms", type=float, default=30.0, help="Twilio -> server transit")
    parser.add_argument("--stall-at", type=float, default=0.0, help="rx loop stalls at (s)")
    parser.add_argument("--stall-ms", type=float, default=0.0, help="for this long (ms)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--only", choices=("callers", "echo", "non-speech"))
    args = parser.parse_args()
    fields = TurnConfig.__dataclass_fields__
    types = {"int": int, "bool": bool, "float": float}
    settings = {k: types[str(fields[k].type)](v) for k, v in parse_sets(args.set).items()}
    config = TurnConfig(**settings)
    net = Net(args.down_ms, args.up_ms, args.stall_at, args.stall_ms)
    print(f"TurnConfig: {config}")
    t0 = time.perf_counter()

    def make() -> TurnPolicy:
        return TurnPolicy(config)

    if args.only in (None, "echo"):
        report_echo(make, net)
    if args.only in (None, "non-speech"):
        report_non_speech(make, net)
        report_noise_sweep(make, net)
    if args.only in (None, "callers"):
        report_callers(make, args.quick, net)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
