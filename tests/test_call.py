"""Thread-level tests of one call: fake sockets, a manual clock, bounded waits."""

import queue
import threading

import pytest
from fakes import WAIT, running_call


def drain_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mediasrv-drain")]


def test_speaking_stays_set_while_queues_drain_and_clears_when_empty():
    with running_call() as h:
        h.respond(ms=200)  # 10 frames; the backend says done long before they play
        h.twilio.expect("media")
        h.tick(5)
        with pytest.raises(queue.Empty):
            h.obs.drains.get(timeout=0.2)
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
        with pytest.raises(queue.Empty):
            h.obs.drains.get(timeout=0.2)
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
        with pytest.raises(queue.Empty):
            h.obs.drains.get(timeout=0.3)
        assert h.call.is_ai_speaking.is_set()


def test_duplicate_done_events_start_one_watcher():
    with running_call() as h:
        h.twilio.stall_media.set()
        h.respond(ms=300)
        h.finish("resp_1", "item_1")
        h.finish("resp_1", "item_1")
        h.rt.sync()
        with pytest.raises(queue.Empty):
            h.obs.drains.get(timeout=0.3)
        assert len(drain_threads()) == 1


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
        h.twilio.since(0)
        h.order.clear()
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1",
                   "audio_start_ms": 5000})
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
        assert [m["event"] for m in h.twilio.since(after_clear)] == []


def test_no_frame_of_a_cancelled_response_reaches_twilio_after_clear():
    with running_call() as h:
        h.respond(ms=2000, done=False)  # 3 s of frames fill tx_q; the rest waits upstream
        h.twilio.expect("media")
        h.tick(3)
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.twilio.expect("clear")
        clear_at = next(i for i, m in enumerate(h.twilio.history) if m["event"] == "clear")
        for _ in range(20):
            h.clock.advance(0.02)
        assert [m["event"] for m in h.twilio.since(clear_at + 1)] == []
        assert h.call.tx_q.qsize() == 0 and h.call.audio_out_q.qsize() == 0


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
        h.twilio.since(0)
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.twilio.expect("clear")
        truncate = h.rt.expect("conversation.item.truncate")
        # The last of the 10 frames was sent at the clear: 9 had played, 0 ms of the 10th.
        assert truncate["audio_end_ms"] == 180
        assert "response.cancel" not in h.rt.sent_types()


def test_speech_after_playback_fully_ended_does_not_clear_or_truncate():
    with running_call() as h:
        h.respond(ms=200)
        h.twilio.expect("media")
        h.tick(9)
        for name in ("resp_1:item_1:20", "resp_1:item_1:200:end"):
            h.echo_mark(name)
        assert h.obs.drains.get(timeout=WAIT) == "empty"
        position = h.twilio.since(0) and h.twilio.position()
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.rt.sync()
        assert "clear" not in [m["event"] for m in h.twilio.since(position)]
        assert "conversation.item.truncate" not in h.rt.sent_types()


def test_marks_echoed_by_clear_do_not_count_as_heard():
    with running_call() as h:
        h.respond(ms=1000, done=False)
        h.twilio.expect("media")
        h.tick(10)
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.twilio.expect("clear")
        h.echo_mark("resp_1:item_1:20")  # Twilio echoes pending marks after clear
        h.echo_mark("resp_1:item_1:220")
        h.twilio.since(0)
        h.rt.sync()
        assert h.call.playback.items["item_1"].heard_ms == 0
        assert not h.call.playback.has_unheard()


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
        assert h.call.request_response("answer")
        assert h.rt.sent_types(quiet=0.5) == ["response.create"]  # no reconnect


def test_reader_stays_prompt_when_a_long_answer_overflows_both_queues():
    with running_call() as h:
        h.respond(ms=30_000, done=False)  # 300 deltas: 3 s in tx_q, 150 deltas queued, rest backlog
        h.twilio.expect("media")
        h.rt.sync()  # the reader handled all 300 deltas although the queues are full
        assert len(h.call._backlog) > 0  # only used once audio_out_q is full
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.rt.sync()  # handled at once: nothing waits for the backlog to drain
        clear_at = next(i for i, m in enumerate(h.twilio.history) if m["event"] == "clear")
        for _ in range(10):
            h.clock.advance(0.02)
        assert [m["event"] for m in h.twilio.since(clear_at + 1)] == []
        assert len(h.call._backlog) == 0 and h.call.audio_out_q.qsize() == 0
