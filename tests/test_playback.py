"""Playback ledger: marks, clears, the playout timeline and truncation points. Pure."""

from __future__ import annotations

import pytest

from mediasrv.policy.playback import ECHO_RTT_MARGIN_S, ClearPoint, MarkOutcome, Playback, SentFrame

TICK = 0.020


def ledger(received_ms: float = 1000.0) -> Playback:
    pb = Playback()
    pb.on_audio("item_1", "resp_1", 0, int(received_ms * 8))
    return pb


def timeline(start: float, frames: int, item: str = "item_1", gap_after: int = -1,
             gap_s: float = 0.0) -> tuple[SentFrame, ...]:
    """Frames sent every 20 ms from `start` (a pause of `gap_s` after frame `gap_after`)."""
    out, end = [], 0.0
    sent = start
    for i in range(frames):
        end = max(sent, end) + TICK
        out.append(SentFrame(item, (i + 1) * 20.0, end))
        sent += TICK + (gap_s if i == gap_after else 0.0)
    return tuple(out)


def test_mark_echo_counts_heard_ms() -> None:
    pb = ledger()
    pb.on_mark_sent("a", "item_1", 200, False)
    echo = pb.on_mark_echo("a", 1.0)
    assert echo.outcome is MarkOutcome.PLAYED and echo.item is not None
    assert echo.item.heard_ms == 200


def test_marks_echoed_by_clear_are_not_playback() -> None:
    pb = ledger()
    pb.on_mark_sent("a", "item_1", 200, False)
    pb.on_mark_sent("b", "item_1", 400, False)
    assert pb.on_clear() == 2
    assert pb.on_mark_echo("a", 1.0).outcome is MarkOutcome.CLEARED
    assert pb.items["item_1"].heard_ms == 0
    assert not pb.has_unheard()


def test_unknown_mark_is_reported() -> None:
    assert Playback().on_mark_echo("nope", 0.0).outcome is MarkOutcome.UNKNOWN


def test_cut_is_what_the_playout_timeline_had_played_when_clear_left() -> None:
    pb = ledger()
    frames = timeline(1.0, 10)  # frame i plays [1.0 + 0.02 i, + 0.02)
    [cut] = pb.truncations("resp_1", ClearPoint(1.105, frames))
    assert cut.audio_end_ms == 105  # 5 frames and a quarter of the sixth, as an integer


def test_a_pause_of_the_sender_pauses_the_timeline() -> None:
    pb = ledger()
    frames = timeline(1.0, 10, gap_after=2, gap_s=0.1)  # 3 frames, 100 ms of nothing, more
    [cut] = pb.truncations("resp_1", ClearPoint(1.17, frames))
    assert cut.audio_end_ms == 60 + 10  # third frame ended at 1.06, the fourth began at 1.16


def test_a_steady_network_round_trip_does_not_shorten_the_cut() -> None:
    pb = ledger()
    frames = timeline(1.0, 30)
    for k, f in enumerate(frames[4::10]):  # marks at 100, 300, 500 ms, echoed 80 ms late
        pb.on_mark_sent(f"m{k}", "item_1", f.item_ms, False, f.play_end)
        pb.on_mark_echo(f"m{k}", f.play_end + 0.080)
    [cut] = pb.truncations("resp_1", ClearPoint(1.55, frames))
    assert cut.audio_end_ms == 550


def test_playback_that_fell_behind_moves_the_cut_back_by_as_much() -> None:
    pb = ledger()
    frames = timeline(1.0, 40)
    late = [0.080, 0.080, 0.140, 0.140, 0.140]  # from the third mark on, played 60 ms later
    for k, (f, delay) in enumerate(zip(frames[4::5], late, strict=False)):  # 100 ms apart
        pb.on_mark_sent(f"m{k}", "item_1", f.item_ms, False, f.play_end)
        pb.on_mark_echo(f"m{k}", f.play_end + delay)
    assert pb.playout_lag() == pytest.approx(0.060)
    [cut] = pb.truncations("resp_1", ClearPoint(1.65, frames))  # the last echo came at 1.64
    assert cut.audio_end_ms == 590


def test_one_echo_slowed_on_its_way_back_does_not_move_the_cut() -> None:
    pb = ledger()
    frames = timeline(1.0, 30)
    late = [0.080, 0.080, 0.300]
    for k, (f, delay) in enumerate(zip(frames[4::7], late, strict=False)):
        pb.on_mark_sent(f"m{k}", "item_1", f.item_ms, False, f.play_end)
        pb.on_mark_echo(f"m{k}", f.play_end + delay)
    assert pb.playout_lag() == 0.0


def test_cut_is_never_below_what_marks_confirmed_nor_above_what_was_received() -> None:
    pb = ledger(received_ms=300.0)
    pb.on_mark_sent("a", "item_1", 240, False)
    pb.on_mark_echo("a", 2.0)
    [cut] = pb.truncations("resp_1", ClearPoint(1.05, timeline(1.0, 12)))
    assert cut.audio_end_ms == 240  # the timeline said 50: the echo proves more played
    pb2 = ledger(received_ms=300.0)
    frames = timeline(1.0, 20)  # more frames than received: cannot happen, but clamp
    [cut2] = pb2.truncations("resp_1", ClearPoint(1.299, frames))
    assert cut2.audio_end_ms == 299
    assert pb2.truncations("resp_1", ClearPoint(1.5, frames)) == []


def test_no_truncation_when_everything_was_heard() -> None:
    pb = ledger(received_ms=400.0)
    pb.on_mark_sent("end", "item_1", 400, True)
    pb.on_mark_echo("end", 1.0)
    assert pb.truncations("resp_1", ClearPoint(1.0, ())) == []


def test_truncation_only_for_the_given_response_and_only_once() -> None:
    pb = ledger()
    pb.on_audio("item_2", "resp_2", 0, 800)
    frames = timeline(1.0, 5)
    assert [c.item_id for c in pb.truncations("resp_1", ClearPoint(1.05, frames))] == ["item_1"]
    assert pb.truncations("resp_1", ClearPoint(1.05, frames)) == []


def test_an_item_of_which_nothing_played_is_cut_at_zero() -> None:
    pb = ledger()
    [cut] = pb.truncations("resp_1", ClearPoint(1.0, ()))
    assert cut.audio_end_ms == 0


def test_a_probe_on_an_empty_buffer_times_the_network_alone() -> None:
    # The response started 90 ms late at the phone (its first frame was held up), so
    # every mark of it comes back 90 ms later than the round trip the probe measured.
    pb = ledger()
    pb.on_probe_sent("rtt-probe-1", 0.5)
    assert pb.on_mark_echo("rtt-probe-1", 0.53).outcome is MarkOutcome.PROBE
    frames = timeline(1.0, 40)
    for k, f in enumerate(frames[4:25:5]):
        pb.on_mark_sent(f"m{k}", "item_1", f.item_ms, False, f.play_end)
        pb.on_mark_echo(f"m{k}", f.play_end + 0.030 + 0.090)
    assert pb.playout_lag() == pytest.approx(0.090)
    assert not pb.has_unheard()  # a probe is never audio waiting to be heard


def test_the_network_share_of_our_echo_delay_is_the_least_round_trip_less_a_margin() -> None:
    pb = ledger()
    assert pb.network_echo_delay() == 0.0  # no mark back yet: nothing is credited
    pb.on_probe_sent("rtt-probe-1", 0.5)
    pb.on_mark_echo("rtt-probe-1", 0.5 + 0.200)
    pb.on_probe_sent("rtt-probe-2", 1.0)
    pb.on_mark_echo("rtt-probe-2", 1.0 + 0.140)
    assert pb.network_echo_delay() == pytest.approx(0.140 - ECHO_RTT_MARGIN_S)
    pb.on_probe_sent("rtt-probe-3", 2.0)
    pb.on_mark_echo("rtt-probe-3", 2.0 + 0.020)  # a round trip under the margin
    assert pb.network_echo_delay() == 0.0
