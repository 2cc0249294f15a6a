"""TurnPolicy on synthetic frames, with a stand-in classifier: loud means speech."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import pytest
from test_vad import ScriptedClassifier

from mediasrv.audio import pcm16_to_ulaw
from mediasrv.errors import ConfigError
from mediasrv.policy.echo import EchoGuard
from mediasrv.policy.endturn import EndTurnConfig, TurnEnd
from mediasrv.policy.turns import (
    BargeIn,
    EndOfUtterance,
    TurnConfig,
    TurnEvent,
    TurnPolicy,
    UtteranceSkipped,
    UtteranceStarted,
)

TICK = 0.020
SILENT = b"\xff" * 160
LOUD = pcm16_to_ulaw(
    (3000 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype(np.int16)
)  # about -23 dBFS


class LoudIsSpeech:
    """Say speech whenever the level stage found the frame active."""

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        return 1.0 if active else 0.0

    def reset(self) -> None:
        pass


def make_policy(**settings: int) -> TurnPolicy:
    return TurnPolicy(TurnConfig(**settings), classifier=LoudIsSpeech())


def run(
    policy: TurnPolicy,
    frames: list[bytes],
    now: float = 0.0,
    *,
    ai_playing: bool = False,
    closing: bool = False,
) -> tuple[list[tuple[int, TurnEvent]], float]:
    """Feed frames; return (frame index, event) pairs and the clock after them."""
    events = []
    for i, frame in enumerate(frames):
        now += TICK
        step = policy.feed(frame, now, ai_playing=ai_playing, closing=closing)
        events += [(i, e) for e in step.events]
    return events, now


def test_end_of_utterance_fires_once_after_trailing_silence() -> None:
    policy = make_policy()
    events, _ = run(policy, [LOUD] * 50 + [SILENT] * 100)
    ends = [(i, e) for i, e in events if isinstance(e, EndOfUtterance)]
    assert len(ends) == 1
    index, end = ends[0]
    assert index == 50 + 500 // 20 - 1  # the 25th silent frame completes 500 ms
    assert end.duration_s == pytest.approx(1.0)
    assert not end.echo_blocked


def test_caller_frames_scattered_through_a_long_echo_utterance_are_not_a_barge_in() -> None:
    # The VAD stays in speech through the bot's echo; a frame here and there the guard
    # could not call echo must not add up to a barge-in over seconds.
    def scattered(policy: TurnPolicy, runs: list[int]) -> list[BargeIn]:
        verdicts = iter([v for n in runs for v in [True] * n + [False] * 16])
        policy.echo.in_window = lambda now, ai_playing=False: True  # type: ignore[method-assign]
        policy.echo.judge = lambda *a, **k: next(verdicts)  # type: ignore[method-assign]
        events, _ = run(policy, [LOUD] * (sum(runs) + 16 * len(runs)), ai_playing=True)
        return [e for _, e in events if isinstance(e, BargeIn)]

    assert scattered(make_policy(), [2, 2, 2, 2]) == []  # 160 ms of caller, 320 ms apart
    assert [b.speech_ms for b in scattered(make_policy(), [2, 3])] == []  # still apart
    barge = scattered(make_policy(barge_in_min_ms=100), [5])
    assert [b.speech_ms for b in barge] == [100]


def test_speech_started_once_when_vad_confirms() -> None:
    events, _ = run(make_policy(), [LOUD] * 20)
    assert [(i, type(e)) for i, e in events] == [(4, UtteranceStarted)]  # 100 ms onset


def test_short_utterance_is_skipped_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv.policy.turns")
    events, _ = run(make_policy(), [LOUD] * 10 + [SILENT] * 30)
    skipped = [e for _, e in events if isinstance(e, UtteranceSkipped)]
    assert [(s.reason, s.duration_s) for s in skipped] == [("too_short", pytest.approx(0.2))]
    assert not any(isinstance(e, EndOfUtterance) for _, e in events)
    assert "END OF UTTERANCE: 0.20s echo_blocked=False" in caplog.text
    assert "[UTT] SKIPPED: too_short" in caplog.text


def test_utterance_is_skipped_when_closing() -> None:
    events, _ = run(make_policy(), [LOUD] * 50 + [SILENT] * 30, closing=True)
    assert [e.reason for _, e in events if isinstance(e, UtteranceSkipped)] == ["closing"]


def test_barge_in_needs_barge_in_min_ms_of_speech() -> None:
    need = TurnConfig().barge_in_min_ms
    events, _ = run(make_policy(), [LOUD] * (need // 20 - 1) + [SILENT] * 30, ai_playing=True)
    assert not any(isinstance(e, BargeIn) for _, e in events)
    events, _ = run(make_policy(), [LOUD] * 20, ai_playing=True)
    barge = [(i, e) for i, e in events if isinstance(e, BargeIn)]
    assert len(barge) == 1
    assert barge[0][0] == need // 20 - 1
    assert barge[0][1].speech_ms == need


RISING = [0.02, 0.02, 0.45, 0.45, 0.45] + [0.9] * 15  # a slow onset: speech from frame 5


def test_a_slow_onset_barges_in_sooner_by_its_lead() -> None:
    # 60 ms of the rise under the threshold count: 0.5 is reached at frame 5, and 100 ms
    # of caller speech at frame 6 instead of 9; the VAD confirms the utterance with it.
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier(RISING))
    events, _ = run(policy, [LOUD] * 20, ai_playing=True)
    assert [(i, type(e)) for i, e in events] == [(6, UtteranceStarted), (6, BargeIn)]
    assert [e.speech_ms for _, e in events if isinstance(e, BargeIn)] == [100]


def judged_as(policy: TurnPolicy, evidence: str, weak: bool, *, moved: bool = False,
              caller_frames: range | set[int] = range(1000)) -> None:
    """Put the whole call in the echo window, each frame judged the caller (the frames in
    `caller_frames`, counted from the first) on `evidence`."""
    frames = iter(range(1000))

    def judge(*args: object, **kwargs: object) -> bool:
        echo = policy.echo
        echo.evidence, echo.weak_evidence, echo.path_unsure = evidence, weak, moved
        return next(frames) in caller_frames

    policy.echo.in_window = lambda now, ai_playing=False: True  # type: ignore[method-assign]
    policy.echo.judge = judge  # type: ignore[method-assign]


@pytest.mark.parametrize("evidence,weak,index", [
    ("level", False, 6),  # the caller's level alone is beyond our echo: the lead counts
    ("residual", True, 9),  # weak evidence: no lead, 100 ms of speech frames
    ("not our echo", False, 9),  # coherence before the echo is learned: no lead
])
def test_the_onset_lead_counts_on_level_evidence_only(evidence: str, weak: bool,
                                                      index: int) -> None:
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier(RISING))
    judged_as(policy, evidence, weak)
    events, _ = run(policy, [LOUD] * 20, ai_playing=True)
    assert [i for i, e in events if isinstance(e, BargeIn)] == [index]


def test_on_weak_evidence_a_path_that_may_have_moved_needs_120_ms() -> None:
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier(RISING))
    judged_as(policy, "residual", True, moved=True)
    events, _ = run(policy, [LOUD] * 20, ai_playing=True)
    assert [e.speech_ms for _, e in events if isinstance(e, BargeIn)] == [120]


@pytest.mark.parametrize("missing,needed_ms", [(1, 100), (2, 120)])
def test_on_weak_evidence_caller_frames_scattered_by_two_frames_need_120_ms(
    missing: int, needed_ms: int
) -> None:
    # Speech from frame 5; frame 7 (and 8) not judged the caller.
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier(RISING))
    judged_as(policy, "residual", True, caller_frames=set(range(20)) - set(range(7, 7 + missing)))
    events, _ = run(policy, [LOUD] * 20, ai_playing=True)
    assert [e.speech_ms for _, e in events if isinstance(e, BargeIn)] == [needed_ms]


@pytest.mark.parametrize("trusted,barges_in", [(False, False), (True, True)])
def test_over_a_trusted_canceller_the_residual_s_classifier_can_hear_the_caller(
    monkeypatch: pytest.MonkeyPatch, trusted: bool, barges_in: bool
) -> None:
    # The VAD's classifier stays under its threshold (0.3) on a quiet caller that the
    # residual's scores 0.9; before the canceller is trusted its residual still holds our
    # echo, and its classifier's score is no evidence.
    monkeypatch.setattr(EchoGuard, "trusted", property(lambda self: trusted))
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier([0.3]),
                        residual_classifier=ScriptedClassifier([0.9]))
    judged_as(policy, "level", False)
    events, _ = run(policy, [LOUD] * 20, ai_playing=True)
    assert any(isinstance(e, BargeIn) for _, e in events) is barges_in


@pytest.mark.parametrize("residual,barges_in", [(0.05, False), (0.3, True)])
def test_on_weak_evidence_what_the_canceller_leaves_must_be_speech_too(
    residual: float, barges_in: bool
) -> None:
    # The VAD's classifier hears our echo with the sound (0.9 here); the residual's tells
    # hold music (0.00-0.06) from a caller.
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier([0.9]),
                        residual_classifier=ScriptedClassifier([residual]))
    judged_as(policy, "residual", True)
    events, _ = run(policy, [LOUD] * 30, ai_playing=True)
    assert any(isinstance(e, BargeIn) for _, e in events) is barges_in


BREATH = pcm16_to_ulaw((1500 * np.random.default_rng(5).standard_normal(160)).astype(np.int16))


@pytest.mark.parametrize("frames,index", [
    ([BREATH] * 30, None),  # a breath (with our echo's leftover) scores as speech: not voiced
    ([BREATH] * 4 + [LOUD] * 10, 4),  # held until the word's first voiced frame, then counted
])
def test_on_weak_evidence_what_the_canceller_leaves_must_be_voiced(
    frames: list[bytes], index: int | None
) -> None:
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier([0.9]),
                        residual_classifier=ScriptedClassifier([0.9]))
    judged_as(policy, "residual", True)
    events, _ = run(policy, frames, ai_playing=True)
    assert [i for i, e in events if isinstance(e, BargeIn)] == ([] if index is None else [index])


def test_frames_held_for_the_residual_still_keep_the_caller_s_turn_open() -> None:
    # The end-of-turn policy hears them as the caller's speech: heard as silence, a turn
    # ended mid-sentence and the rest barged in on its answer (tests/test_e2e_lines.py:
    # three interruptions on a bad line made four clears).
    policy = TurnPolicy(TurnConfig(end_turn=EndTurnConfig()),
                        classifier=ScriptedClassifier([0.9]),
                        residual_classifier=ScriptedClassifier([0.05]))
    judged_as(policy, "residual", True)
    assert policy.end_turn is not None
    heard: list[bool] = []
    feed = policy.end_turn.feed

    def spy(frame: npt.NDArray[np.float32], speech: bool, now: float) -> TurnEnd | None:
        heard.append(speech)
        return feed(frame, speech, now)

    policy.end_turn.feed = spy  # type: ignore[method-assign]
    run(policy, [LOUD] * 10, ai_playing=True)
    assert heard == [True] * 10


@pytest.mark.parametrize("probs,index", [
    ([0.6], None),  # hold music mixed with our echo, on coherence alone: never sure
    ([0.6] * 8 + [0.85], 8),  # one frame at 0.8 makes the caller sure, with what came before
])
def test_on_coherence_alone_one_frame_of_the_caller_must_score_0_8(
    probs: list[float], index: int | None
) -> None:
    policy = TurnPolicy(TurnConfig(), classifier=ScriptedClassifier(probs))
    judged_as(policy, "not our echo", False)
    events, _ = run(policy, [LOUD] * 30, ai_playing=True)
    assert [i for i, e in events if isinstance(e, BargeIn)] == ([] if index is None else [index])


def test_no_barge_in_when_ai_not_playing() -> None:
    events, _ = run(make_policy(), [LOUD] * 20, ai_playing=False)
    assert not any(isinstance(e, BargeIn) for _, e in events)


def test_gap_counts_as_silence() -> None:
    policy = make_policy()
    _, now = run(policy, [LOUD] * 50)
    assert policy.feed_gap(400, now + 0.4).events == ()
    step = policy.feed_gap(100, now + 0.5)
    assert [type(e) for e in step.events] == [EndOfUtterance]
    assert step.forward == b""


def test_every_frame_is_forwarded_outside_echo_window() -> None:
    policy = make_policy()
    now = 0.0
    for frame in [SILENT, LOUD, LOUD, SILENT]:
        now += TICK
        assert policy.feed(frame, now, ai_playing=False, closing=False).forward == frame


@pytest.mark.parametrize(
    "setting,value",
    [("prefix_ms", 4000), ("echo_path_ms", 10), ("vad_onset_ms", 0), ("prefix_max_ms", 400)],
)
def test_config_error_names_the_setting(setting: str, value: int) -> None:
    with pytest.raises(ConfigError, match=setting):
        TurnConfig(**{setting: value})


def numbered(n: int) -> list[bytes]:
    """Return `n` loud frames, each different, so a forwarded frame says which it was."""
    t = np.arange(160) / 8000
    return [pcm16_to_ulaw((3000 * np.sin(2 * np.pi * (300 + 5 * i) * t)).astype(np.int16))
            for i in range(n)]


def held_then_released(policy: TurnPolicy, verdicts: list[bool]) -> tuple[list[bytes], bytes]:
    """Feed loud frames inside the echo window, the guard saying "can be the caller" as
    `verdicts` says; return the frames and what went out at the first release."""
    frames = numbered(len(verdicts))
    said = iter(verdicts)
    policy.echo.in_window = lambda now, ai_playing=False: True  # type: ignore[method-assign]
    policy.echo.judge = lambda *a, **k: next(said)  # type: ignore[method-assign]
    now = 0.0
    for frame in frames:
        now += TICK
        forward = policy.feed(frame, now, ai_playing=True, closing=False).forward
        if forward:
            return frames, forward
    raise AssertionError("nothing released")


def test_held_audio_reaches_prefix_ms_before_the_first_caller_frame_not_the_recognition() -> None:
    # Echo for 1 s, one frame that can be the caller (frame 50), echo again for 200 ms,
    # then the caller for good: recognised at frame 64 (100 ms of it), 280 ms after 50.
    verdicts = [False] * 50 + [True] + [False] * 10 + [True] * 5
    frames, forward = held_then_released(make_policy(prefix_ms=500), verdicts)
    first = 50 - 500 // 20 + 1  # 500 ms up to and with the first caller frame
    assert forward == b"".join(frames[first:65])  # (a ring of 500 ms: frames 40-64)


def test_held_audio_reaching_back_to_the_first_caller_frame_is_capped() -> None:
    verdicts = [False] * 50 + [True] + [False] * 10 + [True] * 5
    frames, forward = held_then_released(make_policy(prefix_ms=500, prefix_max_ms=600),
                                         verdicts)
    assert forward == b"".join(frames[65 - 600 // 20 : 65])



def test_with_no_prefix_only_the_frames_after_the_first_caller_frame_go_out() -> None:
    verdicts = [False] * 50 + [True] + [False] * 10 + [True] * 5
    frames, forward = held_then_released(make_policy(prefix_ms=0), verdicts)
    assert forward == b"".join(frames[51:65])
