"""ResidualSpeech: a second classifier state on what the echo canceller leaves."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
