"""The answer after a caller's turn, frame by frame: its echo alone, with nobody on the line.

Layer: testing. No server, no threads, like `mediasrv.testing.frames`. One interruption:
a caller talks over the greeting (or just after it), the bot stops (the clear drops what
Twilio still had to play), their turn ends, and `ANSWER_AFTER_S` later a ~9.5 s answer
plays while only its echo comes back (`answer_after_caller`). Barge-ins on that echo and
turns of it answered must both be 0; scripts/bargein_eval.py's `after-caller` section
runs the conditions below and prints them. `mediasrv.testing.repeated` is the same call
with three interruptions, each bot turn at its own phase of the tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import BAD_LINE, HANDSET, EchoPath, Line, LineModel
from mediasrv.policy.turns import BargeIn, EndOfUtterance, UtteranceStarted
from mediasrv.testing.frames import FRAME, TICK, Floats, MakePolicy, Net, capture, send
from mediasrv.testing.repeated import ANSWER_AFTER_S

# The answer after a caller's turn, with nobody on the line: its echo alone must not
# barge in (issue 9; seen end to end 0.6-2.4 s into the answer, after a quiet caller on
# the bad line, and once in CI after a caller who spoke after the greeting).
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

