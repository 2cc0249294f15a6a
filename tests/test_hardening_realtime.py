"""A bad or failing OpenAI side: malformed and stray events, errors, a socket that closes
or stalls mid-response, a handshake never answered, dead air, and a Twilio drop."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import WAIT, running_call
from hardening_live import (
    RawTwilio,
    backend,
    call_threads,
    connector,
    live_server,
    settings,
    wait_for,
    wait_logged,
)

from mediasrv.backends.realtime.client import Connector, RealtimeSocket, ws_connector
from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.script import CallerScript
from mediasrv.errors import PeerClosed

# --- fakes -----------------------------------------------------------------------------


def test_malformed_unknown_and_stray_events_are_dropped_and_the_next_response_plays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mediasrv")
    with running_call() as h:
        h.rt.to_client.put("{not json")
        h.rt.emit({"type": "response.output_audio.delta", "response_id": "r"})  # no delta
        h.rt.emit({"type": "response.brand_new_thing", "x": 1})  # unknown: ignored
        h.deltas("resp_unknown", "item_u", 200)  # a response we never saw created
        h.respond("resp_1", "item_1", ms=500, done=False)
        h.twilio.expect("media")
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.twilio.expect("clear")
        h.deltas("resp_1", "item_1", 300)  # deltas of the cancelled response
        h.rt.emit({"type": "error", "error": {"type": "invalid_request_error",
                                              "code": "response_cancel_not_active"}})
        h.rt.emit({"type": "error", "error": "not even an object"})
        h.rt.sync()
        position = h.twilio.position()
        h.respond("resp_2", "item_2", ms=200)  # the call still plays the next answer
        h.rt.sync()
        h.play(10)  # from the interrupted burst's next tick on
        h.sync_tx()
        assert h.twilio.events_since(position).count("media") == 10  # all 200 ms of it
        assert not h.call.closing.is_set()
    text = caplog.text
    assert "realtime event dropped: event is not json: dropped" in text
    assert "response.output_audio.delta: malformed (KeyError): dropped" in text
    assert "audio delta of resp_unknown dropped" in text
    assert "realtime error unknown" in text  # an error without an object is still logged
    assert "handler failed" not in text


def test_error_event_for_our_request_frees_the_next_request() -> None:
    with running_call() as h:
        assert h.call.request_response("answer")
        h.rt.expect("response.create")
        h.rt.emit({"type": "error", "error": {
            "type": "invalid_request_error", "code": "conversation_already_has_active_response",
            "message": "Conversation already has an active response",
            "event_id": "mediasrv_req_1"}})
        h.rt.sync()
        assert h.call.request_response("answer")  # not deferred forever behind a dead request
        h.rt.expect("response.create")


def test_dead_air_over_2_s_is_logged_once_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv.call")
    with running_call(openai_stall_timeout_s=60.0) as h:  # no reconnect within this test
        assert h.call.request_response("answer")
        h.sync()  # the watcher saw the wait begin
        h.clock.advance(1.5)
        h.sync()
        assert "[DEAD_AIR]" not in caplog.text
        h.clock.advance(0.6)
        wait_logged(caplog, "not answered by the backend yet", WAIT)
        h.rt.emit({"type": "response.created", "response": {"id": "resp_1"}})
        h.rt.sync()  # the same silence, a new reason: reported again
        wait_logged(caplog, "response resp_1 active but no audio from the backend yet", WAIT)
        h.clock.advance(5.0)
        h.sync()
        assert h.call.stats().dead_air_events == 2
    lines = [r.getMessage() for r in caplog.records if "[DEAD_AIR]" in r.getMessage()]
    assert len(lines) == 2  # once per silence and reason, not once per tick


def test_no_dead_air_while_audio_flows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv.call")
    with running_call() as h:
        h.respond("resp_1", "item_1", ms=3000, done=False)
        h.twilio.expect("media")
        h.tick(140)  # 2.8 s of frames leave, paced
        h.sync()
        assert h.call.stats().dead_air_events == 0
    assert "[DEAD_AIR]" not in caplog.text


def test_connect_times_out_on_a_server_that_never_answers_the_handshake() -> None:
    with backend(fault="no_handshake") as b:
        connect = ws_connector(b.url, "", 0.3)
        t0 = time.monotonic()
        with pytest.raises(PeerClosed, match=r"at 127\.0\.0\.1:\d+: no answer within 0\.3 s"):
            connect()
        assert time.monotonic() - t0 < WAIT  # a bound, not a speed: it did not hang


# --- the real server with a failing local backend --------------------------------------


class Recording:
    """A connector that records what the bridge sends, attempt by attempt."""

    def __init__(self, connectors: Sequence[Connector]) -> None:
        self._connectors = list(connectors)
        self.attempts: list[list[dict[str, Any]]] = []

    def __call__(self) -> RealtimeSocket:
        connect = self._connectors[min(len(self.attempts), len(self._connectors) - 1)]
        sent: list[dict[str, Any]] = []
        self.attempts.append(sent)
        return _RecordingSocket(connect(), sent)

    def session_updates(self) -> list[dict[str, Any]]:
        return [d for sent in self.attempts for d in sent if d["type"] == "session.update"]


class _RecordingSocket:
    def __init__(self, inner: RealtimeSocket, sent: list[dict[str, Any]]) -> None:
        self._inner, self._sent = inner, sent

    def send(self, text: str) -> None:
        self._sent.append(json.loads(text))
        self._inner.send(text)

    def recv(self) -> str | bytes | None:
        return self._inner.recv()

    def close(self) -> None:
        self._inner.close()


def silence(seconds: float) -> CallerScript:
    return CallerScript(bytes([0xFF]) * int(seconds * 8000))


def place(base: str, seconds: float) -> dict[str, Any]:
    call = EmulatedCall(base, silence(seconds), CallOptions(close_grace=1.0))
    return call.run(timeout=seconds + 10.0).summary()  # type: ignore[no-any-return]


def test_socket_closing_mid_response_reconnects_once_with_the_same_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="close_mid_response", fault_after_deltas=3) as flaky, backend() as b:
        rec = Recording([connector(flaky), connector(b)])
        with live_server(settings(greeting="Hello"), rec) as live:
            summary = place(live.base, 3.0)
            assert live.metrics.reconnects._value.get() == 1
        assert flaky.stats()["sessions_opened"] == b.stats()["sessions_opened"] == 1
    first, second = rec.session_updates()
    assert first == second  # same session settings after the reconnect
    # the greeting the lost session owed is asked for again on the new one
    assert [d["type"] for d in rec.attempts[1]].count("response.create") == 1
    assert summary["hangup"]["by"] == "caller"
    text = caplog.text
    assert "[BACKEND] connection lost" in text
    assert "[AI_TALK] local prompt one_moment" in text
    assert "[BACKEND] reconnected: session settings restored" in text


def test_failed_reconnect_plays_the_apology_then_hangs_up_after_it_is_heard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="close_mid_response", fault_after_deltas=3) as flaky, \
            backend(fault="no_handshake") as mute:
        rec = Recording([connector(flaky), ws_connector(mute.url, "", 0.5)])
        with live_server(settings(greeting="Hello"), rec) as live:
            summary = place(live.base, 20.0)
        assert mute.stats()["sessions_opened"] == 0
    assert summary["hangup"]["by"] == "server"
    heard = sum(summary["heard_ms_per_item"].values())
    assert heard >= 5000  # the apology (5.1 s) was heard before the hang-up
    text = caplog.text
    assert "[BACKEND] cannot connect to the backend at 127.0.0.1:" in text
    assert "[AI_TALK] local prompt apology" in text
    assert "call ended: reason=backend unavailable" in text
    assert "[BACKEND] hang_up (backend unavailable)" in text  # not a [SILENCE] hang-up
    assert "[SILENCE]" not in text


def test_stalled_socket_counts_as_lost_and_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="stall_mid_response", fault_after_deltas=3) as b:
        rec = Recording([connector(b)])
        with live_server(settings(greeting="Hello", openai_stall_timeout_s=0.5), rec) as live:
            summary = place(live.base, 3.0)
        assert b.stats()["sessions_opened"] == 2
    assert summary["hangup"]["by"] == "caller"
    assert "[BACKEND] connection lost: stalled: no event for 0.5 s" in caplog.text
    assert len(rec.session_updates()) == 2


def test_failed_response_is_logged_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="error_on_response") as b, \
            live_server(settings(greeting="Hello"), connector(b)) as live:
        summary = place(live.base, 1.5)
        # the server logs the end after the caller's side has seen it: wait for it
        wait_logged(caplog, "reason=caller hung up (stop)")
    assert summary["hangup"]["by"] == "caller"
    assert "done: failed" in caplog.text


def test_twilio_drop_ends_every_call_thread_and_closes_the_openai_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend() as b, live_server(settings(greeting="Hello"), connector(b)) as live:
        tw = RawTwilio(live.ws_url).start()
        wait_for(lambda: "[AUDIO_DONE]" in caplog.text, "greeting received, playing")
        names = call_threads(tw.call_sid)
        assert {n.split("-")[1] for n in names} == {"rt", "tx", "watch"}  # one of each
        assert b.stats()["sessions_active"] == 1
        t0 = time.monotonic()
        tw.drop()
        wait_for(lambda: not call_threads(tw.call_sid) and b.stats()["sessions_active"] == 0
                 and live.active() == 0, "threads ended and the OpenAI socket closed")
        elapsed = time.monotonic() - t0
        tw.close()
    assert "did not end within 1 s" not in caplog.text
    assert "reason=twilio socket closed" in caplog.text
    print(f"twilio drop -> all call threads ended, backend session closed: {elapsed:.3f} s")
