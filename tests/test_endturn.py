"""End-of-turn policy over frames, with a fake model (policy/endturn.py). Pure: `now` moves."""

from __future__ import annotations

import numpy as np
import pytest

from mediasrv.errors import ConfigError
from mediasrv.policy.endturn import (
    CheckRequest,
    EndTurnConfig,
    EndTurnPolicy,
    Floats,
    InlineTurnEnder,
    Phase,
    TurnEnd,
)

TICK = 0.020
CFG = EndTurnConfig(check_silence_ms=200, max_silence_ms=1600, threshold=0.5, pre_speech_ms=100)


class FakeModel:
    """Answers from a script, one value per check; remembers what it was asked."""

    def __init__(self, *answers: float) -> None:
        self.answers = list(answers)
        self.asked: list[Floats] = []

    def probability(self, audio_8k: Floats) -> float:
        self.asked.append(audio_8k)
        return self.answers.pop(0)


class Driver:
    """Feeds frames to a policy, moving `now` by 20 ms a frame; keeps every event."""

    def __init__(self, policy: EndTurnPolicy) -> None:
        self.policy = policy
        self.now = 0.0
        self.events: list[CheckRequest | TurnEnd] = []
        self.value = 0.0

    def frames(self, n: int, speech: bool) -> None:
        for _ in range(n):
            self.now += TICK
            self.value += 1.0  # every frame distinct, so the audio's order can be checked
            event = self.policy.feed(np.full(160, self.value, np.float32), speech, self.now)
            if event is not None:
                self.events.append(event)

    def requests(self) -> list[CheckRequest]:
        return [e for e in self.events if isinstance(e, CheckRequest)]

    def ends(self) -> list[TurnEnd]:
        return [e for e in self.events if isinstance(e, TurnEnd)]


def spoken(frames: int = 50, silence: int = 10) -> Driver:
    d = Driver(EndTurnPolicy(CFG))
    d.frames(frames, speech=True)
    d.frames(silence, speech=False)
    return d


def test_no_check_while_the_caller_speaks() -> None:
    d = Driver(EndTurnPolicy(CFG))
    d.frames(200, speech=True)
    assert d.events == []


def test_check_is_asked_after_the_short_silence() -> None:
    d = spoken(silence=9)
    assert d.events == []
    d.frames(1, speech=False)
    (request,) = d.requests()
    assert request.silence_ms == 200
    assert d.policy.phase is Phase.CHECKING


def test_complete_answer_ends_the_turn_at_once() -> None:
    d = spoken()
    end = d.policy.on_result(d.requests()[0].seq, 0.9, d.now)
    assert end is not None and end.reason == "complete" and end.probability == 0.9
    assert d.policy.phase is Phase.IDLE


def test_incomplete_answer_waits_for_the_silence_cap() -> None:
    d = spoken()
    assert d.policy.on_result(d.requests()[0].seq, 0.2, d.now) is None
    d.frames(69, speech=False)  # 1580 ms of silence
    assert d.ends() == []
    d.frames(1, speech=False)
    (end,) = d.ends()
    assert end.reason == "cap" and end.silence_ms == 1600 and end.probability == 0.2


def test_the_same_audio_is_checked_only_once() -> None:
    d = spoken()
    d.policy.on_result(d.requests()[0].seq, 0.2, d.now)
    d.frames(60, speech=False)
    assert len(d.requests()) == 1


def test_speech_after_an_incomplete_answer_gets_a_new_check_at_the_next_pause() -> None:
    d = spoken()
    d.policy.on_result(d.requests()[0].seq, 0.2, d.now)
    d.frames(30, speech=False)
    d.frames(20, speech=True)
    d.frames(10, speech=False)
    first, second = d.requests()
    assert second.seq != first.seq
    assert second.audio.shape[0] > first.audio.shape[0]  # the whole utterance so far
    end = d.policy.on_result(second.seq, 0.8, d.now)
    assert end is not None and end.reason == "complete"


def test_answer_for_audio_the_caller_has_since_added_to_is_ignored() -> None:
    d = spoken()
    stale = d.requests()[0].seq
    d.frames(1, speech=True)
    assert d.policy.on_result(stale, 0.99, d.now) is None
    assert d.policy.phase is Phase.SPEAKING


def test_answer_arriving_after_the_cap_ended_the_turn_is_ignored() -> None:
    d = spoken()
    seq = d.requests()[0].seq
    d.frames(70, speech=False)
    assert [e.reason for e in d.ends()] == ["cap"]
    assert d.policy.on_result(seq, 0.99, d.now) is None


def test_a_click_shorter_than_min_speech_is_dropped_without_a_check() -> None:
    d = spoken(frames=4, silence=100)  # 80 ms of "speech"
    assert d.events == []
    assert d.policy.phase is Phase.IDLE


def test_check_audio_holds_the_lead_in_and_the_utterance_so_far_in_order() -> None:
    d = Driver(EndTurnPolicy(CFG))
    d.frames(20, speech=False)
    d.frames(50, speech=True)
    d.frames(10, speech=False)
    audio = d.requests()[0].audio
    assert audio.shape[0] == (5 + 50 + 10) * 160  # 100 ms lead-in, speech, the pause
    assert audio[0] == 16.0 and audio[-1] == 80.0  # frames 16 .. 80, oldest first


def test_check_audio_keeps_only_the_last_8_s() -> None:
    d = spoken(frames=600)
    audio = d.requests()[0].audio
    assert audio.shape[0] == 8000 * 8
    assert audio[-1] == 610.0


def test_frames_are_copied_not_kept_by_reference() -> None:
    policy = EndTurnPolicy(CFG)
    buf = np.ones(160, np.float32)
    now = 0.0
    events = []
    for speech in [True] * 10 + [False] * 10:
        now += TICK
        events.append(policy.feed(buf, speech, now))
        buf[:] = 7.0  # the caller reuses its buffer
    request = next(e for e in events if isinstance(e, CheckRequest))
    assert request.audio[0] == 1.0


def test_a_gap_of_missing_frames_counts_as_silence() -> None:
    d = spoken(silence=0)
    event = d.policy.feed_gap(240, d.now)
    assert isinstance(event, CheckRequest)
    assert event.audio.shape[0] == (50 + 12) * 160  # the utterance and the gap
    end = d.policy.feed_gap(2000, d.now)
    assert isinstance(end, TurnEnd) and end.reason == "cap"


def test_a_gap_while_idle_does_nothing() -> None:
    assert EndTurnPolicy(CFG).feed_gap(5000, 0.0) is None


def test_a_new_turn_after_an_end_starts_from_empty_audio() -> None:
    d = spoken()
    d.policy.on_result(d.requests()[0].seq, 0.9, d.now)
    d.frames(3, speech=False)
    d.frames(20, speech=True)
    d.frames(10, speech=False)
    audio = d.requests()[1].audio
    assert audio.shape[0] == (3 + 20 + 10) * 160
    assert audio[0] == 61.0  # the first frame after the end


def test_a_failed_check_ends_the_turn_at_the_fallback_silence() -> None:
    d = Driver(EndTurnPolicy(EndTurnConfig(fallback_silence_ms=500)))
    d.frames(50, speech=True)
    d.frames(10, speech=False)
    assert d.policy.on_failure(d.requests()[0].seq, d.now) is None
    d.frames(14, speech=False)
    assert d.ends() == []
    d.frames(1, speech=False)
    (end,) = d.ends()
    assert (end.reason, end.silence_ms, end.probability) == ("fallback", 500, None)


def test_a_check_failing_after_the_fallback_silence_ends_the_turn_at_once() -> None:
    d = Driver(EndTurnPolicy(EndTurnConfig(fallback_silence_ms=300)))
    d.frames(50, speech=True)
    d.frames(20, speech=False)  # 400 ms: the check took long, then failed
    end = d.policy.on_failure(d.requests()[0].seq, d.now)
    assert end is not None and (end.reason, end.silence_ms) == ("fallback", 400)


def test_a_falling_threshold_ends_a_likely_finished_turn_before_the_cap() -> None:
    # 0.9 at the check (200 ms) falling to 0.5 at the cap (1,600 ms): 0.7 is reached
    # halfway, at 900 ms of silence.
    config = EndTurnConfig(threshold=0.9, threshold_at_cap=0.5)
    d = Driver(EndTurnPolicy(config))
    d.frames(50, speech=True)
    d.frames(10, speech=False)
    assert d.policy.on_result(d.requests()[0].seq, 0.7, d.now) is None
    d.frames(34, speech=False)
    assert d.ends() == []
    d.frames(1, speech=False)
    (end,) = d.ends()
    assert (end.reason, end.silence_ms) == ("likely", 900)


def test_below_the_falling_threshold_the_cap_ends_the_turn() -> None:
    d = Driver(EndTurnPolicy(EndTurnConfig(threshold=0.9, threshold_at_cap=0.5)))
    d.frames(50, speech=True)
    d.frames(10, speech=False)
    d.policy.on_result(d.requests()[0].seq, 0.4, d.now)
    d.frames(70, speech=False)
    (end,) = d.ends()
    assert (end.reason, end.silence_ms) == ("cap", 1600)


def test_the_model_hears_a_long_pause_inside_the_utterance_shortened() -> None:
    d = Driver(EndTurnPolicy(EndTurnConfig(pre_speech_ms=0, max_pause_heard_ms=100)))
    d.frames(10, speech=True)  # frames 1-10
    d.frames(30, speech=False)  # 11-40: a 600 ms pause, judged "not finished"
    d.policy.on_result(d.requests()[0].seq, 0.1, d.now)
    d.frames(10, speech=True)  # 41-50
    d.frames(10, speech=False)  # 51-60: the trailing silence, heard whole
    audio = d.requests()[1].audio.reshape(-1, 160)[:, 0]
    assert audio.tolist() == [*range(1, 11), *range(36, 41), *range(41, 61)]


def test_reset_forgets_the_utterance() -> None:
    d = Driver(EndTurnPolicy(CFG))
    d.frames(50, speech=True)
    d.policy.reset()
    d.frames(10, speech=False)
    assert d.events == []
    assert d.policy.phase is Phase.IDLE


def run_inline(model: FakeModel, pattern: list[bool]) -> list[TurnEnd]:
    ender = InlineTurnEnder(model, CFG)
    now, ends = 0.0, []
    for speech in pattern:
        now += TICK
        end = ender.feed(np.zeros(160, np.float32), speech, now)
        if end is not None:
            ends.append(end)
    return ends


def test_inline_shell_ends_a_finished_sentence_at_the_first_check() -> None:
    model = FakeModel(0.7)
    ends = run_inline(model, [True] * 50 + [False] * 20)
    assert [(e.reason, e.silence_ms) for e in ends] == [("complete", 200)]
    assert len(model.asked) == 1


def test_inline_shell_holds_a_turn_through_a_pause_the_model_calls_unfinished() -> None:
    pattern = [True] * 50 + [False] * 60 + [True] * 30 + [False] * 20  # 1.2 s pause
    ends = run_inline(FakeModel(0.1, 0.9), pattern)
    assert [e.reason for e in ends] == ["complete"]
    assert ends[0].at == pytest.approx((50 + 60 + 30 + 10) * TICK)  # the second pause's check


@pytest.mark.parametrize(
    "kwargs",
    [
        {"check_silence_ms": 300, "max_silence_ms": 200},
        {"check_silence_ms": 300, "max_silence_ms": 300},
        {"threshold": 0.5, "threshold_at_cap": 0.7},
        {"min_speech_ms": -20},
        {"max_audio_ms": 9000},
        {"early_min_speech_ms": -20},
    ],
)
def test_config_rejects_values_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        EndTurnConfig(**kwargs)  # type: ignore[arg-type]


EARLY = EndTurnConfig(check_silence_ms=200, max_silence_ms=1600, threshold=0.5,
                      pre_speech_ms=100, early_check_ms=120)


def early_spoken(silence: int) -> Driver:
    d = Driver(EndTurnPolicy(EARLY))
    d.frames(50, speech=True)
    d.frames(silence, speech=False)
    return d


def test_an_early_complete_ends_the_turn_only_at_the_check_silence() -> None:
    d = early_spoken(6)  # 120 ms: the early check is asked
    (early,) = d.requests()
    assert early.silence_ms == 120
    assert d.policy.on_result(early.seq, 0.9, d.now) is None  # complete, but only 120 ms
    d.frames(3, speech=False)
    assert d.ends() == []
    d.frames(1, speech=False)  # 200 ms
    (end,) = d.ends()
    assert (end.reason, end.silence_ms, end.probability) == ("complete", 200, 0.9)
    assert len(d.requests()) == 1  # no second check: the early one said it


def test_an_early_not_complete_leaves_the_check_at_the_check_silence_to_decide() -> None:
    d = early_spoken(6)
    (early,) = d.requests()
    assert d.policy.on_result(early.seq, 0.2, d.now) is None
    d.frames(4, speech=False)
    _, check = d.requests()
    assert check.silence_ms == 200
    end = d.policy.on_result(check.seq, 0.8, d.now)
    assert end is not None and end.reason == "complete"


def test_an_early_complete_answered_after_the_check_silence_ends_the_turn_at_once() -> None:
    d = early_spoken(10)  # the early check is still out at 200 ms: the second one is asked
    early, check = d.requests()
    end = d.policy.on_result(early.seq, 0.9, d.now)
    assert end is not None and end.reason == "complete"
    assert d.policy.on_result(check.seq, 0.9, d.now) is None  # stale: the turn has ended


def test_speech_after_an_early_complete_keeps_the_turn_open() -> None:
    d = early_spoken(6)
    (early,) = d.requests()
    d.policy.on_result(early.seq, 0.9, d.now)
    d.frames(1, speech=True)  # the caller goes on before 200 ms of silence
    d.frames(9, speech=False)
    assert d.ends() == []
    assert [r.silence_ms for r in d.requests()] == [120, 120]  # the new pause, asked anew


def test_an_early_check_that_failed_leaves_the_decision_to_the_later_one() -> None:
    d = early_spoken(6)
    (early,) = d.requests()
    assert d.policy.on_failure(early.seq, d.now) is None
    d.frames(4, speech=False)
    assert [r.silence_ms for r in d.requests()] == [120, 200]
    assert d.ends() == []


def test_an_early_check_must_come_before_the_check_silence() -> None:
    with pytest.raises(ConfigError):
        EndTurnConfig(check_silence_ms=200, early_check_ms=200)


GATED = EndTurnConfig(check_silence_ms=200, max_silence_ms=1600, threshold=0.5,
                      pre_speech_ms=100, early_check_ms=120, early_min_speech_ms=600)


def test_no_early_check_after_a_short_opening_only_the_check_at_the_check_silence() -> None:
    d = Driver(EndTurnPolicy(GATED))
    d.frames(25, speech=True)  # 500 ms: "Yes," before a short pause
    d.frames(10, speech=False)
    assert [r.silence_ms for r in d.requests()] == [200]


def test_the_early_check_is_asked_once_the_turn_holds_enough_speech() -> None:
    d = Driver(EndTurnPolicy(GATED))
    d.frames(25, speech=True)  # 500 ms, a pause the check calls unfinished
    d.frames(10, speech=False)
    d.policy.on_result(d.requests()[0].seq, 0.1, d.now)
    d.frames(5, speech=True)  # 600 ms of speech in the turn
    d.frames(6, speech=False)
    assert [r.silence_ms for r in d.requests()] == [200, 120]


def test_a_short_opening_called_finished_is_not_ended_once_the_caller_goes_on() -> None:
    # The check's own time is part of the silence: its answer comes after speech is back.
    d = Driver(EndTurnPolicy(GATED))
    d.frames(20, speech=True)
    d.frames(10, speech=False)
    (check,) = d.requests()
    d.frames(1, speech=True)
    assert d.policy.on_result(check.seq, 0.98, d.now) is None
    assert d.policy.phase is Phase.SPEAKING
