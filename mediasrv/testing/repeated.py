"""A caller who interrupts the bot again and again, frame by frame: the answers' echo after it.

Layer: testing. No server, no threads, like `mediasrv.testing.frames`: the real
`TurnPolicy` through the emulator's line model, with the answers the local backend really
plays (`mediasrv.localbackend.prompts.compose`: "You said:", the caller's turn as it was
forwarded, 300 ms, the long answer).

The call: the greeting plays; the caller talks over it at an offset, the bot stops (the
clear drops what Twilio still had to play), the caller's turn ends, and `ANSWER_AFTER_S`
later the answer to it plays; the next caller talks over that answer at its own offset,
and so on; the answer to the last one plays to its end with nobody on the line. Each
barge-in freezes the canceller's learning for the caller's speech (echo.py `caller_speech`)
and cuts our echo off mid-word, so each answer's echo meets a filter perturbed by the turn
before it.

Each bot turn's frames leave at their own phase of the 20 ms tick (`phases_ms`): a
response's audio comes when it comes and the pacer starts its burst then. The canceller
used to place a burst's first frame on the nearest 20 ms slot, so from one answer to the
next the echo's delay against the reference moved by up to +-10 ms and the filter no
longer fit; recorded end to end (scripts/scenarios.py --only three_interruptions_0) and
replayed into the policy frame by frame, the answer's echo barged in there. A burst is now
placed at its own sample (aec_timeline.py `on_sent`); on the tick every time (as
`simulate` and after-caller send) the fault never showed, so this section keeps the
phases to hold that fix.

A barge-in counts as the caller's when it comes between their first speech frame and
`DETECT_SLACK_FRAMES` after their last; any other is false (our echo taken for the caller).

Also here: the calls scripts/bargein_eval.py's `repeated` section plays (`REPEATED_*`),
and an answer alone from a fresh canceller (`fresh_answer`, the `FRESH_*` conditions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from mediasrv.audio import pcm16_to_ulaw, to_pcm16
from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import BAD_LINE, HANDSET, Line, LineModel
from mediasrv.emulator.script import load_8k
from mediasrv.localbackend.prompts import ANSWER_PAUSE_MS, PromptBank, compose
from mediasrv.policy.turns import (
    BargeIn,
    EndOfUtterance,
    TurnPolicy,
    UtteranceSkipped,
    UtteranceStarted,
)
from mediasrv.testing.callers import AUDIO
from mediasrv.testing.frames import (
    DETECT_SLACK_FRAMES,
    FRAME,
    PROMPTS,
    TICK,
    Floats,
    MakePolicy,
    Net,
    Run,
    capture,
    prompt,
    send,
    simulate,
)

ANSWER_AFTER_S = 0.3  # the caller's turn end -> the answer's first frame sent
CALLER_AUDIO_CAP_MS = 6000  # the local backend's `answer_caller_audio_cap_ms` default
AFTER_LAST_S = 1.0  # the run goes on this long after the last answer ended
_LONGEST_ANSWER_S = 0.7 + CALLER_AUDIO_CAP_MS / 1000 + ANSWER_PAUSE_MS / 1000 + 9.5


@dataclass(frozen=True)
class Interruption:
    """One caller talking over one bot turn (the greeting, then each answer in order)."""

    clip: Floats  # the caller's audio, at the gain they speak at
    span: tuple[int, int]  # first and last speech frame of the clip at its natural level
    offset_s: float  # from the bot turn's first sample played at Twilio


@dataclass(frozen=True)
class FalseBargeIn:
    answer: int  # the bot turn it cut off: 0 the greeting, n the n-th answer
    into_s: float  # seconds into that turn (its first sample played at Twilio -> capture)
    state: str  # the echo guard's state then (the `describe` callback's)


@dataclass
class RepeatedRun:
    heard_ms: list[float | None] = field(default_factory=list)  # per caller; None: missed
    false: list[FalseBargeIn] = field(default_factory=list)
    echo_turns: int = 0  # turns with no caller speech in them, answered
    answers: int = 0  # answers that started playing


@cache
def _bank() -> PromptBank:
    return PromptBank.load(PROMPTS)


def answer_audio(heard: bytes) -> bytes:
    """Return what the local backend answers a turn with, as whole frames."""
    audio = compose(_bank(), "answer", heard, CALLER_AUDIO_CAP_MS).audio
    return audio[: len(audio) // FRAME * FRAME]


def repeated_call(make: MakePolicy, line: Line, net: Net, callers: Sequence[Interruption],
                  describe: Callable[[TurnPolicy], str] = lambda _: "",
                  phases_ms: Sequence[float] = (0.0,)) -> RepeatedRun:
    """Play the greeting, then an answer after each caller's turn, each caller talking over
    the bot turn before it; tally the callers heard and the barge-ins that were not them."""
    policy, model = make(), LineModel(line)
    run = RepeatedRun(heard_ms=[None] * len(callers))
    down, up = int(round(net.down_ms * 8)), net.up_ms / 1000.0
    greeting = prompt("greeting")
    size = int((len(greeting) / 8000 + len(callers) * (_LONGEST_ANSWER_S + 2.0)) * 8000)
    near, played = np.zeros(size), np.zeros(size + 3 * FRAME + down)
    windows: list[tuple[int, int]] = []  # capture frames: each caller's onset, last counted
    turn_starts: list[int] = []  # Twilio sample of each bot turn's first sample
    heard, forwarded = bytearray(), False  # what went to the backend since the last turn
    caller_turn = False  # the utterance under way holds the caller's speech
    out, sent, answer_at, end_at = greeting, 0, -1, size // FRAME

    phase = 0  # samples: when this bot turn's frames leave, after the tick

    def start_turn(i: int) -> None:
        nonlocal phase
        j = len(turn_starts)
        phase = int(round(phases_ms[j % len(phases_ms)] * 8))
        at = (i + 1) * FRAME + down + phase
        turn_starts.append(at)
        if j < len(callers):
            c = callers[j]
            start = at + int(c.offset_s * 8000)
            near[start : start + c.clip.size] += c.clip[: max(0, near.size - start)]
            first, last = c.span
            windows.append(((start // FRAME) + first,
                            (start + (last + 1) * FRAME) // FRAME + DETECT_SLACK_FRAMES))

    def caller_at(k: int) -> int | None:
        return next((j for j, (a, b) in enumerate(windows) if a <= k <= b), None)

    start_turn(0)
    n, k = size // FRAME, 0
    for i in range(n):
        now = (i + 1) * TICK
        if i == answer_at:
            out, sent, heard = answer_audio(bytes(heard)), 0, bytearray()
            run.answers += 1
            start_turn(i)
            if len(turn_starts) > len(callers):  # the answer to the last caller: to its end
                end_at = i + len(out) // FRAME + int(AFTER_LAST_S / TICK)
        if i >= end_at:
            break
        playing = sent < len(out) // FRAME
        if playing:
            send(policy, played, out[sent * FRAME : (sent + 1) * FRAME], i, down, phase)
            sent += 1
        while k < n and (k + 1) * TICK + up <= now and not net.stalled(now):
            step = capture(policy, model, near, played[k * FRAME : (k + 1) * FRAME], k, up,
                           playing)
            heard += step.forward
            forwarded = forwarded or bool(step.forward)
            for event in step.events:
                j = caller_at(k)
                if isinstance(event, UtteranceStarted):
                    caller_turn = j is not None
                elif isinstance(event, BargeIn):
                    if j is None:
                        into = (k * FRAME - turn_starts[-1]) / 8000
                        run.false.append(FalseBargeIn(len(turn_starts) - 1, into,
                                                      describe(policy)))
                    elif run.heard_ms[j] is None:
                        run.heard_ms[j] = round((now - windows[j][0] * TICK) * 1000, 1)
                    sent = len(out) // FRAME  # the clear: nothing more of it is sent ...
                    played[int((now + net.down_ms / 1000.0) * 8000) :] = 0.0  # ... or plays
                elif isinstance(event, EndOfUtterance) or (
                        isinstance(event, UtteranceSkipped) and event.barged
                        and event.reason == "too_short"):
                    # The call commits the turn (what was forwarded) and asks for an answer.
                    run.echo_turns += not caller_turn
                    if forwarded:
                        answer_at, forwarded = i + 1 + int(round(ANSWER_AFTER_S / TICK)), False
            k += 1
    return run


# A caller who interrupts the bot three times (issue 9's three-interruption call): each
# answer's echo meets a canceller the barge-in before it perturbed, and each bot turn's
# frames leave at their own phase of the 20 ms grid (a response's audio comes when it
# comes): placed on the nearest slot, the reference moved against the echo by up to
# +-10 ms from one answer to the next and the answers' echo barged in, end to end too
# (docs/turn-taking.md, README (20)); after_caller.py has one interruption, on the grid.
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
