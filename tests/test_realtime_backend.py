"""The Realtime API behind the seam: events translated, requests refused by name, one
reconnect with the same session settings, then giving up. Fake sockets, bounded waits."""

from __future__ import annotations

import queue
import threading

from fakes import WAIT, FakeRealtime

from mediasrv.backends import base
from mediasrv.backends.realtime.backend import RealtimeBackend, RealtimeConfig
from mediasrv.backends.realtime.client import RealtimeSocket
from mediasrv.errors import ConnectFailed

CONFIG = RealtimeConfig(model="m", instructions="be brief", voice="v")


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue[base.BackendEvent] = queue.Queue()

    def __call__(self, ev: base.BackendEvent) -> None:
        self.q.put(ev)

    def next(self) -> base.BackendEvent:
        return self.q.get(timeout=WAIT)


def opened(connect, events: Events) -> RealtimeBackend:  # type: ignore[no-untyped-def]
    backend = RealtimeBackend(connect, CONFIG, events, closing=threading.Event(),
                              name="mediasrv-rt-test")
    backend.start()
    return backend


def test_events_are_translated_and_a_refused_request_is_named() -> None:
    rt, events = FakeRealtime([]), Events()
    backend = opened(lambda: rt, events)
    try:
        assert events.next() == base.SessionReady(resumed=False)
        assert rt.expect("session.update")["session"]["instructions"] == "be brief"
        assert backend.request_response("req_7", "answer", "")
        rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        rt.emit({"type": "error", "error": {"code": "conversation_already_has_active_response",
                                            "message": "busy"}})
        assert events.next() == base.CallerSpeechStarted("u1")
        error = events.next()
        assert isinstance(error, base.BackendError) and error.request_id == "req_7"
    finally:
        assert backend.close(WAIT) == []


def test_a_lost_connection_is_dialled_once_more_then_given_up() -> None:
    rt, events, dials = FakeRealtime([]), Events(), []

    def connect() -> RealtimeSocket:
        dials.append(1)
        if len(dials) == 1:
            return rt
        raise ConnectFailed("cannot connect to the backend at x: refused")

    backend = opened(connect, events)
    try:
        assert events.next() == base.SessionReady(resumed=False)
        rt.close()  # the socket goes away mid-call
        lost = events.next()
        assert isinstance(lost, base.ConnectionLost) and lost.retrying
        final = events.next()
        assert final == base.ConnectionLost("cannot connect to the backend at x: refused",
                                            retrying=False)
        assert not backend.connected and len(dials) == 2
    finally:
        assert backend.close(WAIT) == []


def test_a_reconnect_restores_the_same_session_settings() -> None:
    first, second, events = FakeRealtime([]), FakeRealtime([]), Events()
    sockets = iter([first, second])
    backend = opened(lambda: next(sockets), events)
    try:
        assert events.next() == base.SessionReady(resumed=False)
        backend.reconnect("stalled")  # the call judged it dead
        assert isinstance(events.next(), base.ConnectionLost)
        assert events.next() == base.SessionReady(resumed=True)
        assert first.expect("session.update") == second.expect("session.update")
    finally:
        assert backend.close(WAIT) == []


TOOL = base.ToolSpec("end_call", "End the call.", {"type": "object", "properties": {}})


def test_tools_are_offered_and_a_turns_calls_come_before_its_response_done() -> None:
    rt, events = FakeRealtime([]), Events()
    backend = RealtimeBackend(lambda: rt, RealtimeConfig("m", "i", "v", tools=(TOOL,)),
                              events, closing=threading.Event(), name="mediasrv-rt-test")
    backend.start()
    try:
        assert events.next() == base.SessionReady(resumed=False)
        assert [t["name"] for t in rt.expect("session.update")["session"]["tools"]] == \
            ["end_call"]
        item = {"id": "item_1", "type": "function_call", "call_id": "call_1",
                "name": "end_call", "arguments": ""}
        rt.emit({"type": "response.output_item.added", "response_id": "resp_1", "item": item})
        rt.emit({"type": "response.function_call_arguments.done", "response_id": "resp_1",
                 "item_id": "item_1", "call_id": "call_1", "arguments": '{"reason":"bye"}'})
        rt.emit({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}})
        ready = events.next()
        assert isinstance(ready, base.ToolCallsReady) and ready.response_id == "resp_1"
        assert [(c.call_id, c.name, c.arguments, c.complete) for c in ready.calls] == \
            [("call_1", "end_call", '{"reason":"bye"}', True)]
        assert events.next() == base.ResponseDone("resp_1", "completed", "")
    finally:
        assert backend.close(WAIT) == []


def test_a_tool_result_and_a_caller_text_go_out_as_conversation_items() -> None:
    rt, events = FakeRealtime([]), Events()
    backend = opened(lambda: rt, events)
    try:
        assert events.next() == base.SessionReady(resumed=False)
        assert backend.tool_result("call_1", '{"ok":true}')
        assert backend.caller_text("The caller pressed 1 #")
        first, second = rt.expect("conversation.item.create"), rt.expect(
            "conversation.item.create")
        assert first["item"]["type"] == "function_call_output"
        assert second["item"]["content"][0]["text"] == "The caller pressed 1 #"
    finally:
        assert backend.close(WAIT) == []
