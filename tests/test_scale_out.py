"""Two `gunicorn -c gunicorn.conf.py` instances behind a proxy, calls placed by the
Twilio emulator following the TwiML it gets: admission holds across instances.

Instance a has room for 1 call, b for 2; the proxy (tests/proxy.py, what nginx does in
deploy/nginx/nginx.conf) sends /voice round robin, a first, and /i/<name>/media to
instance <name>'s /media. Signatures are on, so every stream also proves that the
instance checks the URL Twilio signed, prefix included.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy import Proxy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soak import ServerProcess  # noqa: E402

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.metrics import CallResult  # noqa: E402
from mediasrv.emulator.script import CallerScript  # noqa: E402

PUBLIC_URL = "https://bridge.test"
TOKEN = "test-auth-token"  # a test value, not a credential
HANDOFFS = 3
ENV = {"GREETING": "", "SILENCE_TIMEOUT_S": "3600", "PUBLIC_URL": PUBLIC_URL,
       "TWILIO_AUTH_TOKEN": TOKEN, "BUSY_REDIRECTS": str(HANDOFFS)}
CAPACITY = {"a": 1, "b": 2}
BOUND = 10.0


@pytest.fixture(scope="module")
def instances() -> Iterator[dict[str, ServerProcess]]:
    servers = {name: ServerProcess({**ENV, "INSTANCE_PATH": f"/i/{name}",
                                    "MAX_CALLS": str(cap)})
               for name, cap in CAPACITY.items()}
    try:
        for srv in servers.values():
            srv.start()
        yield servers
    finally:
        for srv in servers.values():
            srv.close()


@pytest.fixture
def proxy(instances: dict[str, ServerProcess]) -> Iterator[Proxy]:
    """A fresh proxy (round robin from a) per test; every call is gone afterwards."""
    with Proxy({name: srv.port for name, srv in instances.items()}) as p:
        yield p
    for srv in instances.values():
        wait_health(srv, lambda h: h["active_calls"] == 0 and h["reserved_calls"] == 0)


def wait_health(srv: ServerProcess, pred: Any, bound: float = BOUND) -> dict[str, Any]:
    deadline = time.monotonic() + bound
    health = srv.get("/healthz")
    while not pred(health):
        assert time.monotonic() < deadline, f"healthz never as expected: {health}"
        time.sleep(0.05)
        health = srv.get("/healthz")
    return health


class Calls:
    """Calls placed through the proxy; all hung up at the end of the test."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.placed: list[EmulatedCall] = []

    def place(self, *, connects: bool = True) -> EmulatedCall:
        """Place a call: webhook(s), then the stream, connected (or refused) on return."""
        options = CallOptions(auth_token=TOKEN, public_url=PUBLIC_URL, close_grace=1.0)
        call = EmulatedCall(self.proxy.base_url, CallerScript(b"\xff" * 8000 * 60), options)
        self.placed.append(call)
        assert call.start() is connects
        return call

    def hang_up(self, call: EmulatedCall) -> CallResult:
        call.hangup()
        assert call.wait(BOUND)
        return call.result()

    def hang_up_all(self) -> list[CallResult]:
        return [self.hang_up(call) for call in self.placed]


@pytest.fixture
def calls(proxy: Proxy) -> Iterator[Calls]:
    c = Calls(proxy)
    try:
        yield c
    finally:
        c.hang_up_all()


def redirects(result: CallResult) -> list[str]:
    return [e.detail for e in result.timeline if e.event == "redirect"]


def test_a_full_instance_hands_the_call_to_the_one_with_room(
    instances: dict[str, ServerProcess], calls: Calls, proxy: Proxy
) -> None:
    calls.place()
    calls.place()
    calls.place()
    assert proxy.voice_routes == ["a", "b", "a", "b"]  # the third went to a, which was full
    a = wait_health(instances["a"], lambda h: h["active_calls"] == 1)
    b = wait_health(instances["b"], lambda h: h["active_calls"] == 2)
    assert (a["reserved_calls"], b["reserved_calls"]) == (0, 0)  # every reservation claimed
    assert "mediasrv_calls_handed_off_total 1.0" in instances["a"].text("/metrics")
    first, second, third = calls.hang_up_all()
    assert first.stream_url == "wss://bridge.test/i/a/media"
    assert second.stream_url == "wss://bridge.test/i/b/media"
    assert third.stream_url == "wss://bridge.test/i/b/media"
    assert redirects(first) == redirects(second) == []
    assert redirects(third) == [f"{PUBLIC_URL}/voice?handoff=1"]
    assert all(r.hangup_by == "caller" for r in (first, second, third))  # served to the end


def test_busy_only_when_every_instance_is_full_and_a_freed_slot_is_found(
    instances: dict[str, ServerProcess], calls: Calls, proxy: Proxy
) -> None:
    on_a = calls.place()
    calls.place()
    calls.place()  # a: 1 of 1, b: 2 of 2
    refused = calls.place(connects=False).result()
    assert refused.error == "call rejected: busy"
    assert len(redirects(refused)) == HANDOFFS  # a, b, a, b asked: busy only then
    calls.hang_up(on_a)
    wait_health(instances["a"], lambda h: h["free_slots"] == 1)
    late = calls.place()
    assert calls.hang_up(late).stream_url == "wss://bridge.test/i/a/media"
