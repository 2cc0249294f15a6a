"""Time, injected: one `Clock` protocol, a real clock and a fake one for tests.

Layer: base.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Return monotonic seconds."""
        ...

    def sleep_until(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        """Block until `deadline`; return False early if `cancel` gets set."""
        ...


class RealClock:
    """The only place that reads the wall clock (monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        delay = deadline - time.monotonic()
        if delay <= 0:
            return not (cancel is not None and cancel.is_set())
        if cancel is None:
            time.sleep(delay)
            return True
        return not cancel.wait(delay)


class FakeClock:
    """A clock that never moves by itself; `sleep_until` jumps it forward.

    Threads that sleep on it return at once, so a paced loop runs as fast as the
    CPU allows while every decision still sees consistent, test-controlled time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()  # several threads may advance it at once

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep_until(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        with self._lock:
            if deadline > self._now:
                self._now = deadline
        return not (cancel is not None and cancel.is_set())


class ManualClock(FakeClock):
    """A fake clock whose sleepers block until the test advances time past their deadline.

    Lets a thread test release a paced loop one 20 ms tick at a time. Sleepers re-check
    `cancel` every 10 ms of real time so a closing call is never stuck.
    """

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)
        self._moved = threading.Condition(self._lock)

    def advance(self, seconds: float) -> None:
        with self._moved:
            self._now += seconds
            self._moved.notify_all()

    def sleep_until(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        with self._moved:
            while self._now < deadline:
                if cancel is not None and cancel.is_set():
                    return False
                self._moved.wait(0.01)
        return not (cancel is not None and cancel.is_set())
