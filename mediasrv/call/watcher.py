"""The watcher: one thread per call that runs the supervisor's clock and acts on it.

Layer: call.

It sleeps until the next deadline of the supervisor or of call control (a keypad
entry's timeout, a tool's backstop, an exit's line), or until something it judges
changes and a part of the call wakes it (`CallCore.wake`: a response created or done, all of
a response's audio queued or sent, a mark echoed, a barge-in, a caller's utterance). It
then reads a snapshot and ticks the supervisor under the call lock, and carries out
what comes back after releasing it: the end of a drain, the idle prompt and the
goodbye, "one moment" in dead air (every time while a tool runs), a reconnect of a
stalled backend, the end of a call whose Twilio socket failed; and what call control
decided (a keypad entry, a spoken exit's next step, held tool results to deliver). No
thread polls queue sizes; no thread per response.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from mediasrv.call.control import TOOL_WAIT, Control
from mediasrv.call.core import CallCore
from mediasrv.call.responses import Responses, reason_tag
from mediasrv.call.tx import TwilioWriter
from mediasrv.policy import supervisor as sup
from mediasrv.policy.silence import Action as SilenceAction

# Longest sleep without a deadline: the supervisor has nothing due, and a wake or
# `closing` cuts it short anyway; a bound all the same, like every wait of the call.
IDLE_WAIT_S = 1.0


class Watcher:
    def __init__(self, core: CallCore, writer: TwilioWriter, responses: Responses,
                 control: Control, end: Callable[[str, bool], None]) -> None:
        self._core = core
        self._writer = writer
        self._responses = responses
        self._control = control
        self._end = end  # (reason, by the caller's side: no REST hang-up)
        self._barriers: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()

    def run(self) -> None:
        core = self._core
        while not core.closing.is_set():
            core.watcher_wake.clear()  # before looking: a wake from now on is not lost
            barriers = self._take_barriers()
            now = core.clock.now()
            with core.lock:
                snapshot = self._snapshot_locked()
                actions = core.supervisor.tick(now, snapshot)
                if any(isinstance(a, sup.Drained) for a in actions):
                    core.ai_speaking.clear()  # with the decision: a new response may start
                decided = self._control.tick_locked(now, snapshot.ai_busy)
                due = [d for d in (core.supervisor.next_deadline(),
                                   self._control.next_deadline_locked()) if d is not None]
            for action in actions:
                self._act(action)
            self._control.act(decided)
            for barrier in barriers:
                barrier.set()
            if actions or decided:
                continue  # what was done may be due to be judged again at once
            until = min([now + IDLE_WAIT_S, *due])
            core.clock.sleep_until(until, core.watcher_wake)
        for barrier in self._take_barriers():
            barrier.set()

    def barrier(self) -> threading.Event:
        """Return an Event set once the watcher has ticked after this call (tests)."""
        done = threading.Event()
        self._barriers.put(done)
        self._core.wake()
        return done

    def _take_barriers(self) -> list[threading.Event]:
        out = []
        while not self._barriers.empty():
            out.append(self._barriers.get_nowait())
        return out

    def _snapshot_locked(self) -> sup.Snapshot:
        core = self._core
        ledger = core.ledger
        playing = ledger.playing_id
        connected = core.connected_locked()
        queued = core.playout.queued_locked()
        in_flight = ledger.in_flight()
        return sup.Snapshot(
            live_response=playing if playing is not None and ledger.is_live(playing) else None,
            queued=queued,
            last_sent_at=self._writer.last_sent_at,
            ai_busy=in_flight or core.ai_speaking.is_set() or queued > 0
            or core.playback.has_unheard(),
            wait_reason=ledger.wait_reason(connected) or self._control.wait_reason_locked(),
            backend_busy=in_flight,
            connected=connected,
        )

    def _act(self, action: sup.Action) -> None:
        core, log = self._core, self._core.log
        if isinstance(action, sup.Drained):
            core.observer.drain(action.outcome.value)
            log.info("[AUDIO_DRAIN] %s %s after %d ms", action.response_id,
                     action.outcome.value, action.elapsed_ms)
        elif isinstance(action, sup.Superseded):
            log.info("[AUDIO_DRAIN] %s superseded after %d ms", action.response_id,
                     action.elapsed_ms)
        elif isinstance(action, sup.DeadAir):
            detail = core.backend.waiting_for
            log.warning("[DEAD_AIR] caller waiting in silence for %.1f s: %s%s",
                        action.silent_s, action.reason,
                        f" (waiting for {detail})" if detail else "")
            if action.reason.startswith(TOOL_WAIT):
                self._responses.filler()
            else:
                self._responses.hold()
        elif isinstance(action, sup.Stalled):
            core.backend.reconnect(action.reason)
        elif isinstance(action, sup.TxFailed):
            self._end(f"twilio socket failed: {action.reason}", True)
        else:
            self._silence(action)

    def _silence(self, action: sup.Silence) -> None:
        log, decision = self._core.log, action.decision
        log.info("%s %s (%s)", reason_tag(decision.reason), decision.action.value,
                 decision.reason)
        if decision.action is SilenceAction.ASK_STILL_THERE:
            self._responses.request("idle_prompt")
        elif decision.action is SilenceAction.SAY_GOODBYE:
            self._responses.request("goodbye")
        else:
            self._end(decision.reason, False)
