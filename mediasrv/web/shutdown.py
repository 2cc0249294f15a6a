"""Shutdown: stop taking calls, let them finish, then say goodbye; or, forced, end them now.

Layer: web.

    t0                     SIGTERM or a first Ctrl-C (SIGINT): the registry drains
                           (/voice busy, /media refused); one line says how long calls
                           may go on and that a second Ctrl-C ends them
    t0 + grace - goodbye   every call still up says goodbye, hangs up once it is heard
    t0 + grace - margin    every call still up is ended now, each with a log line
    t0 + grace             gunicorn stops waiting for requests (and SIGKILLs the worker)
    any time               a second Ctrl-C or SIGQUIT: every call is ended at once

`ShutdownPlan` decides (pure, takes `now`); `Shutdown` is the thread shell that gunicorn's
hooks drive (gunicorn.conf.py): `begin()` and `force()` from the signal handlers,
`report_exit()` from `worker_exit`/`worker_int`. Every call that is cut gets exactly one
line saying so, whichever of these comes first.
"""

from __future__ import annotations

import logging
import threading
from enum import Enum
from typing import Any, Protocol

from mediasrv.clock import Clock

log = logging.getLogger(__name__)

# Calls still up this long before gunicorn gives up are ended by us, not killed with
# the process: the ending still logs its summary and closes both sockets.
CUT_MARGIN_S = 1.0
POLL_S = 0.1  # how often the shutdown thread looks at the active calls
# After a forced stop, how long the exiting worker lets the ended calls close their sockets
# and log their end (the master's own quick shutdown SIGKILLs it 2 s after a second Ctrl-C).
FORCED_EXIT_WAIT_S = 1.5
FORCED = "forced shutdown (second Ctrl-C or SIGQUIT)"


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
        self._forced = threading.Event()
        self._started_at = 0.0
        self._thread: threading.Thread | None = None
        self._cut: set[Any] = set()  # calls whose cut was logged: one line per call
        self._cut_lock = threading.Lock()  # signal handlers, the plan thread, exit hooks

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

    @property
    def forced(self) -> bool:
        return self._forced.is_set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def force(self) -> None:
        """End every call now (second Ctrl-C, SIGQUIT); safe from a signal handler."""
        if self._forced.is_set():
            return
        self._forced.set()
        self.registry.draining.set()
        calls = self.registry.active()
        log.warning("shutdown forced: ending %d call(s) now", len(calls))
        for call in calls:
            if self._first_cut(call):
                call.log.error("call cut: %s", FORCED)
                self._count("cut_forced")
            call.end(f"server stopped: {FORCED}")

    def wait_calls(self) -> None:
        """Block while the plan runs (at most to the end of the grace period).

        gunicorn's gthread worker may leave its run loop while WebSocket calls are still
        up (its connection count does not follow hijacked sockets), so `worker_exit`
        waits here: the process must not exit under calls still saying goodbye.
        """
        if self._forced.is_set():
            deadline = self.clock.now() + FORCED_EXIT_WAIT_S
            while self.registry.active() and self.clock.now() < deadline:
                self.done.wait(POLL_S)  # never set here: a bounded sleep
        elif self._begun.is_set():
            left = self._started_at + self.grace_s - CUT_MARGIN_S / 2 - self.clock.now()
            self.done.wait(max(0.0, left))

    def report_exit(self, why: str) -> None:
        """The worker is exiting now: log every call it cuts (unless already said)."""
        for call in self.registry.active():
            if self._first_cut(call):
                call.log.error("call cut: %s", why)
                self._count("cut_by_exit")

    def _first_cut(self, call: Any) -> bool:
        with self._cut_lock:
            first = call not in self._cut
            self._cut.add(call)
            return first

    def _run(self) -> None:
        plan = ShutdownPlan(self.clock.now(), self.grace_s, self.goodbye_s)
        calls = self.registry.active()
        goodbye_in = plan.goodbye_at - self.clock.now()
        had_calls = bool(calls)
        if not calls:
            log.warning("shutdown: no new calls; no active calls, stopping now")
        else:
            log.warning(
                "shutdown: no new calls; waiting up to %.0f s for %d active call(s) (goodbye "
                "in %.0f s); Ctrl-C again (or SIGQUIT) ends them now", self.grace_s,
                len(calls), goodbye_in,
            )
        for call in calls:
            call.log.warning("shutdown: this call may go on for up to %.0f s, goodbye in %.0f s",
                             self.grace_s, goodbye_in)
        while not self._forced.is_set():
            calls = self.registry.active()
            stage = plan.step(self.clock.now(), len(calls))
            if stage is Stage.DONE:
                if had_calls:
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
                    if self._first_cut(call):
                        call.log.warning("call cut: goodbye not finished in the grace period")
                        self._count("cut")
                    call.end("server shutdown (grace period over)")
            self.done.wait(POLL_S)  # never set here: a bounded sleep

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shutdown_calls.labels(outcome=outcome).inc()
