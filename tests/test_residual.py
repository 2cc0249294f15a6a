"""ResidualSpeech: a second classifier state on what the echo canceller leaves."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mediasrv.audio import ULAW_FLOAT, pcm16_to_ulaw
from mediasrv.policy.residual import ResidualSpeech

FRAME = np.full(160, 0.01, dtype=np.float32)  # -40 dBFS


class Counting:
    """Score every frame 0.9; count resets."""

    def __init__(self) -> None:
        self.resets = 0

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        return 0.9 if active else 0.0

    def reset(self) -> None:
        self.resets += 1


def test_what_it_heard_before_the_canceller_was_trusted_is_forgotten_once_it_is() -> None:
    # Before the canceller is trusted its residual still holds our echo.
    classifier = Counting()
    residual = ResidualSpeech(classifier)
    for trusted in (False, False, True, True):
        residual.hear(FRAME, trusted)
    assert classifier.resets == 1


def test_outside_the_echo_window_it_scores_nothing_and_forgets() -> None:
    classifier = Counting()
    residual = ResidualSpeech(classifier)
    residual.hear(FRAME, True)
    assert residual.probability == 0.9
    residual.hear(None, True)
    assert (residual.probability, classifier.resets) == (0.0, 2)


def test_a_residual_under_70_dbfs_is_not_run_through_the_model() -> None:
    residual = ResidualSpeech(Counting())
    residual.hear(np.full(160, 1e-4, dtype=np.float32), False)  # -80 dBFS
    assert residual.probability == 0.0


class Summing:
    """A stateful stand-in: scores each frame by everything it heard since its reset,
    and says nothing on every other frame (as silero, which scores 256-sample windows)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.pushes = 0

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        self.pushes += 1
        self.total += float(x.sum()) + (1.0 if active else 0.0)
        return None if self.pushes % 2 else self.total

    def reset(self) -> None:
        self.total = 0.0


def frames(n: int) -> list[tuple[npt.NDArray[np.float32], bytes]]:
    """Inbound frames as the canceller passes them on while it removes nothing."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        pcm = rng.standard_normal(160) * 32768 * 10 ** (-(20 + i % 50) / 20)
        ulaw = pcm16_to_ulaw(np.clip(pcm, -32768, 32767).astype(np.int16))
        out.append((ULAW_FLOAT[np.frombuffer(ulaw, np.uint8)], ulaw))
    return out


def test_asking_late_gives_the_answers_asking_at_every_frame_gives() -> None:
    eager, lazy = ResidualSpeech(Summing()), ResidualSpeech(Summing())
    asked = []
    for i, (frame, ulaw) in enumerate(frames(60)):
        trusted = i >= 30  # the restart at the trusted canceller, in the middle
        eager.hear(frame, trusted, ulaw)
        lazy.hear(frame, trusted, ulaw)
        asked.append(eager.probability)
        if i in (30, 59):  # 30: the score from before the restart still stands
            assert lazy.probability == asked[-1]


def test_frames_never_asked_about_in_the_echo_window_are_never_run() -> None:
    classifier = Summing()
    residual = ResidualSpeech(classifier)
    for frame, ulaw in frames(40):
        residual.hear(frame, False, ulaw)
    residual.hear(None, False)  # the window ends
    assert (classifier.pushes, residual.probability) == (0, 0.0)


def test_a_long_turn_never_asked_about_holds_only_the_latest_frames() -> None:
    classifier = Summing()
    residual = ResidualSpeech(classifier)
    for frame, ulaw in frames(430):
        residual.hear(frame, False, ulaw)
    assert classifier.pushes == 30  # 400 wait


def test_a_residual_the_canceller_changed_runs_at_once_after_those_waiting() -> None:
    classifier = Summing()
    residual = ResidualSpeech(classifier)
    for frame, ulaw in frames(5):
        residual.hear(frame, False, ulaw)
    residual.hear(FRAME, False)  # no mu-law: the canceller took something off
    assert classifier.pushes == 6


def buzz(hz: float) -> npt.NDArray[np.float32]:
    t = np.arange(160) / 8000
    return (0.1 * np.sign(np.sin(2 * np.pi * hz * t))).astype(np.float32)  # a glottal-ish buzz


def test_a_buzz_at_a_voice_s_pitch_confirms_and_a_breath_like_noise_does_not() -> None:
    # Both score as speech here (Counting: 0.9); only the voiced one is the caller.
    residual = ResidualSpeech(Counting())
    breath = (0.03 * np.random.default_rng(7).standard_normal(160)).astype(np.float32)
    residual.hear(breath, True)
    assert residual.is_speech and not residual.confirms(breath)
    for hz in (80.0, 120.0, 220.0, 390.0):
        residual.hear(buzz(hz), True)
        assert residual.confirms(buzz(hz)), hz
