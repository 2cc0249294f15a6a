"""Thread-level tests of one call: fake sockets, a manual clock, bounded waits, barriers.

Every "nothing happened" is asserted after a barrier (`h.sync()`, `h.sync_tx()`,
`h.rt.sync()`), never after waiting out a quiet window.
"""

import logging

import pytest
from fakes import WAIT, running_call

SPEECH_STARTED = {"type": "input_audio_buffer.speech_started", "item_id": "u1",
                  "audio_start_ms": 5000}


def test_speaking_stays_set_while_queues_drain_and_clears_when_empty():
    with running_call() as h:
        h.respond(ms=200)  # 10 frames; the backend says done long before they play
        h.twilio.expect("media")
        h.tick(5)
        h.sync()
        assert h.drains() == []
        assert h.call.is_ai_speaking.is_set()
        h.tick(4)
        assert h.obs.drains.get(timeout=WAIT) == "empty"
        assert not h.call.is_ai_speaking.is_set()


def test_stalled_socket_clears_speaking_after_drain_timeout():
    with running_call(drain_timeout_ms=500) as h:
        h.twilio.stall_media.set()
        h.respond(ms=1000)
        h.rt.sync()
        assert h.call.is_ai_speaking.is_set()
        h.clock.advance(0.3)
        h.sync()
        assert h.drains() == []
        assert h.call.is_ai_speaking.is_set()
        h.clock.advance(0.25)
        assert h.obs.drains.get(timeout=WAIT) == "timeout"
        assert not h.call.is_ai_speaking.is_set()


def test_drain_of_response_a_never_clears_response_b():
    with running_call(drain_timeout_ms=500) as h:
        h.twilio.stall_media.set()
        h.respond("resp_A", "item_A", ms=500)
        h.rt.emit({"type": "response.created", "response": {"id": "resp_B"}})
        h.deltas("resp_B", "item_B", 300)
        h.rt.sync()
        h.clock.advance(1.0)  # far beyond A's drain timeout
        h.sync()
        assert h.drains() == []
        assert h.call.is_ai_speaking.is_set()


def test_duplicate_done_events_watch_the_drain_once(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="mediasrv.call")
    with running_call() as h:
        h.respond(ms=300)
        h.finish("resp_1", "item_1")
        h.finish("resp_1", "item_1")
        h.twilio.expect("media")
        h.tick(14)  # all 15 frames sent
        assert h.obs.drains.get(timeout=WAIT) == "empty"
        h.sync()
        assert h.drains() == []  # one watch, one outcome
    assert caplog.text.count("[AUDIO_DONE] resp_1") == 1


def test_barge_in_sends_clear_then_truncate_at_heard_ms_then_cancel():
    with running_call() as h:
        h.respond(ms=1000, done=False)
        first = h.twilio.expect("mark")["mark"]["name"]
        assert first == "resp_1:item_1:20"
        h.tick(10)
        mark = h.twilio.expect("mark")["mark"]["name"]
        assert mark == "resp_1:item_1:220"
        h.echo_mark(first)
        h.echo_mark(mark)  # the caller has heard 220 ms, right now
        h.sync()
        h.order.clear()
        h.rt.emit(SPEECH_STARTED)
        h.twilio.expect("clear")
        truncate = h.rt.expect("conversation.item.truncate")
        assert truncate == {"type": "conversation.item.truncate", "item_id": "item_1",
                            "content_index": 0, "audio_end_ms": 220}
        h.rt.expect("response.cancel")
        assert h.order[:3] == [
            ("twilio", "clear"), ("realtime", "conversation.item.truncate"),
            ("realtime", "response.cancel")]
        assert not h.call.is_ai_speaking.is_set()
        after_clear = h.twilio.position()
        h.deltas("resp_1", "item_1", 500)  # late deltas of the cancelled response
        h.rt.sync()
        for _ in range(10):
            h.clock.advance(0.02)
        h.sync_tx()
        assert h.twilio.events_since(after_clear) == []


def test_the_stream_opens_with_a_round_trip_probe_before_any_audio():
    with running_call() as h:  # the harness has already seen the probe go out
        h.respond(ms=200)
        h.twilio.expect("media")
        first = h.twilio.history[0]
        assert first["event"] == "mark" and first["mark"]["name"] == "rtt-probe-1"


def test_a_greeting_heard_late_is_cut_where_the_caller_was_when_clear_arrived():
    # The probe at the stream's start times the network alone: 30 ms round trip. The
    # greeting's first frame leaves on the first tick (start + 20 ms), so its 220 ms
    # mark ends on the playout timeline at start + 240 ms; echoed at start + 310 ms it
    # is 70 ms late: Twilio plays 40 ms behind the timeline. At the clear the timeline
    # is at 290 ms, the caller at 250. Without the start probe the greeting's own marks
    # would be taken for the round trip and the cut put at 290.
    with running_call() as h:
        h.clock.advance(0.03)
        h.echo_mark("rtt-probe-1")
        h.sync()
        start = h.clock.now()
        h.respond(ms=1000, done=False)
        first = h.twilio.expect("mark")["mark"]["name"]
        h.tick(10)
        mark = h.twilio.expect("mark")["mark"]["name"]
        assert (first, mark) == ("resp_1:item_1:20", "resp_1:item_1:220")
        h.tick(5)  # frames keep going out: the timeline has no gap
        h.clock.advance(start + 0.310 - h.clock.now())
        h.echo_mark(first)
        h.echo_mark(mark)
        h.sync()
        h.rt.emit(SPEECH_STARTED)
        h.twilio.expect("clear")
        truncate = h.rt.expect("conversation.item.truncate")
        assert truncate["audio_end_ms"] == 250


def test_no_frame_of_a_cancelled_response_reaches_twilio_after_clear():
    with running_call() as h:
        h.respond(ms=2000, done=False)  # 100 frames queued
        h.twilio.expect("media")
        h.tick(3)
        h.rt.emit(SPEECH_STARTED)
        h.twilio.expect("clear")
        clear_at = next(i for i, m in enumerate(h.twilio.history) if m["event"] == "clear")
        for _ in range(20):
            h.clock.advance(0.02)
        h.sync_tx()
        assert h.twilio.events_since(clear_at + 1) == []
        stats = h.call.stats()
        assert stats.queued_frames == 0 and stats.overflow_frames == 0


def test_barge_in_after_response_done_while_audio_is_unheard_still_clears():
    with running_call() as h:
        h.respond(ms=200)
        h.twilio.expect("media")
        assert h.twilio.expect("mark")["mark"]["name"] == "resp_1:item_1:20"
        h.tick(1)
        h.echo_mark("resp_1:item_1:20")
        h.tick(8)
        assert h.twilio.expect("mark")["mark"]["name"] == "resp_1:item_1:200:end"
        assert h.obs.drains.get(timeout=WAIT) == "empty"  # all sent, the end not yet heard
        h.sync()
        h.rt.emit(SPEECH_STARTED)
        h.twilio.expect("clear")
        truncate = h.rt.expect("conversation.item.truncate")
        # The last of the 10 frames was sent at the clear: 9 had played, 0 ms of the 10th.
        assert truncate["audio_end_ms"] == 180
        h.sync_tx()
        assert "response.cancel" not in h.rt.sent_types()


def test_speech_after_playback_fully_ended_does_not_clear_or_truncate():
    with running_call() as h:
        h.respond(ms=200)
        h.twilio.expect("media")
        h.tick(9)
        for name in ("resp_1:item_1:20", "resp_1:item_1:200:end"):
            h.echo_mark(name)
        assert h.obs.drains.get(timeout=WAIT) == "empty"
        h.sync()
        position = h.twilio.position()
        h.rt.sent_types()
        h.rt.emit(SPEECH_STARTED)
        h.rt.sync()
        h.sync_tx()
        assert "clear" not in h.twilio.events_since(position)
        assert "conversation.item.truncate" not in h.rt.sent_types()


def test_marks_echoed_by_clear_do_not_count_as_heard():
    with running_call() as h:
        h.respond(ms=1000, done=False)
        h.twilio.expect("media")
        h.tick(10)
        h.rt.emit(SPEECH_STARTED)
        h.twilio.expect("clear")
        h.echo_mark("resp_1:item_1:20")  # Twilio echoes pending marks after clear
        h.echo_mark("resp_1:item_1:220")
        h.sync()
        stats = h.call.stats()
        assert stats.heard_ms["item_1"] == 0
        assert not stats.unheard_audio


def test_one_response_at_a_time_defers_the_next_until_done():
    with running_call() as h:
        assert h.call.request_response("answer")
        assert not h.call.request_response("answer")
        assert h.rt.sent_types() == ["response.create"]
        h.respond("resp_1", "item_1", ms=100)
        assert h.rt.expect("response.create")["response"]["metadata"]["purpose"] == "answer"


def test_server_commit_without_local_speech_creates_no_response():
    with running_call() as h:
        h.rt.emit({"type": "input_audio_buffer.committed", "item_id": "u1"})
        h.rt.sync()
        assert "response.create" not in h.rt.sent_types()


def test_twilio_stop_ends_the_call_and_all_its_threads():
    with running_call() as h:
        h.respond(ms=500, done=False)
        h.twilio.push({"event": "stop", "stop": {"callSid": "CA00000001"}})
        assert h.call.closing.wait(WAIT)
    assert h.call.end_reason == "caller hung up (stop)"


def test_request_after_a_long_quiet_backend_is_not_taken_for_a_stall():
    with running_call(openai_stall_timeout_s=10.0) as h:
        h.respond("resp_1", "item_1", ms=100)
        h.rt.sync()
        h.clock.advance(12.0)  # a long answer plays on after the backend's last event
        h.sync()
        assert h.call.request_response("answer")
        h.sync()
        assert h.rt.sent_types() == ["response.create"]  # no reconnect, no new session


def test_reader_stays_prompt_when_a_long_answer_overflows_the_buffer():
    with running_call() as h:
        h.respond(ms=30_000, done=False)  # 1500 frames: 150 in the queue, the rest overflow
        h.twilio.expect("media")
        h.rt.sync()  # the reader handled all 300 deltas although the queue is full
        assert h.call.stats().overflow_frames > 0
        h.rt.emit(SPEECH_STARTED)
        h.rt.sync()  # handled at once: nothing waits for the overflow to drain
        h.twilio.expect("clear")
        clear_at = next(i for i, m in enumerate(h.twilio.history) if m["event"] == "clear")
        for _ in range(10):
            h.clock.advance(0.02)
        h.sync_tx()
        assert h.twilio.events_since(clear_at + 1) == []
        stats = h.call.stats()
        assert stats.queued_frames == 0 and stats.overflow_frames == 0


def test_server_barge_in_while_twilio_send_is_blocked_keeps_the_reader_reading():
    with running_call() as h:
        h.respond(ms=1000, done=False)
        h.twilio.expect("media")
        h.twilio.stall_all.set()
        h.clock.advance(0.02)  # the next frame's send blocks: Twilio takes nothing
        assert h.twilio.blocked.wait(WAIT)
        h.rt.emit(SPEECH_STARTED)
        h.deltas("resp_1", "item_1", 500)  # late audio of the cut-off response
        h.rt.emit({"type": "conversation.item.input_audio_transcription.completed",
                   "item_id": "u1", "transcript": "stop"})
        h.rt.sync()  # every event consumed while a Twilio send is stuck
        assert "clear" not in h.twilio.events_since(0)
        h.twilio.stall_all.clear()
        h.twilio.expect("clear")  # the tx thread sends it once the socket moves again
        assert h.rt.expect("conversation.item.truncate")["item_id"] == "item_1"
        h.rt.expect("response.cancel")
