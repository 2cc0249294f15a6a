"""The end-of-turn model's worker: one thread per process runs every call's checks.

Layer: call.

A check (upsample, features, the Smart Turn model) costs ~50 ms of CPU on a quiet core and
130-190 ms on a busy one (scripts/eot_eval.py --bench): far more than the 20 ms an rx loop
has per frame. So the rx loop never runs it: it hands the check here and goes on reading
Twilio; the answer comes back through a callback that the call points at its own queue,
and the rx loop takes it from there (mediasrv.call.uplink). One thread for the whole
process, with one shared onnxruntime session: on 2 cores, several checks at once would only
slow each other down, and pauses of different calls rarely coincide.

An answer that comes after the fixed silence (END_SILENCE_MS) would have ended the turn
anyway is worth nothing, so a check carries how long it may wait (`max_wait_s`): one
that waited longer is answered None without running the model, and the call's turn ends
at the fixed silence (see mediasrv.policy.endturn). Measured at 25 calls whose callers
all stop at the same instant on a loaded machine (load 8 on 2 cores): answers came back
up to 1.3 s late before this rule. The queue is bounded too (`MAX_WAITING`): beyond it a
check is refused at once, with the same fallback. A check whose call has ended is
skipped; a check that fails is logged and answered None. The thread never dies of one.

    IDLE --start()/first submit--> RUNNING --stop()--> STOPPED (joined; a submit is refused)
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.clock import Clock, RealClock
from mediasrv.policy.endturn import TurnModel

log = logging.getLogger(__name__)

Reply = Callable[[float | None], None]  # P(complete), or None: the check failed
THREAD_NAME = "mediasrv-turn-model"
# Checks that may wait behind the one running: the bound on memory (up to 8 s of audio,
# 256 kB, each); how long one may wait is each check's own (`max_wait_s`).
MAX_WAITING = 8
_POLL_S = 0.5  # how long the thread blocks on its queue before looking at `_stopping`


class CheckRunner(Protocol):
    """Runs end-of-turn checks off the rx loop (TurnChecks; a fake in tests)."""

    def submit(self, audio: npt.NDArray[np.float32], reply: Reply, *,
               skip: threading.Event | None = None, max_wait_s: float = math.inf) -> bool:
        """Queue one check; `reply` gets P(complete) or None (failed, or not started
        within `max_wait_s`). False if refused."""
        ...


@dataclass(frozen=True, slots=True)
class _Check:
    audio: npt.NDArray[np.float32]
    reply: Reply
    skip: threading.Event | None  # the call's `closing`: nobody waits for the answer
    latest: float  # the worker's clock: run it no later than this, else answer None


class TurnChecks:
    """A worker thread that scores utterances with one end-of-turn model, one at a time."""

    def __init__(self, model: Callable[[], TurnModel], *, max_waiting: int = MAX_WAITING,
                 name: str = THREAD_NAME, clock: Clock | None = None,
                 logger: logging.Logger = log) -> None:
        self._make_model = model  # built on the worker, at its first check
        self._clock = clock or RealClock()
        self._model: TurnModel | None = None
        self._queue: queue.Queue[_Check | None] = queue.Queue(maxsize=max_waiting)
        self._log = logger
        self._lock = threading.Lock()  # guards starting and stopping the thread
        self._stopping = threading.Event()
        # Daemon: the worker ends with the process (gunicorn's worker exits without
        # asking it); stop() ends and joins it where an orderly end matters (tests).
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.refused = 0  # checks refused: queue full, or stopped
        self.late = 0  # checks not run: they waited longer than their max_wait_s
        self.failed = 0  # checks whose model run raised

    def start(self) -> TurnChecks:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if not self._thread.is_alive() and not self._stopping.is_set():
                self._thread.start()
        return self

    def submit(self, audio: npt.NDArray[np.float32], reply: Reply, *,
               skip: threading.Event | None = None, max_wait_s: float = math.inf) -> bool:
        """Queue one check; `reply` is called on the worker. False if refused (full)."""
        if self._stopping.is_set():
            self.refused += 1
            return False
        self.start()
        check = _Check(audio, reply, skip, self._clock.now() + max_wait_s)
        try:
            self._queue.put_nowait(check)
        except queue.Full:
            self.refused += 1
            return False
        return True

    def stop(self, timeout: float = 1.0) -> bool:
        """End the thread after the check it runs; True if it ended within `timeout`."""
        with self._lock:
            self._stopping.set()
            started = self._thread.ident is not None
        if not started:
            return True
        try:
            self._queue.put_nowait(None)  # wakes it at once; else it notices within _POLL_S
        except queue.Full:
            pass
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                check = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if check is None:
                return
            if check.skip is not None and check.skip.is_set():
                continue  # the call ended while the check waited
            if self._clock.now() > check.latest:
                self.late += 1
                probability = None  # the fixed silence ends that turn sooner than we could
            else:
                probability = self._score(check.audio)
            try:
                check.reply(probability)
            except Exception:  # the safety net: one call's bad callback ends no thread
                self._log.exception("[TURN] a check's answer could not be handed back")

    def _score(self, audio: npt.NDArray[np.float32]) -> float | None:
        try:
            if self._model is None:
                self._model = self._make_model()
            return self._model.probability(audio)
        except Exception:  # the safety net: a check fails, the worker goes on
            self.failed += 1
            self._log.exception("[TURN] end-of-turn check failed: the turn ends at the fixed "
                                "silence")
            return None


def _smart_turn() -> TurnModel:
    from mediasrv.models.turn_model import SmartTurn  # loads onnxruntime's session lazily

    return SmartTurn()


_shared_lock = threading.Lock()  # guards _shared
_shared: TurnChecks | None = None


def shared_turn_checks() -> TurnChecks:
    """Return the process's one worker, running Smart Turn (the thread starts on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.stopped:
            _shared = TurnChecks(_smart_turn)
        return _shared


def stop_shared_turn_checks(timeout: float = 1.0) -> bool:
    """End the process's worker (tests; the process's own end needs no call)."""
    with _shared_lock:
        worker = _shared
    return worker is None or worker.stop(timeout)
