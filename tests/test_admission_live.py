"""Admission in the app: /voice reserves, /healthz counts reservations, the stream that
claims one is admitted even while draining, and the instance prefix is part of the URL
a stream's signature is checked against."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hardening_live import RawTwilio, backend, connector, live_server, settings, wait_for
from twilio.request_validator import RequestValidator

from mediasrv.backends.realtime.client import RealtimeSocket
from mediasrv.clock import FakeClock
from mediasrv.errors import PeerClosed
from mediasrv.web.admission import RESERVATION_TTL_S
from mediasrv.web.app import create_app

TOKEN = "test-auth-token"  # a test value, not a credential
PUBLIC = "https://bridge.example.com"


def refused() -> RealtimeSocket:
    raise PeerClosed("no backend in this test")


def voice(app: Any, call_sid: str, query: str = "") -> str:
    resp = app.test_client().post("/voice" + query, data={"CallSid": call_sid})
    assert resp.status_code == 200
    return str(resp.get_data(as_text=True))


def ready(app: Any) -> tuple[int, dict[str, Any]]:
    resp = app.test_client().get("/healthz?ready=1")
    return resp.status_code, resp.get_json()


def test_a_burst_of_webhooks_never_promises_more_calls_than_fit() -> None:
    app = create_app(settings(max_calls=1), connect_realtime=refused)
    assert "<Stream" in voice(app, "CA1")
    assert '<Reject reason="busy"' in voice(app, "CA2")  # no stream has come yet: still full
    status, body = ready(app)
    assert status == 503 and (body["reserved_calls"], body["free_slots"]) == (1, 0)
    assert body["not_ready_because"] == ["at capacity: 0 calls and 1 reserved of MAX_CALLS=1 calls"]


def test_with_an_instance_path_a_full_instance_hands_off_instead_of_busy() -> None:
    app = create_app(settings(max_calls=1, instance_path="/i/a", public_url=PUBLIC),
                     connect_realtime=refused)
    assert 'url="wss://bridge.example.com/i/a/media"' in voice(app, "CA1")
    assert f"<Redirect method=\"POST\">{PUBLIC}/voice?handoff=1</Redirect>" in voice(app, "CA2")
    assert '<Reject reason="busy"' in voice(app, "CA2", "?handoff=2")  # BUSY_REDIRECTS=2
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "mediasrv_calls_handed_off_total 1.0" in metrics
    assert "mediasrv_calls_rejected_total 1.0" in metrics
    assert "mediasrv_reserved_calls 1.0" in metrics


def test_a_reservation_whose_stream_never_comes_frees_the_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    app = create_app(settings(max_calls=1), clock=clock, connect_realtime=refused)
    voice(app, "CA1")
    assert ready(app)[0] == 503
    clock.advance(RESERVATION_TTL_S)
    with caplog.at_level(logging.INFO, logger="mediasrv.web.admission"):
        status, body = ready(app)
    assert status == 200 and body["reserved_calls"] == 0
    assert "reservation for CA1 expired: no stream came within 10 s" in caplog.text


def upgrade_status(app: Any, signed_url: str) -> int:
    signature = RequestValidator(TOKEN).compute_signature(signed_url, {})
    resp = app.test_client().get("/media", headers={"X-Twilio-Signature": signature})
    return int(resp.status_code)


def test_the_stream_signature_is_checked_against_the_url_with_the_instance_path() -> None:
    s = settings(instance_path="/i/a", public_url=PUBLIC, twilio_auth_token=TOKEN)
    app = create_app(s, connect_realtime=refused)
    assert upgrade_status(app, "wss://bridge.example.com/media") == 403
    assert upgrade_status(app, "wss://bridge.example.com/i/a/media") != 403


def test_a_reserved_call_is_admitted_while_draining_and_an_unreserved_one_is_not() -> None:
    with backend() as b, live_server(settings(max_calls=2), connector(b)) as live:
        voice(live.app, "CA" + "1" * 32)
        live.registry().draining.set()  # shutdown began after the webhook was answered
        status, body = ready(live.app)
        assert status == 503 and body["reserved_calls"] == 1
        stranger = RawTwilio(live.ws_url, call_sid="CA" + "9" * 32).start()
        stranger.wait_closed()  # opened on the reservation's strength, refused at start
        stranger.close()
        reserved = RawTwilio(live.ws_url, call_sid="CA" + "1" * 32).start()
        wait_for(lambda: [c.call_sid for c in live.registry().active()] == ["CA" + "1" * 32],
                 "the reserved call started")
        reserved.stop()
        reserved.wait_closed()
        reserved.close()
        live.wait_active(0)
