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
- a breath before the callers' first words (`breath`, scripts/bargein_breath.py): the
  callers' table again, each caller led by a real or synthetic breath; early = on it;
- echo alone: barge-ins / speech starts / turns with only the bot's ~20 s turn coming
  back, on each of the nine hard paths of issue 9;
- non-speech over the bot (handset line) and idle: turns and barge-ins; then steady noise
  and hold music under the bot from its first word at five levels, on both echo lines;
- echo path moves (`moves`): the bot's prompt while the echo path moves mid-call, on the
  emulator's lines and on `tests/test_echo.py`'s `Call` line ("plain": no hiss, no transit,
  the espeak prompt; the same runs whatever the transit or stall): each barge-in with the
  guard's state then;
- the answer after a caller's turn (`after-caller`): a quiet caller talks over the
  greeting (or just after it), the bot stops, their turn ends, a ~9.5 s answer plays
  with nobody on the line: barge-ins on its echo and answers to them (both must be 0);
- repeated interruptions (`repeated`, mediasrv/testing/repeated.py): three callers over
  the greeting and two answers (the local backend's: what was forwarded of the turn played
  back, then the long answer), each bot turn at its own phase of the 20 ms tick, the last
  answer played out: callers heard, and false barge-ins (no caller speech then) + echo
  turns answered (both must be 0), each false one with the guard's state; then each
  caller's answer alone from a fresh canceller (echo alone): barge-ins of runs.

    PYTHONPATH=. .venv/bin/python scripts/bargein_eval.py [--quick] [--set FIELD=VALUE ...]
        [--only callers|breath|echo|moves|non-speech|after-caller|repeated]
        [--down-ms 30] [--up-ms 30]
        [--stall-at 1.0 --stall-ms 1100]

`--set` overrides `TurnConfig` fields, to compare settings on the same runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw, to_pcm16
from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import (
    BAD_LINE,
    HANDSET,
    SATURATION_DBFS,
    EchoPath,
    Line,
    LineModel,
    PathChange,
    Reflection,
)
from mediasrv.emulator.script import ONSET_DBFS, frame_levels_dbfs, load_8k
from mediasrv.policy.turns import (
    BargeIn,
    EndOfUtterance,
    TurnConfig,
    TurnPolicy,
    UtteranceStarted,
)
from mediasrv.testing.frames import (
    DETECT_SLACK_FRAMES,
    FRAME,
    TICK,
    Floats,
    MakePolicy,
    Net,
    Run,
    bots,
    capture,
    prompt,
    send,
    simulate,
)
from mediasrv.testing.repeated import Interruption, answer_audio, repeated_call

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "audio"
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


# An echo path that moves mid-call (issue 9: "a path change mid-call"): the echo comes back
# at another delay, as loud, 3 / 4 / 5.2 s into the bot's prompt (after the canceller was
# trusted), through three shapes of path. The echo-alone rows above hold one move only.
MOVES_MS = ((160, 20), (160, 40), (160, 60), (160, 80), (160, 100), (160, 120), (160, 200),
            (160, 240), (160, 300), (20, 160), (60, 160))
MOVE_AT_S = (3.0, 4.0, 5.2)
MOVE_AFTER_S = 3.0  # how long each run goes on after the move
# The prompt of tests/test_echo.py's `Call` too: 14 of its 99 moves barged in there (ERL 10
# dB) against 3 on the long answer, the same moves and shapes.
MOVE_ESPEAK_BOT = "speech/en_espeak_bot_prompt.wav"
# (dispersive tail ms, reflection): a hybrid's ring; a pure delay; a ring and a reflection.
MOVE_SHAPES: dict[str, tuple[float, Reflection | None]] = {
    "hybrid": (12.0, None), "flat": (0.0, None), "reflection": (12.0, Reflection(30.0, -6.0))}
# (ERL dB, saturated speaker, shapes, move times, prompts): ERL 10 on every shape at every
# time, on the bot's long answer and on `Call`'s prompt; the others on the hybrid at 4 s,
# on the long answer (the section's run time; on the espeak prompt a 6 dB hybrid returns
# its peaks less than 6 dB down -- the emulator's ERL is the loss for *our* prompts'
# spectrum -- and the level alone, beyond any echo we promise to survive, barged in while
# the moved path was re-learned: 5 of 11).
MOVE_SETS = ((10.0, False, tuple(MOVE_SHAPES), MOVE_AT_S, ("long answer", "espeak")),
             (6.0, False, ("hybrid",), (4.0,), ("long answer",)),
             (20.0, False, ("hybrid",), (4.0,), ("long answer",)),
             (6.0, True, ("hybrid",), (4.0,), ("long answer",)))


def moved_line(erl: float, shape: str, move: tuple[int, int], at_s: float, clip: bool) -> Line:
    tail, reflection = MOVE_SHAPES[shape]
    before, after = (EchoPath(float(ms), erl, tail, reflection) for ms in move)
    return cat.line_of(before, change=PathChange(at_s, after),
                       speaker_clip_dbfs=SATURATION_DBFS if clip else None)


def why(policy: TurnPolicy) -> str:
    """Return the echo guard's state at a barge-in, for the moves table."""
    echo, aec = policy.echo, policy.echo.canceller
    if aec is None:
        return echo.evidence
    coh = "-" if echo.coherence is None else "{:.2f}/{:.2f}".format(*echo.coherence)
    delay = "-" if aec.delay is None else f"{aec.delay / 8:.0f}"
    res_db = 10 * np.log10(max(aec.residual_power, 1e-12))
    est_db = 10 * np.log10(max(aec.echo_power, 1e-12))
    found = aec.residual_lag()
    lag = "-" if found is None else (f"{found.delay / 8:.0f} ms (own {found.own:.1f}, search "
                                     f"{found.search:.1f})")
    return (f"{echo.evidence} res {res_db:.1f} est {est_db:.1f} dB coh {coh} recent "
            f"{aec.recent_coherence():.2f} erle {aec.erle_db:.1f} delay {delay} ms residual's "
            f"lag {lag} level {echo.over_bound_db:+.1f} dB over the bound "
            f"({echo.path.bound_db:.1f} dB)")


@dataclass(frozen=True)
class Move:
    erl: float
    clip: bool
    shape: str
    ms: tuple[int, int]
    at_s: float


def move_run(config: TurnConfig, net: Net, bot: bytes, move: Move) -> str | None:
    """Play `bot` while the echo path moves `move.at_s` into it; describe a barge-in."""
    made: list[TurnPolicy] = []

    def make() -> TurnPolicy:
        made.append(TurnPolicy(config))
        return made[-1]

    play_s = TICK + net.down_ms / 1000.0  # Twilio time of the prompt's first sample
    line = moved_line(move.erl, move.shape, move.ms, play_s + move.at_s, move.clip)
    run = simulate(make, bot, np.zeros(int((play_s + move.at_s + MOVE_AFTER_S) * 8000)),
                   line, net)
    if not run.barge_ins:
        return None
    after = run.barge_ins[0][1] - net.up_ms / 1000.0 - (play_s + move.at_s)
    return (f"{move.shape} {move.ms[0]}->{move.ms[1]} ms at {move.at_s:g} s: "
            f"+{after * 1000:.0f} ms {why(made[0])}")


def report_moves(config: TurnConfig, net: Net) -> None:
    print("echo path moves (echo alone): barge-ins of runs; each barge-in with ms after the "
          "move (at Twilio) and the guard's state then")
    espeak = pcm16_to_ulaw(to_pcm16(load_8k(AUDIO / MOVE_ESPEAK_BOT)))
    prompts = {"long answer": bots()["long_answer"],
               "espeak": espeak[: len(espeak) // FRAME * FRAME]}
    for erl, clip, shapes, times, names in MOVE_SETS:
        for name in names:
            report_move_set(config, net, prompts[name], name,
                            [Move(erl, clip, shape, ms, at)
                             for shape, ms, at in product(shapes, MOVES_MS, times)])
    # `Call`'s line has no transit and no rx loop: the same runs whatever `net` says.
    report_move_set(config, None, prompts["espeak"], "plain",
                    [Move(10.0, False, shape, ms, at)
                     for shape, ms, at in product(PLAIN_SHAPES, MOVES_MS, MOVE_AT_S)])


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


# tests/test_echo.py's `Call` line, "hiss-free, loud bot": the espeak prompt (peaks at -2.5
# dBFS) through a short path 10 dB down at its loudest frequency, placed on the inbound
# timeline as sent (no transit), no hiss, one mu-law encoding. Its 99 moves (the shapes
# of `Call`'s tests) barged in 4 times where the emulator's line did not: with no hiss
# under it, the residual of a pause in the bot is quantisation alone, and the moved echo
# (through a reflection, or into a span the filter models as nothing) stands out there.
_HYBRID = np.convolve([0.1, 0.7, 1.0, 0.35, -0.3, -0.35, -0.1, 0.12, 0.15, 0.05],
                      np.exp(-np.arange(24) / 6.0))
_REFLECTED = np.concatenate([_HYBRID, np.zeros(240)]) + np.concatenate([np.zeros(240),
                                                                          _HYBRID / 2])
PLAIN_SHAPES = {"hybrid": _HYBRID / np.abs(np.fft.rfft(_HYBRID, 256)).max(), "flat": np.ones(1),
                "reflection": _REFLECTED / np.abs(np.fft.rfft(_REFLECTED, 512)).max()}
PLAIN_TAIL_S = 2.0  # `Call`'s: the inbound goes on this long after the prompt


def plain_move_run(config: TurnConfig, bot: bytes, move: Move) -> str | None:
    """Play `bot` over `Call`'s line while its echo path moves; describe a barge-in."""
    policy = TurnPolicy(config)
    taps = PLAIN_SHAPES[move.shape] * 10 ** (-move.erl / 20)
    frames, moved_at = len(bot) // FRAME, int(round(move.at_s / TICK))
    n = frames + int(PLAIN_TAIL_S / TICK)
    echo = np.zeros((n + 1) * FRAME + 8 * max(move.ms) + taps.size)
    for i in range(n):
        now = (i + 1) * TICK
        if i < frames:
            out = bot[i * FRAME : (i + 1) * FRAME]
            policy.on_sent(out, now)
            at = i * FRAME + 8 * move.ms[i >= moved_at]
            played = np.convolve(ULAW_DECODE[np.frombuffer(out, np.uint8)], taps)
            echo[at : at + played.size] += played
        heard = np.clip(np.rint(echo[i * FRAME : (i + 1) * FRAME]), -32768, 32767)
        step = policy.feed(pcm16_to_ulaw(heard.astype(np.int16)), now, ai_playing=i < frames,
                           closing=False)
        if any(isinstance(e, BargeIn) for e in step.events):
            return (f"{move.shape} {move.ms[0]}->{move.ms[1]} ms at {move.at_s:g} s: "
                    f"+{(i + 1 - moved_at) * 20} ms {why(policy)}")
    return None


# The answer after a caller's turn, with nobody on the line: its echo alone must not
# barge in (issue 9; seen end to end 0.6-2.4 s into the answer, after a quiet caller on
# the bad line, and once in CI after a caller who spoke after the greeting).
ANSWER_AFTER_S = 0.3  # the caller's turn end -> the answer's first frame sent
AFTER_GAINS_DB = (-10.0, -20.0)
AFTER_LINES = {"handset": cat.line_of(HANDSET), "bad line": cat.line_of(BAD_LINE),
               "10 dB no hiss": Line(echo=EchoPath(160.0, 10.0), hiss_dbov=None)}
# Transit down/up: the reproduced ones came at 80/35 ms (250/30 gave none: left out for time).
AFTER_NETS = (Net(), Net(80.0, 35.0))


@dataclass
class AfterRun:
    answered: bool = False  # the caller's turn ended and the answer played
    barge_ins: int = 0  # on the answer's echo alone
    turns: int = 0  # turns of echo alone ended while the answer played: answered


def answer_after_caller(make: MakePolicy, greeting: bytes, answer: bytes, near: Floats,
                        line: Line, net: Net, quiet_from: int) -> AfterRun:
    """Play the greeting until the caller barges in (or it ends); `ANSWER_AFTER_S` after the
    caller's first turn ends, play `answer` while `near` comes back. The clear drops what
    was still to play of the greeting once it reaches Twilio.

    `quiet_from`: the capture frame from which `near` is silent for good. Only barge-ins
    and utterances from then on count: before, a caller whose turn ended at a pause
    ("front | center") rightly barges in on the answer with the rest."""
    policy, model, run = make(), LineModel(line), AfterRun()
    echo_utterance = False
    down, up = int(round(net.down_ms * 8)), net.up_ms / 1000.0
    played = np.zeros(near.size + 2 * FRAME + down)
    out, sent, answer_at = greeting, 0, -1  # answer_at: the tick the answer starts
    n, k = near.size // FRAME, 0
    for i in range(n):
        now = (i + 1) * TICK
        if i == answer_at:
            out, sent = answer, 0
        playing = sent < len(out) // FRAME and (out is greeting or 0 <= answer_at <= i)
        if playing:
            send(policy, played, out[sent * FRAME : (sent + 1) * FRAME], i, down)
            sent += 1
        while k < n and (k + 1) * TICK + up <= now and not net.stalled(now):
            step = capture(policy, model, near, played[k * FRAME : (k + 1) * FRAME], k, up,
                           playing)
            for event in step.events:
                in_answer = 0 <= answer_at <= i
                if isinstance(event, UtteranceStarted):
                    echo_utterance = k >= quiet_from
                elif isinstance(event, BargeIn):
                    if in_answer and k >= quiet_from:
                        run.barge_ins += 1
                    elif out is greeting:  # the clear: nothing more of it plays
                        sent = len(out) // FRAME
                        played[int((now + net.down_ms / 1000.0) * 8000) :] = 0.0
                elif isinstance(event, EndOfUtterance):
                    if in_answer and echo_utterance:
                        run.turns += 1
                    elif answer_at < 0:
                        answer_at = i + 1 + int(round(ANSWER_AFTER_S / TICK))
            k += 1
    run.answered = 0 <= answer_at < n - len(answer) // FRAME
    return run


def report_after_caller(make: MakePolicy, nets: tuple[Net, ...] = AFTER_NETS) -> None:
    print("the answer's echo alone after a caller's turn (the caller over the greeting at "
          "1.1 / 2.4 / 3.7 s, or just after it): barge-ins + answers to it / answers played")
    greeting, answer = prompt("greeting"), prompt("long_answer")
    callers = {f: load_8k(AUDIO / f)[: int(n * 8000)] for f, n in cat.CALLERS}
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


# A caller who interrupts the bot three times (issue 9's three-interruption call): each
# answer's echo meets a canceller the barge-in before it perturbed, and each bot turn's
# frames leave at their own phase of the 20 ms grid (a response's audio comes when it
# comes): placed on the nearest slot, the reference moved against the echo by up to
# +-10 ms from one answer to the next and the answers' echo barged in, end to end too
# (docs/turn-taking.md, README (20)); after-caller above has one interruption, on the grid.
# (caller clip, s into the bot turn it talks over): the first row is scenarios.py's
# three_interruptions; the others vary the clips, the offsets and the order.
REPEATED_CALLS = (((cat.WEASELS, 2.0), (cat.ONLY_PERSON, 3.7), (cat.HELLO, 3.5)),
                  ((cat.HELLO, 1.1), (cat.FRONT_CENTER, 4.6), (cat.VM_INTRO, 2.9)),
                  ((cat.VM_INTRO, 3.0), (cat.WEASELS, 2.4), (cat.ONLY_PERSON, 5.2)),
                  ((cat.FRONT_CENTER, 0.6), (cat.HELLO, 5.9), (cat.WEASELS, 1.7)),
                  ((cat.ONLY_PERSON, 1.6), (cat.VM_INTRO, 3.2), (cat.FRONT_CENTER, 4.1)))
# ms after the tick each bot turn's frames leave (the greeting, then each answer).
REPEATED_PHASES_MS = ((0.0, 13.0, 6.0, 17.0), (9.0, 2.0, 15.0, 4.0), (18.0, 7.0, 1.0, 11.0),
                      (5.0, 19.0, 10.0, 0.0))
REPEATED_GAINS_DB = (cat.NOMINAL_GAIN_DB, -10.0, -20.0)
REPEATED_LINES = {"bad line": cat.line_of(BAD_LINE), "handset": cat.line_of(HANDSET)}
# scenarios.py's three_interruptions_0 runs at 30/10 ms; 80/35 as after-caller's.
REPEATED_NETS = (Net(30.0, 10.0), Net(80.0, 35.0))


def report_repeated(make: MakePolicy, nets: tuple[Net, ...] = REPEATED_NETS) -> None:
    print("repeated interruptions (three callers over the greeting and two answers, the last "
          "answer played out; each turn at its own phase): callers heard, false barge-ins + "
          "answered echo turns")
    callers = {f: load_8k(AUDIO / f)[: int(n * 8000)] for f, n in cat.CALLERS}
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


# ... and an answer met by a canceller learning from nothing (its delay search realigned as
# the answer began: end to end, the band mask's false clears 1.5 s into an answer came so,
# the filter re-learned from 52-60 frames): "You said:" in the bot's voice, then a
# caller's replayed voice in bands the young filter hardly learned yet, echo alone.
FRESH_GAINS_DB = (0.0, cat.NOMINAL_GAIN_DB, -10.0)
FRESH_LINES = {"bad line": cat.line_of(BAD_LINE), "bad line 0": cat.line_of(BAD_LINE, seed=0),
               "handset": cat.line_of(HANDSET)}
FRESH_NETS = (Net(30.0, 10.0), Net(80.0, 35.0), Net())


def fresh_answer(make: MakePolicy, file: str, seconds: float, gain_db: float, line: Line,
                 net: Net) -> Run:
    """Play the answer to `seconds` of caller `file` heard at `gain_db`, echo alone, to a
    fresh policy."""
    heard = pcm16_to_ulaw(to_pcm16(load_8k(AUDIO / file)[: int(seconds * 8000)]
                                   * 10 ** (gain_db / 20)))
    bot = answer_audio(heard)
    return simulate(make, bot, np.zeros(len(bot) + 8000), line, net)


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
    parser.add_argument("--only", choices=("callers", "breath", "echo", "moves", "non-speech",
                                           "after-caller", "repeated"))
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
    if args.only in (None, "moves"):
        report_moves(config, net)
    if args.only in (None, "non-speech"):
        report_non_speech(make, net)
        report_noise_sweep(make, net)
    if args.only in (None, "callers"):
        report_callers(make, args.quick, net)
    if args.only in (None, "breath"):
        from bargein_breath import report_breaths  # it imports this module's helpers

        report_breaths(make, net)
    if args.only in (None, "after-caller"):
        report_after_caller(make)
    if args.only in (None, "repeated"):
        report_repeated(make)
        report_fresh_answers(make)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
