"""The per-call echo return loss bound, learned from echo-only frames. Pure."""

from __future__ import annotations

import pytest

from mediasrv.policy.echo_path import EchoPathBound


def learned(samples: list[float], sent: float = -3.0) -> EchoPathBound:
    bound = EchoPathBound(conservative_db=6.0)
    for loss in samples:
        bound.learn(sent, sent - loss)
    return bound


def test_conservative_until_a_second_of_the_bot_was_heard() -> None:
    assert learned([20.0] * 49).bound_db == 6.0
    assert learned([20.0] * 50).bound_db == pytest.approx(17.0)  # 20 dB less 3 dB safety


def test_frames_sent_while_the_bot_was_quiet_teach_nothing() -> None:
    bound = EchoPathBound()
    for _ in range(100):
        bound.learn(-50.0, -90.0)
    assert not bound.learned


def test_a_few_missed_caller_frames_do_not_lower_the_bound() -> None:
    # 145 frames of 20 dB echo, 5 frames where a caller as loud as the bot slipped through
    assert learned([20.0] * 145 + [0.0] * 5).bound_db >= 15.0


def test_no_echo_at_all_gives_a_high_bound_capped_at_60_db() -> None:
    assert learned([90.0] * 60).bound_db == 60.0


def test_never_below_the_conservative_start() -> None:
    assert learned([2.0] * 60).bound_db == 6.0


def test_reset_returns_to_the_conservative_start_and_relearns() -> None:
    bound = learned([20.0] * 60)
    bound.reset()
    assert bound.bound_db == 6.0 and bound.resets == 1
    for _ in range(50):
        bound.learn(-3.0, -13.0)
    assert bound.bound_db == pytest.approx(7.0)

