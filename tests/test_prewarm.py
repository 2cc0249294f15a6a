"""Pre-warm: the ledger of waiting sessions (pure), the event switch, the hand-over."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fakes import WAIT

from mediasrv.backends import base
from mediasrv.call.core import NO_BACKEND
from mediasrv.call.observer import CallLog
from mediasrv.clock import ManualClock
from mediasrv.web.prewarm import EventSwitch, Prewarm, PrewarmLedger

LOG = CallLog(logging.getLogger("mediasrv.test"), {"call_sid": "CA1"})


def test_a_session_waits_until_claimed_or_its_timeout() -> None:
    ledger = PrewarmLedger(capacity=2, timeout_s=10.0)
    assert ledger.add("CA1", now=0.0) is None
    assert ledger.add("CA1", now=1.0) == "already pre-warmed"
    assert ledger.add("CA2", now=5.0) is None
    assert ledger.add("CA3", now=5.0) == "2 sessions already wait (MAX_CALLS)"
    assert ledger.claim("CA2") and not ledger.claim("CA2")
    assert ledger.next_deadline() == 10.0
    assert ledger.expired(9.9) == [] and ledger.expired(10.0) == ["CA1"]
    assert len(ledger) == 0 and ledger.next_deadline() is None


def test_events_before_the_call_attaches_are_replayed_in_order_then_forwarded() -> None:
    switch, got = EventSwitch(LOG), []
    switch(base.SessionReady(resumed=False))
    switch(base.ResponseCreated("resp_x"))
    switch.attach(got.append)
    switch(base.ResponseDone("resp_x", "completed", ""))
    assert got == [base.SessionReady(False), base.ResponseCreated("resp_x"),
                   base.ResponseDone("resp_x", "completed", "")]


class FakeBackend:
    def __init__(self, events: base.EventSink, closing: threading.Event) -> None:
        self.events, self.closing = events, closing
        self.started = threading.Event()
        self.closed = threading.Event()
        self.connected = False

    def start(self) -> None:
        self.started.set()
        self.events(base.SessionReady(resumed=False))

    def close(self, timeout: float) -> list[str]:
        self.closed.set()
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(NO_BACKEND, name)


class Opener:
    def __init__(self) -> None:
        self.made: list[tuple[str, FakeBackend]] = []

    def __call__(self, events: base.EventSink, *, closing: threading.Event, name: str,
                 logger: CallLog, call_sid: str) -> Any:
        backend = FakeBackend(events, closing)
        self.made.append((call_sid, backend))
        return backend


def test_the_stream_of_a_prewarmed_call_gets_its_session_and_what_it_said() -> None:
    opener, clock = Opener(), ManualClock()
    prewarm = Prewarm(opener, timeout_s=10.0, capacity=5, clock=clock)
    prewarm.open("CA1")
    [(sid, backend)] = opener.made
    assert sid == "CA1" and backend.started.is_set()  # dialled at /voice
    got: list[base.BackendEvent] = []
    claimed = prewarm.open_backend(got.append, closing=threading.Event(), name="n",
                                   logger=LOG, call_sid="CA1")
    assert got == [] and prewarm.pending() == 0
    claimed.start()  # the call's start: what the session said meanwhile reaches it
    assert got == [base.SessionReady(resumed=False)] and len(opener.made) == 1
    prewarm.close()
    assert not backend.closed.is_set()  # the call owns it now


def test_a_stream_of_another_call_dials_its_own_session() -> None:
    opener = Opener()
    prewarm = Prewarm(opener, timeout_s=10.0, capacity=5, clock=ManualClock())
    prewarm.open_backend(lambda ev: None, closing=threading.Event(), name="n", logger=LOG,
                         call_sid="CA9")
    assert [sid for sid, _ in opener.made] == ["CA9"]


def test_a_session_nobody_claims_is_closed_at_its_timeout() -> None:
    opener, clock = Opener(), ManualClock()
    prewarm = Prewarm(opener, timeout_s=10.0, capacity=5, clock=clock)
    prewarm.open("CA1")
    [(_, backend)] = opener.made
    clock.advance(9.9)
    assert prewarm.pending() == 1
    clock.advance(0.2)
    assert backend.closed.wait(WAIT) and backend.closing.is_set()
    assert prewarm.pending() == 0
    prewarm.close()  # joins the reaper, which ended with nothing left to wait for
