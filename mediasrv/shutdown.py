"""Graceful shutdown on SIGTERM: stop taking calls, let them finish, then say goodbye.

    t0                     SIGTERM: the registry drains (/voice busy, /media refused)
    t0 + grace - goodbye   every call still up says goodbye, hangs up once it is heard
    t0 + grace - margin    every call still up is ended now, each with a log line
    t0 + grace             gunicorn stops waiting for requests (and SIGKILLs the worker)

`ShutdownPlan` decides (pure, takes `now`); `Shutdown` is the thread shell that gunicorn's
hooks drive (gunicorn.conf.py): `begin()` from the SIGTERM handler, `report_exit()` from
`worker_exit`/`worker_int`, so no call is ever cut without a line saying so.
"""

from __future__ import annotations

import logging
import threading
from enum import Enum
from typing import Any, Protocol

from .clock import Clock

log = logging.getLogger(__name__)

# Calls still up this long before gunicorn gives up are ended by us, not killed with
# the process: the ending still logs its summary and closes both sockets.
CUT_MARGIN_S = 1.0
POLL_S = 0.1  # how often the shutdown thread looks at the active calls


class Stage(Enum):
    GOODBYE = "goodbye"
    CUT = "cut"
    DONE = "done"


class ShutdownPlan:
    """When to say goodbye and when to cut, from SIGTERM at `started`."""

    def __init__(self, started: float, grace_s: float, goodbye_s: float) -> None:
        self.cut_at = started + max(0.0, grace_s - CUT_MARGIN_S)
        self.goodbye_at = min(self.cut_at, started + max(0.0, grace_s - goodbye_s))
        self._said_goodbye = False
        self._cut = False

    def step(self, now: float, active: int) -> Stage | None:
        """Return what to do now with `active` calls up, if anything."""
        if active == 0:
            return Stage.DONE
        if not self._said_goodbye and now >= self.goodbye_at:
            self._said_goodbye = True
            return Stage.GOODBYE
        if not self._cut and now >= self.cut_at:
            self._cut = True
            return Stage.CUT
        return None


class CallLike(Protocol):
    log: Any

    def say_goodbye(self, reason: str) -> bool: ...
    def end(self, reason: str) -> None: ...


class Registry(Protocol):
    draining: threading.Event

    def active(self) -> list[Any]: ...


class Shutdown:
    """Runs the plan on its own thread once SIGTERM arrives."""

    def __init__(self, registry: Registry, clock: Clock, grace_s: float, goodbye_s: float,
                 metrics: Any = None) -> None:
        self.registry = registry
        self.clock = clock
        self.grace_s = grace_s
        self.goodbye_s = goodbye_s
        self.metrics = metrics
        self.done = threading.Event()
        self._begun = threading.Event()
        self._started_at = 0.0
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """Start draining (safe from a signal handler: sets flags, starts one thread)."""
        if self._begun.is_set():
            return
        self._begun.set()
        self._started_at = self.clock.now()
        self.registry.draining.set()
        # Daemon: gunicorn decides when the worker exits; this thread must not delay it.
        self._thread = threading.Thread(target=self._run, name="mediasrv-shutdown", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_calls(self) -> None:
        """Block while the plan runs (at most to the end of the grace period).

        gunicorn's gthread worker may leave its run loop while WebSocket calls are still
        up (its connection count does not follow hijacked sockets), so `worker_exit`
        waits here: the process must not exit under calls still saying goodbye.
        """
        if self._begun.is_set():
            left = self._started_at + self.grace_s - CUT_MARGIN_S / 2 - self.clock.now()
            self.done.wait(max(0.0, left))

    def report_exit(self, why: str) -> None:
        """The worker is exiting now: log every call it cuts."""
        for call in self.registry.active():
            call.log.error("call cut: %s", why)
            self._count("cut_by_exit")

    def _run(self) -> None:
        plan = ShutdownPlan(self.clock.now(), self.grace_s, self.goodbye_s)
        calls = self.registry.active()
        log.warning(
            "shutdown: draining, no new calls; %d active call(s) may go on for %.1f s, "
            "goodbye at %.1f s, cut at %.1f s", len(calls), self.grace_s,
            plan.goodbye_at - self.clock.now(), plan.cut_at - self.clock.now(),
        )
        while True:
            calls = self.registry.active()
            stage = plan.step(self.clock.now(), len(calls))
            if stage is Stage.DONE:
                log.info("shutdown: no active calls left")
                self.done.set()
                return
            if stage is Stage.GOODBYE:
                for call in calls:
                    call.log.info("shutdown: saying goodbye")
                    call.say_goodbye("server shutting down")
                    self._count("goodbye")
            elif stage is Stage.CUT:
                for call in calls:
                    call.log.warning("shutdown: goodbye not finished in the grace period: ending")
                    call.end("server shutdown (grace period over)")
                    self._count("cut")
            self.done.wait(POLL_S)  # never set here: a bounded sleep

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shutdown_calls.labels(outcome=outcome).inc()
