"""/healthz: liveness stays a plain 200; readiness (?ready=1) is 503 while draining or at
MAX_CALLS; the backend's reachability is the last connect outcome of a call."""

from __future__ import annotations

from typing import Any

import pytest
from hardening_live import RawTwilio, backend, connector, live_server, settings, wait_for

from mediasrv.backends.realtime.client import RealtimeSocket
from mediasrv.clock import FakeClock
from mediasrv.errors import PeerClosed
from mediasrv.web.app import create_app
from mediasrv.web.health import BackendHealth, readiness


def refused() -> RealtimeSocket:
    raise PeerClosed("realtime connect failed: ConnectionRefusedError: [Errno 111] refused")


def test_ready_unless_draining_or_full() -> None:
    assert readiness(draining=False, active=49, max_calls=50) == []
    assert readiness(draining=True, active=0, max_calls=50) == [
        "draining: shutting down, no new calls"]
    assert readiness(draining=False, active=50, max_calls=50) == [
        "at capacity: 50 of MAX_CALLS=50 calls"]


def test_backend_health_records_the_last_connect_outcome() -> None:
    clock = FakeClock(100.0)
    health = BackendHealth(clock)
    assert health.state().reachable is None
    with pytest.raises(PeerClosed):
        health.track(refused)()
    state = health.state()
    assert (state.reachable, state.checked_at) == (False, 100.0)
    assert state.error is not None and "refused" in state.error
    clock.advance(5.0)
    health.track(lambda: object())()  # type: ignore[arg-type, return-value]
    assert health.state() == type(state)(True, 105.0, None)


def healthz(app: Any, query: str = "") -> tuple[int, dict[str, Any]]:
    resp = app.test_client().get("/healthz" + query)
    return resp.status_code, resp.get_json()


def test_healthz_is_live_and_ready_with_the_backend_unknown_before_any_call() -> None:
    app = create_app(settings(), connect_realtime=refused)
    for query in ("", "?ready=1"):
        status, body = healthz(app, query)
        assert status == 200
        assert body["status"] == "ok" and body["ready"] is True
        assert body["not_ready_because"] == []
        assert (body["active_calls"], body["max_calls"]) == (0, 50)
        assert body["backend_reachable"] is None and body["backend_error"] is None


def test_the_end_of_turn_worker_is_counted_apart_from_call_threads() -> None:
    app = create_app(settings(turn_model="smart-turn"), connect_realtime=refused)
    threads = healthz(app)[1]["threads"]
    assert (threads["turn_model"], threads["call"]) == (1, 0)  # idle: no call thread


def test_draining_is_alive_but_not_ready() -> None:
    app = create_app(settings(), connect_realtime=refused)
    app.extensions["mediasrv"]["registry"].draining.set()
    assert healthz(app)[0] == 200  # a liveness probe must not restart a draining server
    status, body = healthz(app, "?ready=1")
    assert status == 503 and body["ready"] is False
    assert body["not_ready_because"] == ["draining: shutting down, no new calls"]


def test_full_is_not_ready_and_a_call_marks_the_backend_reachable() -> None:
    with backend() as b, live_server(settings(max_calls=1), connector(b)) as live:
        tw = RawTwilio(live.ws_url).start()
        live.wait_active(1)
        wait_for(lambda: healthz(live.app)[1]["backend_reachable"] is True, "connect recorded")
        status, body = healthz(live.app, "?ready=1")
        assert status == 503 and body["active_calls"] == 1
        assert body["not_ready_because"] == ["at capacity: 1 of MAX_CALLS=1 calls"]
        assert body["backend_checked_s_ago"] is not None
        tw.stop()
        tw.wait_closed()
        tw.close()
        live.wait_active(0)
        assert healthz(live.app, "?ready=1")[0] == 200


def test_a_failed_connect_marks_the_backend_unreachable_with_the_reason() -> None:
    with live_server(settings(), refused) as live:
        tw = RawTwilio(live.ws_url).start()
        wait_for(lambda: healthz(live.app)[1]["backend_reachable"] is False, "failure recorded")
        status, body = healthz(live.app)
        assert status == 200 and "refused" in body["backend_error"]
        tw.stop()
        tw.wait_closed()
        tw.close()
