"""What /healthz reports: is the backend reachable, and is this process ready for a call.

Layer: web.

Liveness and readiness are different questions. A process that answers HTTP is alive
(`/healthz`, always 200: restarting it would not help). It is *ready* for another call
only when it is not draining and has room under MAX_CALLS (`/healthz?ready=1`, 503 when
not), so a load balancer sends the call elsewhere instead of to a busy signal.

Backend reachability is the outcome of the last connection attempt any call made, never
a probe per request: a health check every few seconds must not open Realtime sessions.
Before the first call it is unknown (`null`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mediasrv.backends.realtime.client import Connector, RealtimeSocket
from mediasrv.clock import Clock
from mediasrv.errors import PeerClosed


@dataclass(frozen=True)
class BackendState:
    reachable: bool | None  # None: no call has tried yet
    checked_at: float | None
    error: str | None


class BackendHealth:
    """The last connect outcome of any call; `track` wraps the calls' connector."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # calls' reader threads record, /healthz reads
        self._state = BackendState(None, None, None)

    def track(self, connect: Connector) -> Connector:
        """Return `connect` recording each attempt's outcome here."""

        def tracked() -> RealtimeSocket:
            try:
                sock = connect()
            except PeerClosed as exc:
                self._record(False, str(exc))
                raise
            self._record(True, None)
            return sock

        return tracked

    def state(self) -> BackendState:
        with self._lock:
            return self._state

    def _record(self, reachable: bool, error: str | None) -> None:
        with self._lock:
            self._state = BackendState(reachable, self._clock.now(), error)


def readiness(draining: bool, active: int, max_calls: int, reserved: int = 0) -> list[str]:
    """Return why the process cannot take another call now (empty: ready).

    `reserved`: slots /voice promised to calls whose streams have not arrived yet.
    """
    reasons = []
    if draining:
        reasons.append("draining: shutting down, no new calls")
    if active + reserved >= max_calls:
        held = f"{active} calls and {reserved} reserved" if reserved else f"{active}"
        reasons.append(f"at capacity: {held} of MAX_CALLS={max_calls} calls")
    return reasons
