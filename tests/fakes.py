"""Hand-written fakes for thread-level call tests: Twilio socket, Realtime socket.

Absence is proved with barriers, never by waiting out a quiet window: `Harness.sync()`
returns once the Realtime reader has handled every event emitted so far, the tx thread
everything queued before it, and the watcher has ticked after both. What has not been
sent by then was not going to be sent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from timing import bound

from mediasrv.call import Call, CallDeps
from mediasrv.call.observer import NullObserver, Observer
from mediasrv.clock import Clock, ManualClock
from mediasrv.errors import PeerClosed
from mediasrv.web.settings import Settings, load_settings
from mediasrv.web.wiring import call_config, realtime_backend

_CLOSE = object()
WAIT = bound(5.0)  # bound on every wait in these tests (met at once when all is well; 2 s was
# exceeded by a tx thread on a machine at load 15)


class FakeTwilio:
    def __init__(self, order: list[tuple[str, str]]) -> None:
        self.inbound: queue.Queue[Any] = queue.Queue()
        self.order = order
        self.history: list[dict[str, Any]] = []
        self._cursor: dict[str, int] = {}
        self._changed = threading.Condition()
        self.closed = threading.Event()
        self.stall_media = threading.Event()  # set: media sends block (a stalled socket)
        self.stall_all = threading.Event()  # set: every send blocks (a socket gone quiet)
        self.blocked = threading.Event()  # a send is blocked on a stall right now

    def receive(self, timeout: float) -> str | None:
        try:
            item = self.inbound.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSE:
            self.closed.set()
            raise PeerClosed("fake twilio closed")
        if isinstance(item, threading.Event):
            item.set()  # the rx loop is sequential: every earlier message has been handled
            return None
        return item  # type: ignore[no-any-return]

    def sync(self) -> None:
        """Wait until the call's rx loop has handled every message pushed so far."""
        done = threading.Event()
        self.inbound.put(done)
        assert done.wait(WAIT), "rx loop did not catch up"

    def send(self, text: str) -> None:
        doc = json.loads(text)
        while (self.stall_all.is_set() or (doc["event"] == "media" and self.stall_media.is_set())
               ) and not self.closed.is_set():
            self.blocked.set()
            self.closed.wait(0.01)
        self.blocked.clear()
        self.order.append(("twilio", doc["event"]))
        with self._changed:
            self.history.append(doc)
            self._changed.notify_all()

    def push(self, doc: dict[str, Any]) -> None:
        self.inbound.put(json.dumps(doc))

    def hang_up(self) -> None:
        self.inbound.put(_CLOSE)

    def expect(self, event: str, timeout: float = WAIT) -> dict[str, Any]:
        """Return the next sent message of this event type (each type has its own cursor)."""
        with self._changed:
            start = self._cursor.get(event, 0)
            while True:
                for i in range(start, len(self.history)):
                    if self.history[i]["event"] == event:
                        self._cursor[event] = i + 1
                        return self.history[i]
                start = len(self.history)
                if not self._changed.wait(timeout):
                    raise queue.Empty(f"no {event} sent within {timeout} s")

    def events_since(self, position: int) -> list[str]:
        """Return the event types sent after `position` in history (after a barrier)."""
        with self._changed:
            return [doc["event"] for doc in self.history[position:]]

    def position(self) -> int:
        with self._changed:
            return len(self.history)


class FakeRealtime:
    def __init__(self, order: list[tuple[str, str]]) -> None:
        self.to_client: queue.Queue[Any] = queue.Queue()
        self.from_client: queue.Queue[dict[str, Any]] = queue.Queue()
        self.order = order

    def send(self, text: str) -> None:
        doc = json.loads(text)
        self.order.append(("realtime", doc["type"]))
        self.from_client.put(doc)

    def recv(self) -> str | None:
        try:
            item = self.to_client.get(timeout=0.05)
        except queue.Empty:
            return None
        if item is _CLOSE:
            raise PeerClosed("fake realtime closed")
        if isinstance(item, threading.Event):
            item.set()  # the reader is sequential: every earlier event has been handled
            return None
        return item  # type: ignore[no-any-return]

    def sync(self) -> None:
        """Wait until the call has handled every event emitted so far."""
        done = threading.Event()
        self.to_client.put(done)
        assert done.wait(WAIT), "realtime reader did not catch up"

    def close(self) -> None:
        self.to_client.put(_CLOSE)

    def emit(self, doc: dict[str, Any]) -> None:
        self.to_client.put(json.dumps(doc))

    def expect(self, etype: str, timeout: float = WAIT) -> dict[str, Any]:
        while True:
            doc = self.from_client.get(timeout=timeout)
            if doc["type"] == etype:
                return doc

    def sent_types(self) -> list[str]:
        """Return the types of what the call sent since the last look (after a barrier)."""
        out = []
        while True:
            try:
                out.append(self.from_client.get_nowait()["type"])
            except queue.Empty:
                return out


class RecordingObserver(NullObserver):
    def __init__(self) -> None:
        self.drains: queue.Queue[str] = queue.Queue()

    def drain(self, outcome: str) -> None:
        self.drains.put(outcome)


class Harness:
    def __init__(self, call: Call, twilio: FakeTwilio, rt: FakeRealtime, clock: ManualClock,
                 obs: RecordingObserver, order: list[tuple[str, str]]) -> None:
        self.call, self.twilio, self.rt, self.clock, self.obs, self.order = (
            call, twilio, rt, clock, obs, order)

    def sync(self) -> None:
        """Barrier: the rx loop, the reader and then the watcher have caught up with now."""
        self.twilio.sync()
        self.rt.sync()
        assert self.call.watcher_synced(WAIT), "the watcher did not tick"

    def sync_tx(self) -> None:
        """Barrier: the tx thread has handled everything queued so far (nothing paced may
        be queued: the manual clock would have to release it first)."""
        assert self.call.tx_synced(WAIT), "the tx thread did not catch up"

    def drains(self) -> list[str]:
        """Return the drain outcomes reported so far (after a barrier)."""
        out = []
        while not self.obs.drains.empty():
            out.append(self.obs.drains.get_nowait())
        return out

    def tick(self, frames: int = 1) -> list[dict[str, Any]]:
        """Release `frames` 20 ms ticks of the tx loop; return the media sent."""
        sent = []
        for _ in range(frames):
            self.clock.advance(0.02)
            sent.append(self.twilio.expect("media"))
        return sent

    def play(self, ticks: int) -> list[str]:
        """Release `ticks` 20 ms ticks of the tx loop, each once it has been used (a frame
        sent or an underrun counted); return the events sent meanwhile."""
        position = self.twilio.position()
        for _ in range(ticks):
            before = (self.twilio.position(), self.call.stats().tx_underruns)
            self.clock.advance(0.02)
            wait_for(lambda b=before: (self.twilio.position(), self.call.stats().tx_underruns)
                     != b, "the tx loop used the tick")
        return self.twilio.events_since(position)

    def respond(self, rid: str = "resp_1", item: str = "item_1", ms: int = 1000,
                done: bool = True) -> None:
        """Play the backend's side of one response with `ms` of audio; return once the
        call has queued all of it."""
        self.rt.emit({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        self.deltas(rid, item, ms)
        if done:
            self.finish(rid, item)
        self.rt.sync()

    def deltas(self, rid: str, item: str, ms: int) -> None:
        """Emit `ms` of audio in 100 ms deltas; return once the call has queued all of it.

        The barrier matters to `tick`: a tick released while the reader is still framing a
        delta finds the buffer empty and is spent as an underrun, and the frame the test
        then waits for is never released (seen in CI on a loaded machine)."""
        for _ in range(ms // 100):
            self.rt.emit({"type": "response.output_audio.delta", "response_id": rid,
                          "item_id": item, "output_index": 0, "content_index": 0,
                          "delta": b64encode(b"\x55" * 800).decode()})
        self.rt.sync()

    def finish(self, rid: str, item: str) -> None:
        self.rt.emit({"type": "response.output_audio.done", "response_id": rid, "item_id": item})
        self.rt.emit({"type": "response.done", "response": {"id": rid, "status": "completed"}})

    def echo_mark(self, name: str) -> None:
        self.twilio.push({"event": "mark", "streamSid": "MZ1", "mark": {"name": name}})


def wait_for(done: Callable[[], bool], what: str, bound: float = WAIT) -> None:
    """Wait until `done()` (a positive wait, bounded; polls every 5 ms)."""
    deadline = time.monotonic() + bound
    while not done():
        assert time.monotonic() < deadline, f"not within {bound} s: {what}"
        time.sleep(0.005)


def start_msg(call_sid: str = "CA00000001") -> dict[str, Any]:
    return {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
            "start": {"streamSid": "MZ1", "accountSid": "AC1", "callSid": call_sid,
                      "tracks": ["inbound"], "customParameters": {},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}


def call_deps(settings: Settings, clock: Clock, rt: FakeRealtime,
              observer: Observer | None = None, **deps: Any) -> CallDeps:
    """Return a call's dependencies as the app builds them, with `rt` as its backend socket
    (and `deps` for the fields the app would fill from other settings: turn_checks, tools,
    REST...)."""
    tools = deps["tools"].specs() if "tools" in deps else ()
    return CallDeps(call_config(settings), clock, realtime_backend(lambda: rt, settings, tools),
                    observer=observer or NullObserver(), **deps)


def call_settings(**overrides: Any) -> Settings:
    return load_settings({}, **{"greeting": "", "prebuffer_ms": 0, "tx_lead_ms": 20,
                                "silence_timeout_s": 3600.0,
                                "turn_detection": "server", **overrides})


@contextmanager
def running_call(deps: dict[str, Any] | None = None, **overrides: Any):  # type: ignore[no-untyped-def]
    """Run a call on fakes; `overrides` are settings, `deps` extra CallDeps fields."""
    order: list[tuple[str, str]] = []
    clock = ManualClock()
    twilio, rt, obs = FakeTwilio(order), FakeRealtime(order), RecordingObserver()
    call = Call(twilio, call_deps(call_settings(**overrides), clock, rt, obs, **(deps or {})))
    rx = threading.Thread(target=call.run, name="mediasrv-test-rx")
    rx.start()
    twilio.push({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    twilio.push(start_msg())
    try:
        rt.expect("session.update")
        # The stream opens with a round-trip probe (nothing plays yet): the marks a test
        # expects are its responses' (tests/test_call.py checks the probe itself).
        assert twilio.expect("mark")["mark"]["name"] == "rtt-probe-1"
        yield Harness(call, twilio, rt, clock, obs, order)
    finally:
        twilio.stall_media.clear()
        twilio.stall_all.clear()
        twilio.hang_up()
        rx.join(timeout=WAIT)


@contextmanager
def root_logging_restored() -> Iterator[None]:
    """Let a test reconfigure the root logger; put its handlers and level back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
