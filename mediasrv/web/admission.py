"""Admission: which calls hold one of this instance's MAX_CALLS slots, and from when.

A Twilio call reaches us twice: the voice webhook (`/voice`, with its CallSid) and, a
moment later, the Media Stream (`/media`, whose CallSid only arrives in the `start`
message after the WebSocket upgrade). Checking room at `/voice` and enforcing it at
`/media` in two places lets a burst of webhooks promise more calls than fit. So `/voice`
*reserves* a slot for its CallSid here, the stream *claims* it at `start`, and a slot is
held from the webhook to the end of the call:

    /voice      reserve(sid)        a reservation, dropped after RESERVATION_TTL_S if
                                    no stream claims it (caller hung up while ringing)
    upgrade     open(key)           a stream whose call sid is not known yet ("opening")
    start       claim(key, sid)     the stream becomes a call: its reservation is used,
                                    or (no reservation) it needs a slot of its own
    end         close(key)          the slot is free

Slots held = calls + max(reserved, opening): an opening stream is presumed to be one of
the reserved calls as long as there are more reservations than opening streams, so a
reserved call is never counted twice. An unreserved stream may open on the strength of
someone else's reservation, but at `start` it must find a slot of its own: it cannot
take a reserved call's place.

Draining (shutdown) stops new reservations and unreserved calls, but a call that was
promised a slot before the drain began still gets it: Twilio is already connecting it.

`Ledger` is pure (time comes in as `now`); `Admission` is the thread-safe shell the app
uses, with the Call objects as the stream keys.

Layer: web.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from mediasrv.clock import Clock

log = logging.getLogger(__name__)

# Twilio opens the stream right after it reads the TwiML, well within a second on a
# healthy path; a reservation that waits this long belongs to a call that will never
# come (the caller hung up while it rang, or Twilio failed to connect) and only holds
# a slot another call could use.
RESERVATION_TTL_S = 10.0


@dataclass(frozen=True)
class Usage:
    """A snapshot of the slots: what /healthz and /metrics report."""

    capacity: int
    calls: int  # streams that started: calls in progress
    opening: int  # streams upgraded whose `start` has not come yet
    reserved: int  # /voice reservations not yet claimed by a stream
    draining: bool

    @property
    def held(self) -> int:
        return self.calls + max(self.reserved, self.opening)

    @property
    def free(self) -> int:
        """Slots a new call could take now (none while draining)."""
        return 0 if self.draining else max(0, self.capacity - self.held)


class Ledger:
    """The slots of one process. Every decision returns None (admitted) or why not."""

    def __init__(self, capacity: int, ttl_s: float = RESERVATION_TTL_S) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._reserved: dict[str, float] = {}  # call sid -> when the reservation lapses
        self._opening: set[Hashable] = set()
        self._calls: set[Hashable] = set()
        self._expired: list[str] = []

    def reserve(self, call_sid: str, now: float, *, draining: bool) -> str | None:
        """Hold a slot for `call_sid` until its stream claims it (or the TTL passes)."""
        self._expire(now)
        if call_sid in self._reserved:  # the same webhook again (a retry): still held
            self._reserved[call_sid] = now + self.ttl_s
            return None
        if draining:
            return "draining: no new calls"
        if self._held(reserved=1) > self.capacity:
            return self._full()
        self._reserved[call_sid] = now + self.ttl_s
        return None

    def room(self, now: float, *, draining: bool) -> str | None:
        """Say whether a call with no reservation would fit now (nothing is held)."""
        self._expire(now)
        if draining:
            return "draining: no new calls"
        return self._full() if self._held(reserved=1) > self.capacity else None

    def may_open(self, now: float, *, draining: bool) -> str | None:
        """Say whether a stream upgrade would be admitted now (nothing is held)."""
        self._expire(now)
        if len(self._opening) < len(self._reserved):  # it may be one of the reserved calls
            return None
        if draining:
            return "draining: no call reserved"
        return self._full() if self._held(opening=1) > self.capacity else None

    def open(self, key: Hashable, now: float, *, draining: bool) -> str | None:
        """Admit a stream whose call sid is not known yet (the WebSocket upgrade)."""
        why = self.may_open(now, draining=draining)
        if why is None:
            self._opening.add(key)
        return why

    def claim(self, key: Hashable, call_sid: str, now: float, *, draining: bool) -> str | None:
        """The stream `key` is call `call_sid`: use its reservation, or a free slot."""
        self._expire(now)
        self._opening.discard(key)
        if self._reserved.pop(call_sid, None) is not None:
            self._calls.add(key)
            return None
        if draining:
            return "draining: no reservation for this call"
        if self._held(calls=1) > self.capacity:
            return self._full() + " (no reservation for this call; the free slots are reserved)"
        self._calls.add(key)
        return None

    def close(self, key: Hashable) -> None:
        self._opening.discard(key)
        self._calls.discard(key)

    def keys(self) -> list[Hashable]:
        """Every open stream, started or not."""
        return [*self._opening, *self._calls]

    def usage(self, now: float, *, draining: bool) -> Usage:
        self._expire(now)
        return Usage(self.capacity, len(self._calls), len(self._opening), len(self._reserved),
                     draining)

    def take_expired(self) -> list[str]:
        """Return (and forget) the call sids whose reservations lapsed unclaimed."""
        expired, self._expired = self._expired, []
        return expired

    def _held(self, *, calls: int = 0, opening: int = 0, reserved: int = 0) -> int:
        """Slots held if `calls`, `opening` and `reserved` more were added."""
        return (len(self._calls) + calls
                + max(len(self._reserved) + reserved, len(self._opening) + opening))

    def _full(self) -> str:
        return (f"at capacity: {len(self._calls)} calls, {len(self._reserved)} reserved, "
                f"{len(self._opening)} opening of MAX_CALLS={self.capacity}")

    def _expire(self, now: float) -> None:
        for sid, until in list(self._reserved.items()):
            if until <= now:
                del self._reserved[sid]
                self._expired.append(sid)


class Admission:
    """This process's calls and slots: a Ledger behind one lock, the Calls as its keys.

    `draining` is the Event the shutdown sets (shutdown.py); every decision reads it.
    """

    def __init__(self, max_calls: int, clock: Clock, ttl_s: float = RESERVATION_TTL_S) -> None:
        self.max_calls = max_calls
        self.draining = threading.Event()
        self._clock = clock
        self._ledger = Ledger(max_calls, ttl_s)
        # Guards the ledger: /voice, /healthz and every call's handler thread use it.
        self._lock = threading.Lock()

    def reserve(self, call_sid: str) -> str | None:
        """Reserve a slot at /voice; None when reserved, else why not."""
        with self._lock:
            if not call_sid:  # not from Twilio: answer as a call that needs a free slot
                why = self._ledger.room(self._clock.now(), draining=self.draining.is_set())
            else:
                why = self._ledger.reserve(call_sid, self._clock.now(),
                                           draining=self.draining.is_set())
            self._log_expired()
        return why

    def may_open(self) -> str | None:
        """Say whether a stream upgrade would be admitted now; None when it would."""
        with self._lock:
            why = self._ledger.may_open(self._clock.now(), draining=self.draining.is_set())
            self._log_expired()
        return why

    def add(self, call: Any) -> bool:
        """Admit the stream of `call` (before its `start`); False when there is no room."""
        with self._lock:
            why = self._ledger.open(call, self._clock.now(), draining=self.draining.is_set())
            self._log_expired()
        if why is not None:
            log.warning("/media: stream refused: %s", why)
        return why is None

    def claim(self, call: Any, call_sid: str) -> str | None:
        """At `start`: the stream is `call_sid`; None when admitted, else why not."""
        with self._lock:
            why = self._ledger.claim(call, call_sid, self._clock.now(),
                                     draining=self.draining.is_set())
            self._log_expired()
        return why

    def remove(self, call: Any) -> None:
        with self._lock:
            self._ledger.close(call)

    def active(self) -> list[Any]:
        """Every call with an open stream (started or not)."""
        with self._lock:
            return self._ledger.keys()

    def usage(self) -> Usage:
        with self._lock:
            usage = self._ledger.usage(self._clock.now(), draining=self.draining.is_set())
            self._log_expired()
        return usage

    def _log_expired(self) -> None:
        assert self._lock.locked()
        for sid in self._ledger.take_expired():
            log.info("reservation for %s expired: no stream came within %.0f s", sid,
                     self._ledger.ttl_s)
