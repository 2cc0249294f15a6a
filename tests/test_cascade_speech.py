"""Text for the voice and back: tokens cut at word boundaries, chunk-relative alignment
placed by byte counts, heard words cut back to whole words, the history, the retry
policy of the two sockets. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mediasrv.backends import base
from mediasrv.backends.cascade.actions import STT, TTS, Dial
from mediasrv.backends.cascade.history import History
from mediasrv.backends.cascade.links import IDLE_LIFETIME_S, Links
from mediasrv.backends.cascade.speech import Piece, SpokenText, TextChunker
from mediasrv.backends.cascade.tts_wire import Alignment


def test_tokens_go_out_whole_words_at_a_time_ending_with_a_space() -> None:
    chunker = TextChunker()
    assert chunker.feed("You") is None
    assert chunker.feed(" said") == Piece("You ", False)
    assert chunker.feed(": hel") == Piece("said: ", False, ends_clause=True)
    assert chunker.feed("lo. How") == Piece("hello. ", True)
    assert chunker.finish() == "How "
    assert chunker.finish() == ""


@given(st.lists(st.text(alphabet="ab .!\n", max_size=6), max_size=30))
def test_the_pieces_and_the_rest_say_exactly_the_streamed_words(tokens: list[str]) -> None:
    chunker = TextChunker()
    pieces = [p.text for t in tokens if (p := chunker.feed(t)) is not None]
    pieces.append(chunker.finish())
    assert all(p.endswith(" ") for p in pieces if p)
    assert "".join(pieces).split() == "".join(tokens).replace("\n", " ").split()


def spoken(*chunks: tuple[str | list[str], list[float], int]) -> SpokenText:
    text = SpokenText()
    for chars, starts, nbytes in chunks:
        text.on_audio(nbytes, Alignment(tuple(chars), tuple(starts)))
    return text


def test_alignment_is_placed_after_the_audio_received_before_its_chunk() -> None:
    # Each chunk's times start at 0; its place on the response's timeline comes from the
    # bytes before it (8 per ms), not from the sum of its characters' durations.
    text = spoken(("Hi ", [0, 50, 100], 8 * 500), ("you", [0, 40, 80], 8 * 300))
    assert text.received_ms == 800
    assert text.heard(499) == "Hi"
    assert text.heard(541) == "Hi"  # "yo" of "you" (its 'u' starts at 580): cut off
    assert text.heard(581) == "Hi you"
    assert text.text() == "Hi you"


def test_a_word_cut_in_the_middle_is_dropped_but_punctuation_ends_a_word() -> None:
    text = spoken(("Hello, there", [i * 10.0 for i in range(12)], 8 * 200))
    assert text.heard(35) == ""  # "Hell" of "Hello,"
    assert text.heard(45) == "Hello"  # the comma is next: the word was heard whole
    assert text.heard(55) == "Hello,"
    assert text.heard(105) == "Hello,"  # "ther"
    assert text.heard(1000) == "Hello, there"


def test_entries_of_several_characters_and_leading_spaces_are_handled() -> None:
    text = spoken((["  ", "He"], [0, 0], 8 * 100), (["llo "], [0], 8 * 100),
                  (["wor"], [0], 8 * 50), (["ld"], [0], 8 * 50))
    assert text.heard(150) == "Hello"
    assert text.heard(250) == "Hello"  # "wor" of "world"
    assert text.heard(251) == "Hello world"


def test_audio_without_alignment_still_moves_the_timeline() -> None:
    text = SpokenText()
    text.on_audio(8 * 300, None)
    text.on_audio(8 * 100, Alignment(("o", "k"), (0.0, 50.0)))
    assert text.received_ms == 400
    assert text.heard(320) == "" and text.heard(400) == "ok"


def test_the_history_sends_what_was_heard_and_drops_what_was_not() -> None:
    history = History("be brief", limit=3)
    history.add("user", "hi")
    answer = history.add("assistant", "hello there friend")
    answer.content = "hello"
    history.add("user", "bye")
    assert history.request() == [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "hello"},
                                 {"role": "user", "content": "bye"}]
    answer.content = ""  # nothing heard: no message
    history.add("user", "again")  # the oldest goes beyond the limit
    assert [m["content"] for m in history.request("say goodbye")] == \
        ["be brief", "bye", "again", "say goodbye"]


def test_each_socket_is_redialled_once_then_the_session_is_given_up() -> None:
    links = Links()
    assert links.dial_all() == [Dial(STT, 1), Dial(TTS, 1)]
    links.opened(STT, 1, 0.0)
    assert not links.becomes_ready()
    links.opened(TTS, 1, 0.0)
    assert links.becomes_ready() and not links.becomes_ready()  # once
    first = links.lost(STT, 1, "deepgram: closed 1011", 5.0, busy=False)
    assert first is not None and first.redial == Dial(STT, 2) and first.report is None
    assert links.lost(STT, 1, "stale", 5.0, busy=False) is None  # an older connection
    second = links.lost(STT, 2, "deepgram: refused", 5.5, busy=False)
    assert second is not None and second.redial is None
    assert second.report == base.ConnectionLost("deepgram: refused", retrying=False)
    assert links.gone


def test_a_loss_before_the_session_is_ready_is_reported_as_retrying() -> None:
    links = Links()
    links.dial_all()
    loss = links.lost(TTS, 1, "elevenlabs: HTTP 401", 0.1, busy=False)
    assert loss is not None and loss.report == base.ConnectionLost("elevenlabs: HTTP 401",
                                                                   retrying=True)


def test_an_idle_elevenlabs_socket_closed_for_inactivity_costs_no_retry() -> None:
    links = Links()
    links.dial_all()
    links.opened(TTS, 1, 0.0)
    for serial in (1, 2, 3):  # closed again and again, each after a long idle life
        now = serial * (IDLE_LIFETIME_S + 1)
        links.opened(TTS, serial, now - IDLE_LIFETIME_S)
        loss = links.lost(TTS, serial, "elevenlabs: closed 1008", now, busy=False)
        assert loss is not None and loss.expected and loss.redial == Dial(TTS, serial + 1)
    busy = links.lost(TTS, 4, "elevenlabs: closed 1008", 100.0, busy=True)
    assert busy is not None and not busy.expected  # mid-answer: that is a failure
