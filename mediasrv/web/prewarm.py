"""Pre-warm: `/voice` opens its call's AI session, so the greeting starts with the stream.

Layer: web.

A real backend takes about a second to dial and configure (the Realtime handshake); if
that starts only when the media stream does, every caller hears a second of silence
first. So when `/voice` has reserved a slot for a CallSid (admission.py), a backend is
made and started for it here, with the call's settings; its events wait in an
`EventSwitch` until the call exists. When that call's stream starts, `open_backend`
hands the session over: the call's `start()` replays what arrived meanwhile
(`SessionReady`, or a loss and its retry) and from then on events go straight to the
call -- the greeting request goes out at once.

Bounded: a session not claimed within PREWARM_TIMEOUT_S is closed (the caller hung up
while it rang, or the stream reached another worker process, which simply dials its
own), and at most MAX_CALLS wait at once. The one thread "mediasrv-prewarm" sleeps
until the next deadline, closes what expired, and ends when nothing waits.

`PrewarmLedger` decides (pure, `now` as an argument); `Prewarm` is the shell.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from mediasrv.backends.base import Backend, BackendEvent, EventSink
from mediasrv.call.core import NO_BACKEND, OpenBackend
from mediasrv.call.observer import CallLog
from mediasrv.clock import Clock

log = logging.getLogger(__name__)
call_log = logging.getLogger("mediasrv.call")

MAX_BUFFERED = 64  # events before the call claims its session: a handful, bounded anyway
_CLOSE_S = 1.0


class PrewarmLedger:
    """Which call sids have a session waiting, until when. Pure."""

    def __init__(self, capacity: int, timeout_s: float) -> None:
        self.capacity = capacity
        self.timeout_s = timeout_s
        self._until: dict[str, float] = {}

    def add(self, call_sid: str, now: float) -> str | None:
        """Reserve a waiting session for `call_sid`; return why not, or None."""
        if call_sid in self._until:
            return "already pre-warmed"
        if len(self._until) >= self.capacity:
            return f"{len(self._until)} sessions already wait (MAX_CALLS)"
        self._until[call_sid] = now + self.timeout_s
        return None

    def claim(self, call_sid: str) -> bool:
        """The call's stream started: its session is no longer waiting."""
        return self._until.pop(call_sid, None) is not None

    def expired(self, now: float) -> list[str]:
        """Return (and forget) the sids whose sessions waited too long."""
        gone = [sid for sid, until in self._until.items() if until <= now]
        for sid in gone:
            del self._until[sid]
        return gone

    def next_deadline(self) -> float | None:
        return min(self._until.values(), default=None)

    def __len__(self) -> int:
        return len(self._until)


class EventSwitch:
    """Holds a session's events until the call attaches its sink, then forwards them."""

    def __init__(self, logger: CallLog) -> None:
        self._log = logger
        self._lock = threading.Lock()  # guards _sink and _held; never held while delivering
        self._sink: EventSink | None = None
        self._held: list[BackendEvent] = []

    def __call__(self, ev: BackendEvent) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                if len(self._held) < MAX_BUFFERED:
                    self._held.append(ev)
                else:
                    self._log.warning("pre-warmed session: event dropped (%d held)",
                                      MAX_BUFFERED)
                return
        sink(ev)

    def attach(self, sink: EventSink) -> None:
        """Replay what was held, in order, then forward everything to `sink`."""
        while True:
            with self._lock:
                held, self._held = self._held, []
                if not held:
                    self._sink = sink
                    return
            for ev in held:  # an event arriving meanwhile is held, and replayed next round
                sink(ev)


class _Claimed:
    """A pre-warmed backend, handed to its call: `start()` attaches the call's events."""

    def __init__(self, backend: Backend, switch: EventSwitch, events: EventSink) -> None:
        self._backend = backend
        self._switch = switch
        self._events = events

    @property
    def connected(self) -> bool:
        return self._backend.connected

    @property
    def waiting_for(self) -> str:
        return self._backend.waiting_for

    def start(self) -> None:
        self._switch.attach(self._events)  # it was started at /voice

    def append_audio(self, audio: bytes) -> bool:
        return self._backend.append_audio(audio)

    def commit(self) -> bool:
        return self._backend.commit()

    def request_response(self, request_id: str, purpose: str, instructions: str) -> bool:
        return self._backend.request_response(request_id, purpose, instructions)

    def cancel(self, response_id: str) -> bool:
        return self._backend.cancel(response_id)

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> bool:
        return self._backend.truncate(item_id, content_index, heard_ms)

    def tool_result(self, call_id: str, output: str) -> bool:
        return self._backend.tool_result(call_id, output)

    def caller_text(self, text: str) -> bool:
        return self._backend.caller_text(text)

    def reconnect(self, reason: str) -> None:
        self._backend.reconnect(reason)

    def close(self, timeout: float) -> list[str]:
        return self._backend.close(timeout)


@dataclass
class _Waiting:
    switch: EventSwitch
    closing: threading.Event = field(default_factory=threading.Event)  # the session's own
    backend: Backend = field(default=NO_BACKEND)


class Prewarm:
    """The sessions /voice opened, waiting for their streams; see the module docstring."""

    def __init__(self, open_backend: OpenBackend, timeout_s: float, capacity: int,
                 clock: Clock) -> None:
        self._open = open_backend
        self._clock = clock
        self._lock = threading.Lock()  # guards _ledger, _waiting and _thread
        self._wake = threading.Event()  # cuts the reaper's sleep short (a claim, close())
        self._ledger = PrewarmLedger(capacity, timeout_s)
        self._waiting: dict[str, _Waiting] = {}
        self._thread: threading.Thread | None = None

    def open(self, call_sid: str) -> None:
        """Open and start a session for `call_sid` (at /voice, after its reservation)."""
        logger = CallLog(call_log, {"call_sid": call_sid})
        waiting = _Waiting(EventSwitch(logger))
        waiting.backend = self._open(waiting.switch, closing=waiting.closing,
                                     name=f"mediasrv-rt-{call_sid[-8:]}", logger=logger,
                                     call_sid=call_sid)  # made, not started: nothing runs
        with self._lock:
            why = self._ledger.add(call_sid, self._clock.now())
            if why is None:
                self._waiting[call_sid] = waiting
                self._ensure_reaper()
        if why is not None:
            logger.info("[PREWARM] not pre-warmed: %s", why)
            return
        logger.info("[PREWARM] backend session opening for this call")
        waiting.backend.start()

    def open_backend(self, events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog, call_sid: str) -> Backend:
        """The calls' OpenBackend: this call's waiting session, or a new one."""
        with self._lock:
            waiting = self._waiting.pop(call_sid, None) if self._ledger.claim(call_sid) \
                else None
        self._wake.set()
        if waiting is None:
            return self._open(events, closing=closing, name=name, logger=logger,
                              call_sid=call_sid)
        logger.info("[PREWARM] claimed the session opened at /voice (%s)",
                    "ready" if waiting.backend.connected else "still connecting")
        return _Claimed(waiting.backend, waiting.switch, events)

    def pending(self) -> int:
        with self._lock:
            return len(self._ledger)

    def close(self) -> None:
        """Close every waiting session now (shutdown, tests) and end the reaper."""
        with self._lock:
            sids = list(self._waiting)
            for sid in sids:
                self._ledger.claim(sid)
            gone = [self._waiting.pop(sid) for sid in sids]
            thread = self._thread
        self._wake.set()
        for waiting in gone:
            _close(waiting)
        if thread is not None:
            thread.join(_CLOSE_S)

    def _ensure_reaper(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # Daemon: a pending session must not keep a dying process up; it ends as
            # soon as nothing waits.
            self._thread = threading.Thread(target=self._reap, name="mediasrv-prewarm",
                                            daemon=True)
            self._thread.start()

    def _reap(self) -> None:
        while True:
            self._wake.clear()  # before looking: a claim from now on is not missed
            with self._lock:
                now = self._clock.now()
                gone = [(sid, self._waiting.pop(sid)) for sid in self._ledger.expired(now)
                        if sid in self._waiting]
                deadline = self._ledger.next_deadline()
                if not gone and deadline is None:
                    self._thread = None
                    return
            if not gone:
                assert deadline is not None
                self._clock.sleep_until(deadline, self._wake)  # later sessions expire later
                continue
            for sid, waiting in gone:
                CallLog(call_log, {"call_sid": sid}).info(
                    "[PREWARM] session closed: no stream claimed it within %g s",
                    self._ledger.timeout_s)
                _close(waiting)


def _close(waiting: _Waiting) -> None:
    waiting.closing.set()
    waiting.backend.close(_CLOSE_S)
