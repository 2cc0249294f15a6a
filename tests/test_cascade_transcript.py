"""The caller's turns from Deepgram's results: the call's timeline, Finalize and its
fallbacks, the 2 s rule, server-mode turns. Pure: `now` is a local variable."""

from __future__ import annotations

from mediasrv.backends import base
from mediasrv.backends.cascade import stt_wire as wire
from mediasrv.backends.cascade.transcript import Timeline, Transcripts

SECOND = 8000  # bytes of mu-law


def final(text: str, start: float, end: float, *, from_finalize: bool = False,
          speech_final: bool = False) -> wire.Results:
    words = (start + 0.05, end - 0.05) if text else (None, None)
    return wire.Results(text, start, end - start, True, speech_final, from_finalize, *words)


def local(wait_s: float = 2.5) -> Transcripts:
    return Transcripts(server_turns=False, finalize_wait_s=wait_s)


def test_connection_seconds_map_onto_call_time_across_withheld_audio() -> None:
    timeline = Timeline()
    timeline.sent(SECOND, now=11.0)  # captured 10.0-11.0
    timeline.sent(SECOND, now=21.0)  # 10 s withheld as echo: captured 20.0-21.0
    assert timeline.at(0.5, default=0.0) == 10.5
    assert timeline.at(1.25, default=0.0) == 20.25
    timeline.reset()
    assert timeline.at(0.5, default=7.0) == 7.0


def test_a_committed_turn_is_the_finals_up_to_the_finalize_reply() -> None:
    t, now = local(), 10.0
    t.audio(3 * SECOND, now)
    t.on_message(final("I would like", 0.0, 1.2), now)
    t.on_message(wire.Results("to check", 1.2, 0.5, False, False, False, 1.3, 1.6), now)
    assert t.commit(now) is True  # audio up to 3.0 s is not final yet: Finalize
    assert t.pending and t.take_ready() == []
    now += 0.2
    t.on_message(final("to check my order", 1.2, 2.9, from_finalize=True), now)
    [turn] = t.take_ready()
    assert turn.text == "I would like to check my order"
    assert turn.completed_at == now and not t.pending


def test_finals_reaching_the_commit_need_no_finalize() -> None:
    t, now = local(), 10.0
    t.audio(2 * SECOND, now)
    t.on_message(final("hello", 0.0, 2.0), now)
    assert t.commit(now) is False
    assert [x.text for x in t.take_ready()] == ["hello"]


def test_speech_after_the_commit_waits_for_the_next_turn() -> None:
    t, now = local(), 10.0
    t.audio(2 * SECOND, now)
    t.commit(now)
    t.audio(SECOND, now + 1.0)  # the caller goes on after the commit
    t.on_message(final("first", 0.0, 2.0, from_finalize=True), now + 1.1)
    t.on_message(final("second", 2.0, 3.0), now + 1.2)
    assert [x.text for x in t.take_ready()] == ["first"]
    t.commit(now + 1.5)
    assert [x.text for x in t.take_ready()] == ["second"]


def test_utterance_end_completes_a_turn_whose_finalize_got_no_reply() -> None:
    t, now = local(), 10.0
    t.audio(3 * SECOND, now)
    t.on_message(final("are you open", 0.0, 1.5), now)
    t.commit(now)
    t.on_message(wire.UtteranceEnd(1.45), now + 1.5)
    assert [x.text for x in t.take_ready()] == ["are you open"]


def test_without_any_reply_the_turn_is_what_was_final_after_the_wait() -> None:
    t, now = local(wait_s=2.5), 10.0
    t.audio(3 * SECOND, now)
    t.on_message(final("are you open", 0.0, 1.5), now)
    t.commit(now)
    assert t.next_deadline() == now + 2.5
    t.tick(now + 2.4)
    assert t.pending
    t.tick(now + 2.5)
    assert [x.text for x in t.take_ready()] == ["are you open"]


def test_speech_2_s_or_more_before_the_turn_never_merges_into_it() -> None:
    # Adjacent on Deepgram's clock, 4 s apart on the call's: the audio between them was
    # withheld (echo), as it is while the AI talks.
    t = local()
    t.audio(SECOND // 2, now=10.5)  # "uh", a skipped utterance: captured 10.0-10.5
    t.audio(2 * SECOND, now=16.5)  # the turn: captured 14.5-16.5
    t.on_message(final("uh", 0.0, 0.5), 16.6)
    t.on_message(final("what time is it", 0.5, 2.5, from_finalize=False), 16.6)
    t.commit(16.7)
    [turn] = t.take_ready()
    assert turn.text == "what time is it"


def test_a_turn_pending_keeps_speech_before_a_gap_until_it_is_complete() -> None:
    t = local()
    t.audio(SECOND, now=11.0)
    t.commit(11.0)  # the turn's audio: captured 10-11
    t.audio(SECOND, now=15.0)  # the caller again, 4 s later
    t.on_message(final("mine", 0.0, 0.9), 15.1)
    t.on_message(final("next", 1.0, 1.9), 15.1)  # 2 s after "mine": the next turn's
    t.on_message(final("", 0.9, 1.0, from_finalize=True), 15.2)
    assert [x.text for x in t.take_ready()] == ["mine"]
    t.commit(15.3)
    t.on_message(final("", 1.9, 2.0, from_finalize=True), 15.4)
    assert [x.text for x in t.take_ready()] == ["next"]


def test_speech_no_turn_can_hold_is_forgotten_as_soon_as_a_2_s_gap_follows_it() -> None:
    t = local()
    for k in range(100):  # lyrics of music on hold: never a turn of ours
        t.audio(SECOND, now=10.0 + 3 * k)
        t.on_message(final(f"la {k}", k * 1.0, k * 1.0 + 0.8), 10.0 + 3 * k)
    assert len(t._finals) == 1
    t.commit(400.0)
    t.on_message(final("", 99.8, 100.0, from_finalize=True), 400.1)
    assert [x.text for x in t.take_ready()] == ["la 99"]


def test_speech_less_than_2_s_apart_stays_one_turn() -> None:
    t = local()
    t.audio(SECOND // 2, now=10.5)
    t.audio(2 * SECOND, now=14.0)  # captured 12.0-14.0: 1.5 s after the first
    t.on_message(final("so", 0.0, 0.5), 14.1)
    t.on_message(final("what time is it", 0.5, 2.5), 14.1)
    t.commit(14.2)
    [turn] = t.take_ready()
    assert (turn.text, turn.dropped) == ("so what time is it", "")


def test_a_new_connection_completes_turns_the_old_one_cannot_finalize() -> None:
    t, now = local(), 10.0
    t.audio(2 * SECOND, now)
    t.on_message(final("half a", 0.0, 1.0), now)
    t.commit(now)
    t.new_connection(now + 0.3)
    assert [x.text for x in t.take_ready()] == ["half a"]
    assert t.timeline.sent_s == 0.0


def test_server_mode_speech_started_once_then_speech_final_commits_the_turn() -> None:
    t, now = Transcripts(server_turns=True, finalize_wait_s=2.5), 10.0
    t.audio(3 * SECOND, now)
    assert t.on_message(wire.SpeechStarted(0.2), now) == [base.CallerSpeechStarted("caller_turn_1")]
    assert t.on_message(wire.SpeechStarted(0.4), now) == []  # debounced: once per turn
    assert t.on_message(final("hello", 0.0, 1.0), now) == []
    events = t.on_message(final("there", 1.0, 2.0, speech_final=True), now)
    assert events == [base.CallerSpeechStopped("caller_turn_1"),
                      base.CallerTurnCommitted("caller_turn_1")]
    assert [x.text for x in t.take_ready()] == ["hello there"]
    assert t.on_message(wire.SpeechStarted(3.0), now) == [base.CallerSpeechStarted("caller_turn_2")]


def test_server_mode_utterance_end_commits_when_endpointing_never_fired() -> None:
    t, now = Transcripts(server_turns=True, finalize_wait_s=2.5), 10.0
    t.audio(3 * SECOND, now)
    t.on_message(final("in the noise", 0.0, 1.0), now)
    events = t.on_message(wire.UtteranceEnd(0.95), now + 2.0)
    assert base.CallerTurnCommitted("caller_turn_1") in events
    assert [x.text for x in t.take_ready()] == ["in the noise"]


def test_server_mode_silence_commits_nothing() -> None:
    t, now = Transcripts(server_turns=True, finalize_wait_s=2.5), 10.0
    t.audio(3 * SECOND, now)
    assert t.on_message(final("", 0.0, 3.0, speech_final=True), now) == []
    assert t.on_message(wire.UtteranceEnd(0.0), now) == []
    assert t.take_ready() == []
