"""TurnPolicy with the end-of-turn model's policy (TURN_MODEL=smart-turn), pure: the test
plays the shell, answering each check itself, and moves `now`.

The classifier is test_turns' stand-in (loud means speech); the model is never run here:
its answers are the test's.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_turns import LOUD, SILENT, TICK, LoudIsSpeech

from mediasrv.audio import pcm16_to_ulaw
from mediasrv.policy.endturn import CheckRequest, EndTurnConfig
from mediasrv.policy.turns import (
    EndOfUtterance,
    TurnConfig,
    TurnEvent,
    TurnPolicy,
    TurnStep,
    UtteranceSkipped,
)
from mediasrv.policy.vad import VadState

END_TURN = EndTurnConfig(check_silence_ms=200, max_silence_ms=1500, threshold=0.9,
                         fallback_silence_ms=500)
# The bot's own voice coming back 10 dB down: over the 6 dB the echo guard allows.
ECHO = pcm16_to_ulaw((948 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype(np.int16))


class Shell:
    """Feeds frames 20 ms apart; keeps the checks asked and the turn events."""

    def __init__(self, **turn: object) -> None:
        self.policy = TurnPolicy(TurnConfig(end_turn=END_TURN, echo_cancel=False, **turn),
                                 classifier=LoudIsSpeech())
        self.now = 0.0
        self.frames = 0
        self.checks: list[CheckRequest] = []
        self.events: list[tuple[int, TurnEvent]] = []  # (frame index, event)

    def feed(self, frame: bytes, n: int, *, ai_playing: bool = False,
             closing: bool = False) -> None:
        for _ in range(n):
            self.now += TICK
            if ai_playing:
                self.policy.on_sent(LOUD, self.now)  # what we play, the echo reference
            self.take(self.policy.feed(frame, self.now, ai_playing=ai_playing, closing=closing))
            self.frames += 1

    def answer(self, probability: float, *, closing: bool = False) -> None:
        """Answer the last check asked."""
        self.take(self.policy.on_check_result(self.checks[-1].seq, probability, self.now,
                                              closing=closing))

    def take(self, step: TurnStep) -> None:
        self.events += [(self.frames, e) for e in step.events]
        if step.check is not None:
            self.checks.append(step.check)

    def ends(self) -> list[tuple[int, TurnEvent]]:
        return [(i, e) for i, e in self.events
                if isinstance(e, EndOfUtterance | UtteranceSkipped)]


def test_a_check_is_asked_after_the_short_silence_not_before() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 9)
    assert shell.checks == []
    shell.feed(SILENT, 1)
    (check,) = shell.checks
    assert check.silence_ms == 200


def test_a_turn_the_model_calls_finished_ends_at_once_and_only_once() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 10)
    shell.answer(0.95)
    [(_, end)] = shell.ends()
    assert isinstance(end, EndOfUtterance) and end.duration_s == pytest.approx(1.0)
    assert shell.policy.vad.state is VadState.SILENCE
    shell.feed(SILENT, 100)  # past the VAD's own end silence: no second end
    assert len(shell.ends()) == 1


def test_a_turn_the_model_calls_unfinished_ends_at_the_cap() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 10)
    shell.answer(0.2)
    shell.feed(SILENT, 100)
    [(index, end)] = shell.ends()
    assert isinstance(end, EndOfUtterance)
    assert index == 50 + 1500 // 20 - 1  # the 75th silent frame completes 1,500 ms


def test_speech_after_a_pause_the_model_called_unfinished_is_the_same_turn() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 40)  # 800 ms: END_SILENCE_MS alone would have ended it
    first = shell.checks[-1]
    shell.answer(0.1)
    shell.feed(LOUD, 40)
    shell.feed(SILENT, 10)
    assert shell.ends() == []
    second = shell.checks[-1]
    assert second.seq != first.seq
    shell.answer(0.95)
    [(_, end)] = shell.ends()
    assert isinstance(end, EndOfUtterance) and end.duration_s == pytest.approx(2.6)


def test_a_failed_check_ends_the_turn_at_the_fixed_silence() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 10)
    shell.take(shell.policy.on_check_failed(shell.checks[-1].seq, shell.now))
    assert shell.ends() == []
    shell.feed(SILENT, 100)
    [(index, end)] = shell.ends()
    assert isinstance(end, EndOfUtterance)
    assert index == 50 + 500 // 20 - 1  # END_SILENCE_MS, as with TURN_MODEL=off


def test_a_turn_the_model_ends_is_still_skipped_when_too_short() -> None:
    shell = Shell()
    shell.feed(LOUD, 12)  # 240 ms < MIN_UTTERANCE_MS
    shell.feed(SILENT, 10)
    shell.answer(0.99)
    [(_, skipped)] = shell.ends()
    assert isinstance(skipped, UtteranceSkipped) and skipped.reason == "too_short"


def test_a_turn_the_model_ends_is_skipped_while_the_call_closes() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 10)
    shell.answer(0.99, closing=True)
    [(_, skipped)] = shell.ends()
    assert isinstance(skipped, UtteranceSkipped) and skipped.reason == "closing"


def test_our_own_echo_never_asks_the_model() -> None:
    shell = Shell()
    shell.feed(ECHO, 50, ai_playing=True)
    shell.feed(SILENT, 100, ai_playing=True)
    assert shell.checks == []
    [(_, skipped)] = shell.ends()  # the VAD still ends what it heard: as echo
    assert isinstance(skipped, UtteranceSkipped) and skipped.reason == "echo"


def test_missing_frames_count_as_silence_for_the_model() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.take(shell.policy.feed_gap(240, shell.now + 0.24))
    assert [c.silence_ms for c in shell.checks] == [240]


def test_an_answer_after_the_cap_ended_the_turn_changes_nothing() -> None:
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 80)  # the check is still out when the cap ends the turn
    assert len(shell.ends()) == 1
    shell.answer(0.99)
    assert len(shell.ends()) == 1


def test_a_turn_the_model_ends_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv.policy.turns")
    shell = Shell()
    shell.feed(LOUD, 50)
    shell.feed(SILENT, 10)
    shell.answer(0.95)
    assert "[TURN] complete after 200 ms of silence (p=0.95)" in caplog.text
    assert "END OF UTTERANCE: 1.00s" in caplog.text


def test_without_the_model_no_check_is_asked_and_the_fixed_silence_ends_the_turn() -> None:
    policy = TurnPolicy(TurnConfig(), classifier=LoudIsSpeech())
    now, steps = 0.0, []
    for frame in [LOUD] * 50 + [SILENT] * 30:
        now += TICK
        steps.append(policy.feed(frame, now, ai_playing=False, closing=False))
    assert all(step.check is None for step in steps)
    assert [i for i, s in enumerate(steps) if s.events and isinstance(s.events[-1], EndOfUtterance)
            ] == [50 + 500 // 20 - 1]
