"""The echo path moving mid-call, frame by frame: the moves, the lines and one run of each.

Layer: testing. No server, no threads, like `mediasrv.testing.frames`. Issue 9's "a path
change mid-call": the echo comes back at another delay, as loud, seconds into the bot's
prompt, after the canceller was trusted. Two lines carry a move:

- the emulator's (`move_run`): `mediasrv.testing.frames.simulate` over a `Line` whose
  `PathChange` moves the path (`moved_line`), with the transit and rx stalls of `Net`;
- tests/test_echo.py's `Call` line (`plain_move_run`): no hiss, no transit, the echo
  placed on the inbound timeline as sent.

Each run returns the barge-in it met (ms after the move and the guard's state then,
`frames.why`) or None; scripts/bargein_eval.py's `moves` section prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw, to_pcm16
from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import SATURATION_DBFS, EchoPath, Line, PathChange, Reflection
from mediasrv.emulator.script import load_8k
from mediasrv.policy.turns import BargeIn, TurnConfig, TurnPolicy
from mediasrv.testing.callers import AUDIO
from mediasrv.testing.frames import FRAME, TICK, MakePolicy, Net, Run, simulate, why

# An echo path that moves mid-call (issue 9: "a path change mid-call"): the echo comes back
# at another delay, as loud, 3 / 4 / 5.2 s into the bot's prompt (after the canceller was
# trusted), through three shapes of path. The echo-alone section holds one move only.
MOVES_MS = ((160, 20), (160, 40), (160, 60), (160, 80), (160, 100), (160, 120), (160, 200),
            (160, 240), (160, 300), (20, 160), (60, 160))
MOVE_AT_S = (3.0, 4.0, 5.2)
MOVE_AFTER_S = 3.0  # how long each run goes on after the move
# The prompt of tests/test_echo.py's `Call` too: 14 of its 99 moves barged in there (ERL 10
# dB) against 3 on the long answer, the same moves and shapes.
MOVE_ESPEAK_BOT = "speech/en_espeak_bot_prompt.wav"


def espeak_prompt() -> bytes:
    """Return `MOVE_ESPEAK_BOT` as whole mu-law frames (what tx would send)."""
    ulaw = pcm16_to_ulaw(to_pcm16(load_8k(AUDIO / MOVE_ESPEAK_BOT)))
    return ulaw[: len(ulaw) // FRAME * FRAME]

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


# Twilio's playout parting from the server's clock of it mid-turn (`Net.gap_ms`): the whole
# echo comes that much later (earlier), on each of issue 9's echo-alone paths. Positive: the
# playout ran dry (network jitter past the 60 ms prebuffer, a send 40+ ms late: the issue 9
# table's one false barge-in on echo alone, server mode, came in a call whose sends ran 41 ms
# late, against 1-3 ms in its other echo-alone calls); negative: the server stamped a pause
# Twilio did not make (10 ms or less: no pause, see `EchoCanceller.on_sent`).
GAPS_MS = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0, -12.0, -20.0)
GAP_AT_S = (1.5, 4.37, 9.0)


def gap_run(make: MakePolicy, bot: bytes, line: Line, net: Net, gap_ms: float,
            at_s: float) -> Run:
    """Play `bot` alone over `line` with the playout gap `gap_ms` from `at_s` (server time)
    on; run on for `MOVE_AFTER_S` after it."""
    near = np.zeros(int((at_s + MOVE_AFTER_S) * 8000))
    return simulate(make, bot, near, line, replace(net, gap_at_s=at_s, gap_ms=gap_ms),
                    stop_at_barge_in=False)


def moved_line(erl: float, shape: str, move: tuple[int, int], at_s: float, clip: bool) -> Line:
    tail, reflection = MOVE_SHAPES[shape]
    before, after = (EchoPath(float(ms), erl, tail, reflection) for ms in move)
    return cat.line_of(before, change=PathChange(at_s, after),
                       speaker_clip_dbfs=SATURATION_DBFS if clip else None)


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
