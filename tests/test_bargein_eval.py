"""scripts/bargein_eval.py's repeated-interruption section (mediasrv/testing/repeated.py)."""

from __future__ import annotations

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import BAD_LINE, HANDSET, Line
from mediasrv.policy.turns import BargeIn, EndOfUtterance, TurnConfig, TurnPolicy, TurnStep
from mediasrv.testing.callers import caller_clips, caller_runs, speech_frames
from mediasrv.testing.frames import FRAME, Net, prompt
from mediasrv.testing.repeated import (
    REPEATED_CALLS,
    REPEATED_LINES,
    REPEATED_PHASES_MS,
    Interruption,
    fresh_answer,
    repeated_call,
)

QUIET_LINE = Line(echo=None, hiss_dbov=None)


class BargesInAt(TurnPolicy):
    """Hears nothing; says "barge in" on the inbound frames fed at these counts."""

    def __init__(self, *at: int) -> None:
        super().__init__(TurnConfig())
        self.at, self.fed, self.sent_at = set(at), 0, list[float]()

    def on_sent(self, frame_ulaw: bytes, now: float) -> None:
        self.sent_at.append(now)

    def feed(self, frame_ulaw: bytes, now: float, *, ai_playing: bool,
             closing: bool) -> TurnStep:
        self.fed += 1
        return TurnStep(b"", (BargeIn(now, 100),) if self.fed - 1 in self.at else ())


def one_caller(offset_s: float) -> list[Interruption]:
    clip = np.full(8000, 0.1)  # 1 s, speech from its first frame to its last
    return [Interruption(clip, (0, 49), offset_s)]


class ForwardsThenEnds(BargesInAt):
    """Forwards `heard` on the frame fed at `at`, and ends the turn on the next."""

    def __init__(self, heard: bytes, at: int) -> None:
        super().__init__()
        self.heard, self.end, self.frames = heard, at, list[bytes]()

    def on_sent(self, frame_ulaw: bytes, now: float) -> None:
        self.frames.append(frame_ulaw)

    def feed(self, frame_ulaw: bytes, now: float, *, ai_playing: bool,
             closing: bool) -> TurnStep:
        self.fed += 1
        if self.fed - 1 == self.end:
            return TurnStep(self.heard)
        if self.fed - 1 == self.end + 1:
            return TurnStep(b"", (EndOfUtterance(now, 1.0, False),))
        return TurnStep(b"")


def test_the_answer_plays_back_what_was_forwarded_of_the_turn() -> None:
    made: list[ForwardsThenEnds] = []
    heard = bytes(range(1, 255)) * 20

    def make() -> TurnPolicy:
        made.append(ForwardsThenEnds(heard, 300))  # 6 s: after the greeting
        return made[-1]

    run = repeated_call(make, QUIET_LINE, Net(), one_caller(7.0))
    greeting = len(prompt("greeting")) // FRAME
    sent = b"".join(made[0].frames[greeting:])
    assert run.answers == 1
    assert sent.startswith(prompt("you_said")[:FRAME * 30])
    assert heard in sent


def test_a_barge_in_before_the_caller_speaks_is_false_and_placed_in_its_turn() -> None:
    # Greeting from Twilio sample 160 + 240 (30 ms down); the caller from 2 s after that.
    run = repeated_call(lambda: BargesInAt(60), QUIET_LINE, Net(30.0, 10.0), one_caller(2.0))
    assert [(b.answer, round(b.into_s, 2)) for b in run.false] == [(0, 1.15)]
    assert run.heard_ms == [None]


def test_a_barge_in_while_the_caller_speaks_is_theirs_with_its_latency() -> None:
    onset = (400 + 16000) // FRAME  # the capture frame of the caller's first sample
    run = repeated_call(lambda: BargesInAt(onset + 5), QUIET_LINE, Net(30.0, 10.0),
                        one_caller(2.0))
    assert run.false == []
    assert run.heard_ms == [(5 + 1) * 20.0 + 20.0]  # its frame's end, then the next tick


def test_each_bot_turn_leaves_at_its_own_phase_of_the_tick() -> None:
    made: list[BargesInAt] = []

    def make() -> TurnPolicy:
        made.append(BargesInAt())
        return made[-1]

    repeated_call(make, QUIET_LINE, Net(), [], phases_ms=(7.0,))
    phases = {round((t * 1000) % 20, 3) for t in made[0].sent_at}
    assert phases == {7.0}


def test_three_callers_on_the_handset_are_each_heard_and_answered() -> None:
    callers = caller_clips()
    seq = [Interruption(callers[f] * 10 ** (cat.NOMINAL_GAIN_DB / 20), speech_frames(callers[f]),
                        at)
           for f, at in REPEATED_CALLS[0]]
    run = repeated_call(lambda: TurnPolicy(TurnConfig()), cat.line_of(HANDSET),
                        Net(30.0, 10.0), seq, phases_ms=REPEATED_PHASES_MS[0])
    assert None not in run.heard_ms
    assert (run.answers, run.false, run.echo_turns) == (3, [], 0)


def test_an_answer_from_a_fresh_canceller_on_the_bad_line_does_not_barge_in() -> None:
    # The call's first filter re-measured on the frames it learned from reads high; taken
    # at its word, this answer's echo (the caller's 0 dB words played back, 30/10 ms
    # transit, the bad line of seed 0) barged in 1.66 s in (bargein_eval --only repeated).
    run = fresh_answer(lambda: TurnPolicy(TurnConfig()), cat.ONLY_PERSON, 3.2, 0.0,
                       cat.line_of(BAD_LINE, seed=0), Net(30.0, 10.0))
    assert run.barge_ins == []


def test_a_caller_over_a_pause_of_the_answer_is_heard_without_the_filter_reset() -> None:
    # -10 dB on the bad line, the third caller 5.2 s into the second answer, as its echo
    # pauses: the delay search, on the caller against a silent reference at the echo's
    # delay, found a peak 68 ms away and reset the trusted filter; heard 1.9 s late.
    callers = caller_clips()
    seq = [Interruption(callers[f] * 10 ** (-10.0 / 20), speech_frames(callers[f]), at)
           for f, at in REPEATED_CALLS[2]]
    run = repeated_call(lambda: TurnPolicy(TurnConfig()), REPEATED_LINES["bad line"],
                        Net(30.0, 10.0), seq, phases_ms=REPEATED_PHASES_MS[0])
    assert run.heard_ms[2] is not None and run.heard_ms[2] <= 500
    assert (run.false, run.echo_turns) == ([], 0)


def heard_after_ms(file: str, gain_db: float, offset_s: float) -> float:
    """Return ms from a tuned caller's first speech frame to their barge-in, the caller
    `offset_s` into the long answer on the bad line, as bargein_eval's callers table counts."""
    pcm = caller_clips()[file]
    tally = caller_runs(lambda: TurnPolicy(TurnConfig()), prompt("long_answer"),
                        pcm * 10 ** (gain_db / 20), [offset_s], cat.line_of(BAD_LINE), Net(),
                        speech_frames(pcm))
    assert (tally.misses, tally.early) == (0, 0)
    return tally.ms[0]


def test_a_quiet_caller_from_the_bots_first_words_on_the_bad_line_is_heard_within_the_cold_start(
) -> None:
    # -20 dB, vm-intro 0.3 s into the long answer (onset 0.4 s): the canceller never has
    # echo alone, so it is not trusted for 1.5 s; what its young filter leaves is not ours
    # (residual coherence 0.1-0.3) but 3-6 dB under its echo estimate wherever the bot is
    # loud, and the cold start asked for it to be as loud. Main (927af44): heard 1,540 ms
    # after the first word, at the bot's pause; half the estimate's power: 700 ms.
    assert heard_after_ms(cat.VM_INTRO, -20.0, 0.3) <= 800


def test_a_quiet_caller_meets_a_first_filter_measured_on_the_frames_after_it() -> None:
    # -20 dB, front-center 2.15 s into the long answer on the bad line. The canceller is
    # trusted, but the ERLE known of its first filter was 18.2 dB: each frame measured with
    # the filter of its time, the filter re-measured on frames it learned from 4 dB down.
    # Measured as it is on the 10 frames after it (not learned from, no discount): 20.3 dB,
    # so the VAD's mask (estimate / ERLE + 10 dB) sits 2 dB lower and the caller's fifth
    # frame (-40 dBFS under a -30 dBFS estimate) is over it. At 176ca58: 1,040 ms; now 200.
    assert heard_after_ms(cat.FRONT_CENTER, -20.0, 2.15) <= 400


def test_a_caller_under_our_echo_before_the_filter_is_learned_is_off_our_comb() -> None:
    # -10 dB, vm-intro 0.3 s into the long answer on the bad line: the bulk delay is found
    # (sharply) before the filter has learned anything, and the inbound's coherence with
    # what we sent reads our echo (0.3-0.5). Power between the bot's harmonics is not ours
    # (mediasrv/policy/comb.py). Main (063ea0d): 760 ms; off the comb: 400.
    assert heard_after_ms(cat.VM_INTRO, -10.0, 0.3) <= 500


def test_the_quietest_caller_from_the_bots_first_words_is_heard_off_our_comb() -> None:
    # -20 dB, weasels 0.3 s into the long answer on the bad line: the callers table's
    # slowest run at main (063ea0d: 1,060 ms); off the comb: 640.
    assert heard_after_ms(cat.WEASELS, -20.0, 0.3) <= 800
