"""MAX_CALLS and draining: /voice answers busy TwiML, /media refuses the upgrade, calls in
flight go on undisturbed."""

from __future__ import annotations

import logging
import threading

import pytest
import websocket
from hardening_live import RawTwilio, backend, connector, live_server, settings

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.script import CallerScript

BUSY = '<Response><Reject reason="busy" /></Response>'


def test_beyond_max_calls_voice_is_busy_media_is_refused_and_the_call_in_flight_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend() as b, live_server(settings(max_calls=1, greeting="Hello"), connector(b)) as live:
        script = CallerScript(bytes([0xFF]) * 8000 * 2)
        first = EmulatedCall(live.base, script, CallOptions(close_grace=1.0))
        runner = threading.Thread(target=first.run, args=(10.0,), name="test-first-call")
        runner.start()
        live.wait_active(1)
        client = live.app.test_client()
        voice = client.post("/voice", data={"CallSid": "CA2"})
        assert voice.status_code == 200 and BUSY in voice.get_data(as_text=True)
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            RawTwilio(live.ws_url)
        assert err.value.status_code == 503
        assert live.metrics.calls_rejected._value.get() == 2
        runner.join(15.0)
        assert not runner.is_alive()
        live.wait_active(0)
        voice = client.post("/voice", data={"CallSid": "CA3"})  # room again
        assert "<Connect>" in voice.get_data(as_text=True)
    summary = first.result().summary()
    assert summary["hangup"]["by"] == "caller"
    assert sum(summary["heard_ms_per_item"].values()) > 1000  # its greeting kept playing
    assert "reason=caller hung up (stop)" in caplog.text


def test_draining_refuses_new_calls() -> None:
    with backend() as b, live_server(settings(), connector(b)) as live:
        live.registry().draining.set()
        client = live.app.test_client()
        assert BUSY in client.post("/voice", data={"CallSid": "CA2"}).get_data(as_text=True)
        with pytest.raises(websocket.WebSocketBadStatusException):
            RawTwilio(live.ws_url)
        assert client.get("/healthz").get_json()["draining"] is True
