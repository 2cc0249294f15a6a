import pytest

from mediasrv.playback import MarkOutcome, Playback


def ledger_with_item(ms: float = 1000.0) -> Playback:
    pb = Playback()
    pb.on_audio("item_1", "resp_1", 0, int(ms * 8))
    return pb


def test_mark_echo_counts_heard_ms():
    pb = ledger_with_item()
    pb.on_mark_sent("a", "item_1", 200, False)
    echo = pb.on_mark_echo("a", now=10.0)
    assert echo.outcome is MarkOutcome.PLAYED
    assert pb.items["item_1"].heard_ms == 200


def test_marks_echoed_by_clear_are_not_playback():
    pb = ledger_with_item()
    pb.on_mark_sent("a", "item_1", 200, False)
    pb.on_mark_sent("b", "item_1", 400, False)
    pb.on_mark_echo("a", now=10.0)
    assert pb.on_clear() == 1
    assert pb.on_mark_echo("b", now=10.1).outcome is MarkOutcome.CLEARED
    assert pb.items["item_1"].heard_ms == 200
    assert not pb.has_unheard()


def test_unknown_mark_is_reported():
    assert Playback().on_mark_echo("never-sent", 0.0).outcome is MarkOutcome.UNKNOWN


def test_heard_ms_interpolates_between_echoes_up_to_the_next_mark():
    pb = ledger_with_item()
    pb.on_mark_sent("a", "item_1", 200, False)
    pb.on_mark_sent("b", "item_1", 400, False)
    pb.on_mark_echo("a", now=10.0)
    assert pb.heard_ms("item_1", 10.05) == pytest.approx(250)
    assert pb.heard_ms("item_1", 11.0) == 400  # capped at the next pending mark


def test_heard_ms_never_exceeds_received_audio():
    pb = ledger_with_item(300)
    pb.on_mark_sent("a", "item_1", 300, False)
    pb.on_mark_sent("b", "item_1", 500, False)  # more than received cannot happen, but clamp
    pb.on_mark_echo("a", now=1.0)
    assert pb.heard_ms("item_1", 5.0) == 300


def test_truncation_is_at_heard_ms_as_integer():
    pb = ledger_with_item(1000)
    pb.on_mark_sent("a", "item_1", 220, False)
    pb.on_mark_sent("b", "item_1", 420, False)
    pb.on_mark_echo("a", now=2.0)
    [cut] = pb.truncations("resp_1", now=2.0335)
    assert (cut.item_id, cut.content_index, cut.audio_end_ms) == ("item_1", 0, 253)


def test_no_truncation_when_everything_was_heard():
    pb = ledger_with_item(400)
    pb.on_mark_sent("end", "item_1", 400, True)
    pb.on_mark_echo("end", now=1.0)
    assert pb.items["item_1"].fully_played
    assert pb.truncations("resp_1", now=1.0) == []


def test_truncation_only_for_the_given_response_and_only_once():
    pb = ledger_with_item()
    pb.on_audio("item_2", "resp_2", 0, 800)
    assert [c.item_id for c in pb.truncations("resp_1", 0.0)] == ["item_1"]
    assert pb.truncations("resp_1", 0.0) == []
