"""The per-call echo return loss bound, learned from echo-only frames, and the watch for
an echo path that moved. Pure."""

from __future__ import annotations

from typing import cast

import pytest

from mediasrv.policy.aec import EchoCanceller, ResidualLag
from mediasrv.policy.echo_path import EchoPathBound, PathMoveWatch


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



class FakeCanceller:
    """What `PathMoveWatch` reads of the canceller: its delay, where the residual follows
    what we sent, and how much of an echo the filter models there."""

    def __init__(self, found: ResidualLag, response: float = 0.0) -> None:
        self.delay: int | None = 160 * 8
        self.found = found
        self.response = response

    def residual_lag(self) -> ResidualLag:
        return self.found

    def response_at(self, delay: int) -> float:
        return self.response


def looks(aec: FakeCanceller, times: list[float]) -> list[bool]:
    watch = PathMoveWatch()
    return [watch.seen(now, cast(EchoCanceller, aec)) for now in times]


def test_the_residual_sharp_twice_where_the_filter_models_nothing_is_a_moved_path() -> None:
    # 160 -> 40 ms: the delay search (smoothed) does not see it yet, the residual does.
    aec = FakeCanceller(ResidualLag(delay=40 * 8, search=3.0, own=8.0))
    # Held for 0.5 s after; two looks too far apart are not "again".
    assert looks(aec, [1.0, 1.02, 1.5, 1.8]) == [False, True, True, False]


def test_the_residual_sharp_once_is_not_a_moved_path() -> None:
    # A caller's residual stands that sharp at some lag now and then, not at it again.
    aec = FakeCanceller(ResidualLag(delay=40 * 8, search=3.0, own=9.5))
    assert looks(aec, [1.0, 1.2]) == [False, False]


def test_the_residual_sharp_where_the_filter_models_a_reflection_is_not_a_moved_path() -> None:
    aec = FakeCanceller(ResidualLag(delay=220 * 8, search=3.0, own=10.0), response=0.4)
    assert looks(aec, [1.0, 1.02, 1.04]) == [False, False, False]


def test_the_residual_sharp_under_20_ms_is_not_a_moved_path() -> None:
    # No phone line returns an echo that soon; callers' residuals stood up to 11.6 there.
    aec = FakeCanceller(ResidualLag(delay=8, search=3.0, own=11.0))
    assert looks(aec, [1.0, 1.02, 1.04]) == [False, False, False]


@pytest.mark.parametrize(("in_burst", "held_until"), [(False, 1.2), (True, 1.6)])
def test_a_filter_moved_with_our_echo_holds_longer_after_a_gap_inside_a_burst(
        in_burst: bool, held_until: float) -> None:
    # At a burst's start (the first packet's jitter) 0.2 s covers the echo of what played
    # before; a gap mid-answer (a stall of ours past the lead) may be followed by another
    # while the lead is rebuilt: 0.6 s.
    aec = FakeCanceller(ResidualLag(delay=160 * 8, search=3.0, own=4.0))  # nothing moved
    watch = PathMoveWatch()
    watch.moved(1.0, in_burst=in_burst)
    times = [1.1, held_until - 0.01, held_until + 0.01]
    assert [watch.seen(now, cast(EchoCanceller, aec)) for now in times] == [True, True, False]
