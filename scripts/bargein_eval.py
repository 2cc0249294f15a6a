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

- callers over the bot (`callers`, mediasrv/testing/callers.py), per caller gain and
  line: detected (a barge-in after the caller's first speech frame, at most 0.5 s after
  their speech ended), latency from that frame to the barge-in decision (ms, includes the
  uplink transit), misses, early barge-ins (before the caller spoke: the echo was taken
  for the caller);
- a breath before the callers' first words (`breath`, mediasrv/testing/breath.py): the
  callers' table again, each caller led by a real or synthetic breath; early = on it;
- echo alone: barge-ins / speech starts / turns with only the bot's ~20 s turn coming
  back, on each of the nine hard paths of issue 9;
- echo alone through a room's long tail (`tails`, mediasrv/testing/tails.py): 200-400 ms
  tails, longer than the canceller's filter, at ERL 10 / 20 / 30 dB, four prompts, two
  transits (its own, whatever `--down-ms` says): barge-ins / starts / turns per tail;
- non-speech over the bot (handset line) and idle: turns and barge-ins; then steady noise
  and hold music under the bot from its first word at five levels, on both echo lines;
- echo path moves (`moves`, mediasrv/testing/moves.py): the bot's prompt while the echo
  path moves mid-call, on the emulator's lines and on `tests/test_echo.py`'s `Call` line
  ("plain": no hiss, no transit, the espeak prompt; the same runs whatever the transit or
  stall): each barge-in with the guard's state then;
- the answer after a caller's turn (`after-caller`, mediasrv/testing/after_caller.py): a
  quiet caller talks over the greeting (or just after it), the bot stops, their turn ends,
  a ~9.5 s answer plays with nobody on the line: barge-ins on its echo and answers to
  them (both must be 0);
- repeated interruptions (`repeated`, mediasrv/testing/repeated.py): three callers over
  the greeting and two answers (the local backend's: what was forwarded of the turn played
  back, then the long answer), each bot turn at its own phase of the 20 ms tick, the last
  answer played out: callers heard, and false barge-ins (no caller speech then) + echo
  turns answered (both must be 0), each false one with the guard's state; then each
  caller's answer alone from a fresh canceller (echo alone): barge-ins of runs.

    PYTHONPATH=. .venv/bin/python scripts/bargein_eval.py [--quick] [--set FIELD=VALUE ...]
        [--only callers|breath|echo|tails|moves|non-speech|after-caller|repeated]
        [--down-ms 30] [--up-ms 30]
        [--stall-at 1.0 --stall-ms 1100]

`--set` overrides `TurnConfig` fields, to compare settings on the same runs.

This script is the command line: its arguments, the sections' order and what they print.
The runs and their conditions live in mediasrv/testing/ (frames.py: the line and the
frame loop, `simulate`; callers.py: placing a caller and the tally; breath.py, moves.py,
after_caller.py, repeated.py: each section's own).
"""

from __future__ import annotations

import argparse
import time
from itertools import product
from pathlib import Path

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import HANDSET, EchoPath
from mediasrv.emulator.script import load_8k
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing import tails
from mediasrv.testing.after_caller import (
    AFTER_GAINS_DB,
    AFTER_LINES,
    AFTER_NETS,
    AfterRun,
    answer_after_caller,
)
from mediasrv.testing.breath import (
    BREATH_GAINS_DB,
    BREATH_GAPS_MS,
    BREATH_LINES,
    breaths,
    with_breath,
)
from mediasrv.testing.callers import (
    AUDIO,
    Tally,
    caller_clips,
    caller_runs,
    offsets_for,
    speech_frames,
)
from mediasrv.testing.frames import FRAME, MakePolicy, Net, bots, prompt, simulate, under, why
from mediasrv.testing.moves import (
    GAP_AT_S,
    GAPS_MS,
    MOVE_AT_S,
    MOVE_SETS,
    MOVES_MS,
    PLAIN_SHAPES,
    Move,
    espeak_prompt,
    gap_run,
    move_run,
    plain_move_run,
)
from mediasrv.testing.repeated import (
    FRESH_GAINS_DB,
    FRESH_LINES,
    FRESH_NETS,
    REPEATED_CALLS,
    REPEATED_GAINS_DB,
    REPEATED_LINES,
    REPEATED_NETS,
    REPEATED_PHASES_MS,
    Interruption,
    fresh_answer,
    repeated_call,
)

NON_SPEECH = ("music", "tones", "noise", "silence")


def report_callers(make: MakePolicy, quick: bool, net: Net) -> None:
    print(f"callers over the bot (transit {net.down_ms:g}/{net.up_ms:g} ms); latency = first "
          "speech frame -> barge-in decision")
    callers = caller_clips()
    for gain in cat.GAINS_DB:
        for name, echo in cat.LINES.items():
            tally = Tally()
            for bot in bots().values():
                for pcm in callers.values():
                    scaled = pcm * 10 ** (gain / 20)
                    tally.add(caller_runs(make, bot, scaled, offsets_for(bot, quick),
                                          cat.line_of(echo), net, speech_frames(pcm)))
            print(f"  caller {gain:4.0f} dB  {name:9s} {tally.line()}")


def report_breaths(make: MakePolicy, net: Net) -> None:
    """Print, per caller gain and line, the callers with a breath before their first word
    (early: a barge-in on the breath), and the early barge-ins per breath."""
    print(f"a breath before the caller's first word (ending {'/'.join(map(str, BREATH_GAPS_MS))} "
          "ms before it), over the bot: early = barge-in on the breath")
    found = breaths()
    callers = list(caller_clips().values())
    for gain in BREATH_GAINS_DB:
        for line_name in BREATH_LINES:
            line = cat.line_of(cat.LINES[line_name])
            tally, early = Tally(), {}
            for breath in found:
                one = Tally()
                for pcm in callers:
                    for gap in BREATH_GAPS_MS:
                        clip, span = with_breath(pcm, breath, gap)
                        for bot in bots().values():
                            one.add(caller_runs(make, bot, clip * 10 ** (gain / 20),
                                                offsets_for(bot, True), line, net, span))
                early[breath.name] = one.early
                tally.add(one)
            per = " ".join(f"{k} {v}" for k, v in early.items())
            print(f"  caller {gain:4.0f} dB  {line_name:9s} {tally.line()}   ({per})")


def report_echo(make: MakePolicy, net: Net) -> None:
    print("echo alone, the ~20 s bot turn on issue 9's hard paths: barge-ins / starts / turns")
    bot = prompt(*cat.LONG_GREETING)
    for name, line in cat.echo_lines().items():
        near = np.zeros(len(bot) + 2 * 8000)
        run = simulate(make, bot, near, line, net, stop_at_barge_in=False)
        print(f"  {name:46s} {'/'.join(map(str, run.counts()))}")
    # Beyond the paths: a speakerphone in a room rings longer than the canceller's
    # 128 ms filter (40 dB of decay over the tail); built to fail, and did, before the
    # canceller carried a ringing response on past its filter. 20 dB / 300 ms still does.
    print("  beyond the filter (room tails):")
    for erl, tail in ((6.0, 200.0), (10.0, 200.0), (10.0, 300.0), (20.0, 300.0)):
        run = tails.tail_run(make, bot, tail, erl, net)
        name = EchoPath(tails.TAIL_DELAY_MS, erl, tail).describe()
        print(f"  {name:46s} {'/'.join(map(str, run.counts()))}")


def report_tails(make: MakePolicy) -> None:
    """Print, per room tail and transit, echo alone's barge-ins / starts / turns at each
    ERL (summed over the four prompts), then each prompt's barge-ins."""
    prompts = tails.tail_prompts()
    print(f"echo alone through a room's tail (160 ms; {', '.join(prompts)}): barge-ins / "
          f"starts / turns at ERL {' / '.join(f'{e:g}' for e in tails.TAIL_ERLS_DB)} dB")
    for tail, net in product(tails.TAILS_MS, tails.TAIL_NETS):
        cells, barged = [], []
        for erl in tails.TAIL_ERLS_DB:
            total = [0, 0, 0]
            for name, bot in prompts.items():
                run = tails.tail_run(make, bot, tail, erl, net)
                total = [a + b for a, b in zip(total, run.counts(), strict=True)]
                barged += [f"{name} {erl:g} dB {t:.2f} s" for _, t in run.barge_ins]
            cells.append("/".join(map(str, total)))
        print(f"  {tail:3.0f} ms tail  transit {net.down_ms:2.0f}/{net.up_ms:2.0f} ms  "
              f"{'   '.join(f'{c:8s}' for c in cells).rstrip()}")
        for i in range(0, len(barged), 5):
            print(f"    {', '.join(barged[i : i + 5])}")


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


def report_moves(config: TurnConfig, net: Net) -> None:
    print("echo path moves (echo alone): barge-ins of runs; each barge-in with ms after the "
          "move (at Twilio) and the guard's state then")
    prompts = {"long answer": bots()["long_answer"], "espeak": espeak_prompt()}
    for erl, clip, shapes, times, names in MOVE_SETS:
        for name in names:
            report_move_set(config, net, prompts[name], name,
                            [Move(erl, clip, shape, ms, at)
                             for shape, ms, at in product(shapes, MOVES_MS, times)])
    # `Call`'s line has no transit and no rx loop: the same runs whatever `net` says.
    report_move_set(config, None, prompts["espeak"], "plain",
                    [Move(10.0, False, shape, ms, at)
                     for shape, ms, at in product(PLAIN_SHAPES, MOVES_MS, MOVE_AT_S)])
    report_gaps(config, net)


def report_gaps(config: TurnConfig, net: Net) -> None:
    """Print, per echo-alone path, barge-ins / starts / turns over the playout gaps."""
    print(f"  playout gaps (echo alone, the ~20 s turn; {'/'.join(f'{g:+g}' for g in GAPS_MS)}"
          f" ms at {'/'.join(f'{t:g}' for t in GAP_AT_S)} s): barge-ins / starts / turns")
    bot = prompt(*cat.LONG_GREETING)
    for name, line in cat.echo_lines().items():
        total, bad = [0, 0, 0], []
        for gap, at in product(GAPS_MS, GAP_AT_S):
            run = gap_run(lambda: TurnPolicy(config), bot, line, net, gap, at)
            total = [a + b for a, b in zip(total, run.counts(), strict=True)]
            if any(run.counts()):
                bad.append(f"{gap:+g} ms at {at:g} s")
        print(f"  {name:46s} {'/'.join(map(str, total))} of {len(GAPS_MS) * len(GAP_AT_S)}"
              + (f"  ({', '.join(bad)})" if bad else ""))


def report_move_set(config: TurnConfig, net: Net | None, bot: bytes, name: str,
                    moves: list[Move]) -> None:
    """Print each barge-in of `moves` on `bot`, then their count (`net` None: on
    `Call`'s plain line, `plain_move_run`)."""
    runs = (move_run(config, net, bot, m) if net is not None else plain_move_run(config, bot, m)
            for m in moves)
    barged = [b for b in runs if b]
    for line in barged:
        print(f"    {name}: {line}")
    first = moves[0]
    speaker = ", saturated speaker" if first.clip else ""
    shapes = "/".join(dict.fromkeys(m.shape for m in moves))
    times = "/".join(f"{t:g}" for t in dict.fromkeys(m.at_s for m in moves))
    print(f"  {name:11s} ERL {first.erl:g} dB{speaker:19s} {shapes:22s} at {times:9s} s: "
          f"{len(barged)}/{len(moves)}")


def report_after_caller(make: MakePolicy, nets: tuple[Net, ...] = AFTER_NETS) -> None:
    print("the answer's echo alone after a caller's turn (the caller over the greeting at "
          "1.1 / 2.4 / 3.7 s, or just after it): barge-ins + answers to it / answers played")
    greeting, answer = prompt("greeting"), prompt("long_answer")
    callers = caller_clips()
    offsets = (1.1, 2.4, 3.7, len(greeting) / 8000 + 0.3)
    for net in nets:
        for gain in AFTER_GAINS_DB:
            for name, line in AFTER_LINES.items():
                total = AfterRun()
                answered = 0
                for pcm in callers.values():
                    for offset in offsets:
                        start = int(offset * 8000)
                        near = np.zeros(start + pcm.size + 3 * 8000 + len(answer))
                        near[start : start + pcm.size] += pcm * 10 ** (gain / 20)
                        quiet_from = start // FRAME + speech_frames(pcm)[1] + 1
                        run = answer_after_caller(make, greeting, answer, near, line, net,
                                                  quiet_from)
                        total.barge_ins += run.barge_ins
                        total.turns += run.turns
                        answered += run.answered
                print(f"  transit {net.down_ms:3.0f}/{net.up_ms:2.0f} ms  caller {gain:4.0f} dB"
                      f"  {name:13s} {total.barge_ins} + {total.turns}"
                      f"   answered {answered}/{len(callers) * len(offsets)}")


def report_repeated(make: MakePolicy, nets: tuple[Net, ...] = REPEATED_NETS) -> None:
    print("repeated interruptions (three callers over the greeting and two answers, the last "
          "answer played out; each turn at its own phase): callers heard, false barge-ins + "
          "answered echo turns")
    callers = caller_clips()
    for net, gain, (name, line) in product(nets, REPEATED_GAINS_DB, REPEATED_LINES.items()):
        tally, false, turns = Tally(), [], 0
        for c, (calls, phases) in enumerate(product(REPEATED_CALLS, REPEATED_PHASES_MS)):
            seq = [Interruption(callers[f] * 10 ** (gain / 20), speech_frames(callers[f]), at)
                   for f, at in calls]
            run = repeated_call(make, line, net, seq, why, phases)
            tally.ms += [ms for ms in run.heard_ms if ms is not None]
            tally.misses += sum(ms is None for ms in run.heard_ms)
            false += [f"call {c}, answer {b.answer} +{b.into_s:.2f} s: {b.state}"
                      for b in run.false]
            turns += run.echo_turns
        print(f"  transit {net.down_ms:3.0f}/{net.up_ms:2.0f} ms  caller {gain:4.0f} dB  "
              f"{name:9s} {tally.line()}   false {len(false)} + {turns}")
        for text in false:
            print(f"    {text}")


def report_fresh_answers(make: MakePolicy) -> None:
    print("an answer to each caller (0/-4/-10 dB as heard) from a fresh canceller, echo alone: "
          "barge-ins / runs")
    for name, line in FRESH_LINES.items():
        barged: list[str] = []
        for (f, n), gain, net in product(cat.CALLERS, FRESH_GAINS_DB, FRESH_NETS):
            run = fresh_answer(make, f, n, gain, line, net)
            barged += [f"{Path(f).name} {gain:g} dB {net.down_ms:g}/{net.up_ms:g} ms: "
                       f"{t:.2f} s" for _, t in run.barge_ins]
        runs = len(cat.CALLERS) * len(FRESH_GAINS_DB) * len(FRESH_NETS)
        print(f"  {name:10s} {len(barged)}/{runs}")
        for text in barged:
            print(f"    {text}")


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
    parser.add_argument("--only", choices=("callers", "breath", "echo", "tails", "moves",
                                           "non-speech", "after-caller", "repeated"))
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
    if args.only in (None, "tails"):
        report_tails(make)
    if args.only in (None, "moves"):
        report_moves(config, net)
    if args.only in (None, "non-speech"):
        report_non_speech(make, net)
        report_noise_sweep(make, net)
    if args.only in (None, "callers"):
        report_callers(make, args.quick, net)
    if args.only in (None, "breath"):
        report_breaths(make, net)
    if args.only in (None, "after-caller"):
        report_after_caller(make)
    if args.only in (None, "repeated"):
        report_repeated(make)
        report_fresh_answers(make)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
