"""The emulator's playout model: pure, `now` is a local variable the test moves."""

from __future__ import annotations

from mediasrv.emulator.playout import MarkName, PlayoutModel

TONE = bytes([0x10]) * 160  # 20 ms of non-silent mu-law
TONE2 = bytes([0x20]) * 160


def test_audio_plays_in_real_time_from_arrival() -> None:
    p = PlayoutModel()
    now = 10.0
    p.receive_media(TONE * 5, now)  # 100 ms
    now += 0.030
    played, due = p.advance(now)
    assert len(played) == 240 and due == []
    now += 0.500
    played, _ = p.advance(now)
    assert len(played) == 560
    assert p.buffered_bytes() == 0


def test_mark_echoed_when_its_audio_has_played() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE * 3, now)  # 60 ms
    p.receive_mark("r1:i1:0", now)
    assert p.next_event_time() == 0.060
    now = 0.059
    assert p.advance(now)[1] == []
    now = 0.061
    assert p.advance(now)[1] == ["r1:i1:0"]
    echo = p.echoes[0]
    assert echo.played and abs(echo.at - 0.060) < 1e-9


def test_mark_with_nothing_buffered_is_due_at_once() -> None:
    p = PlayoutModel()
    now = 5.0
    p.receive_mark("first", now)
    assert p.advance(now)[1] == ["first"]
    p.receive_media(TONE, now)
    now += 1.0  # the 20 ms played long ago: the buffer is empty again
    p.receive_mark("second", now)
    assert p.echoes[-1].at == now
    assert p.advance(now)[1] == ["second"]


def test_marks_are_echoed_in_order_behind_their_audio() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE, now)
    p.receive_mark("a", now)
    p.receive_media(TONE, now)
    p.receive_mark("b", now)
    now = 0.025
    assert p.advance(now)[1] == ["a"]
    now = 0.045
    assert p.advance(now)[1] == ["b"]


def test_clear_drops_audio_and_echoes_all_pending_marks() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE * 10, now)  # 200 ms
    p.receive_mark("r1:i1:200", now)
    p.receive_media(TONE * 10, now)
    p.receive_mark("r1:i1:400", now)
    now = 0.050
    assert p.receive_clear(now) == ["r1:i1:200", "r1:i1:400"]
    assert [e.played for e in p.echoes] == [False, False]
    clear = p.clears[0]
    assert clear.dropped_bytes == 3200 - 400
    assert clear.flushed == ("r1:i1:200", "r1:i1:400")
    now = 1.0
    played, due = p.advance(now)
    assert len(played) == 400 and due == []  # only what played before the clear
    assert p.buffered_bytes() == 0


def test_clear_returns_marks_already_due_before_flushed_ones() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE, now)
    p.receive_mark("played", now)
    p.receive_media(TONE * 5, now)
    p.receive_mark("flushed", now)
    now = 0.030  # "played" fell due at 20 ms, nobody called advance since
    assert p.receive_clear(now) == ["played", "flushed"]
    assert [(e.name, e.played) for e in p.echoes] == [("played", True), ("flushed", False)]


def test_underrun_restarts_playback_when_audio_arrives() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE, now)
    now = 0.100  # 80 ms of nothing after the first frame
    p.receive_media(TONE2, now)
    now = 0.200
    p.advance(now)
    heard = p.heard()
    assert [(h.start, len(h.data)) for h in heard] == [(0.0, 160), (0.100, 160)]
    assert abs(heard[0].end - 0.020) < 1e-12
    assert heard[1].offset == 160


def test_heard_keeps_contiguous_audio_as_one_segment() -> None:
    p = PlayoutModel()
    now = 0.0
    for _ in range(10):
        p.receive_media(TONE, now)
        now += 0.010  # sent twice as fast as real time: never runs dry
        p.advance(now)
    now += 1.0
    p.advance(now)
    heard = p.heard()
    assert len(heard) == 1 and len(heard[0].data) == 1600


def test_render_places_heard_audio_on_the_requested_grid() -> None:
    p = PlayoutModel()
    now = 1.0
    p.receive_media(TONE, now)
    now = 2.0
    p.advance(now)
    window = p.render(0.990, 320)  # 10 ms before the audio, 30 ms after its start
    assert window[:80] == bytes([0xFF]) * 80
    assert window[80:240] == TONE
    assert window[240:] == bytes([0xFF]) * 80


def test_render_shows_only_what_has_played_so_far() -> None:
    p = PlayoutModel()
    now = 0.0
    p.receive_media(TONE * 5, now)
    now = 0.010
    p.advance(now)
    window = p.render(0.0, 160)
    assert window[:80] == TONE[:80] and window[80:] == bytes([0xFF]) * 80


def test_is_playing_follows_the_buffer() -> None:
    p = PlayoutModel()
    now = 0.0
    assert not p.is_playing(now)
    p.receive_media(TONE * 2, now)
    assert p.is_playing(0.039)
    assert not p.is_playing(0.041)


def test_mark_names_are_read_in_one_place() -> None:
    assert MarkName.parse("resp_1:item_1:120") == MarkName("resp_1", "item_1", 120, False)
    assert MarkName.parse("resp_1:item_1:1400:end") == MarkName("resp_1", "item_1", 1400, True)
    assert MarkName.parse("resp_1:item_1:x") == MarkName("resp_1", "item_1", None, False)
    assert MarkName.parse("rtt-probe-1") is None  # a probe: not an item's mark
