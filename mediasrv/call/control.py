"""Call control inside a call: tools, the keypad, the spoken exits, Twilio REST actions.

Layer: call.

The decisions are mediasrv.callctl's pure code, kept behind the call lock: the keypad
(digits into one caller message), the tool tracker (which calls run, which results
wait) and the exit in progress (end-call or transfer). This shell feeds them and
carries out what they return with the lock released:

- a model turn's tool calls (`ToolCallsReady`, on the backend's reader): the registry
  decides each; built-ins and refusals have their result at once, webhooks run on the
  runner's threads. Results go to the backend only while no response is in flight and
  the caller is not mid-sentence (`deliver`, tried whenever that may have changed: a
  result came, a response ended, every watcher tick), then one `after_tool` answer;
- `end_call` / `transfer_call`: the answer after the result is the goodbye or the
  handover line; once it has been heard (`Exit.observe`, ticked by the watcher) the
  call hangs up, or the live call is updated with `<Dial>` TwiML through REST on
  "mediasrv-rest-<sid>"; the `stop` that follows is the transfer, not a hang-up;
- keys (`dtmf`, on the rx loop): optionally a barge-in, then grouped; each group is
  the caller's turn as text (`caller_text`) and an answer is asked for;
- Twilio's own recording (TWILIO_RECORDING=dual) is started through REST at the start.

A tool running while nothing plays is dead air with a reason ("tool X running"): the
watcher's dead-air check plays "one moment" after 2 s of it, again after each 2 s more.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from mediasrv.backends.base import ToolCallsReady
from mediasrv.call.core import CallCore, CallDeps, ToolRunner
from mediasrv.call.outbound import BargeIn
from mediasrv.call.responses import Responses
from mediasrv.callctl import exits
from mediasrv.callctl.keypad import KeyIgnored, Keypad, KeypadEntry
from mediasrv.callctl.tools import (
    END_CALL_ACCEPTED,
    TRANSFER_ACCEPTED,
    Answer,
    Decision,
    EndCall,
    RunWebhook,
    Transfer,
    refusal,
)
from mediasrv.callctl.tracker import Result, ToolTracker
from mediasrv.callctl.webhook import ToolResult

TOOL_WAIT = "tool "  # how a tool's wait reason starts (the watcher plays the filler)
_JOIN_S = 1.0

Exit = exits.EndCallExit | exits.TransferExit


class Control:
    """One call's tools, keypad and exits; see the module docstring."""

    def __init__(self, core: CallCore, deps: CallDeps, responses: Responses,
                 barge_in: BargeIn, end: Callable[[str, bool], None]) -> None:
        cfg = core.config
        self._core = core
        self._deps = deps
        self._responses = responses
        self._barge_in = barge_in
        self._end = end  # (reason, by the caller's side: no REST hang-up)
        self._keypad = Keypad(cfg.dtmf_inter_digit_ms / 1000.0)  # under the call lock
        self._tracker = ToolTracker(cfg.tool_timeout_s)  # under the call lock
        self._exit: Exit | None = None  # under the call lock
        self._redirect = ""  # why Twilio will stop the stream (voicemail); locked
        # Taken while results are sent, so one turn's results all precede its request;
        # a leaf: never held with the call lock, nothing waits on it but a delivery.
        self._delivering = threading.Lock()
        self._runner: ToolRunner | None = None  # made at start: it needs the call sid
        self._rest: list[threading.Thread] = []  # started by the rx loop and the watcher
        self._sid = ""

    def start(self, call_sid: str) -> None:
        """The call has its sid: ready the tool runner, start Twilio's own recording."""
        self._sid = call_sid
        self._runner = self._deps.tool_runner(call_sid, self._core.config.tool_timeout_s,
                                              self._on_tool_result)
        start_recording = self._deps.start_recording
        if start_recording is not None:
            self._rest_request("start Twilio's dual-channel recording",
                               lambda: start_recording(call_sid), None)

    def close(self) -> list[str]:
        """Cancel running tools, wait for REST requests; return threads still running."""
        if self._runner is not None:
            self._runner.close(_JOIN_S)
        for thread in self._rest:
            thread.join(_JOIN_S)
        return [t.name for t in self._rest if t.is_alive()]

    # --- the keypad (rx loop; the watcher for timeouts) ---------------------------------

    def on_dtmf(self, digit: str, now: float) -> None:
        self._core.log.info("dtmf digit %s", digit[:8])
        if self._core.config.dtmf_barge_in and digit.strip():
            self._barge_in.trigger("dtmf", now)
        with self._core.lock:
            events = self._keypad.press(digit, now)
            self._core.supervisor.caller_stopped(now, turn=True)  # keys are no silence
        self._on_keys(events)

    def _on_keys(self, events: tuple[KeypadEntry | KeyIgnored, ...] | list[KeypadEntry]
                 ) -> None:
        core = self._core
        for event in events:
            if isinstance(event, KeyIgnored):
                core.log.warning("[KEYPAD] %s", event.reason)
                continue
            core.log.info("[KEYPAD] %s (%s)", event.caller_message(), event.ended_by)
            core.recording.keypad(event.started_at - core.started_at, event.digits)
            if core.backend.caller_text(event.caller_message()):
                self._responses.request("answer")
            else:
                core.log.warning("[KEYPAD] not passed on: backend not connected")

    # --- tools (the backend's reader; tool threads) -------------------------------------

    def on_tool_calls(self, ev: ToolCallsReady, now: float) -> None:
        """Decide each call of a model turn; start webhooks; results wait for delivery."""
        core = self._core
        decisions = [self._deps.tools.decide(call) for call in ev.calls]
        webhooks: list[RunWebhook] = []
        with core.lock:
            for call, decision in zip(ev.calls, decisions, strict=True):
                if not self._tracker.started(call, now):
                    continue  # the same call id twice: its first result stands
                answer = self._answer_locked(decision, now)
                if answer is None:
                    webhooks.append(decision)  # type: ignore[arg-type]
                else:
                    self._tracker.finished(call.call_id, answer.output,
                                           "refused" if answer.refused else "ok")
        for call, decision in zip(ev.calls, decisions, strict=True):
            core.log.info("[TOOL] %s called%s: %s", call.name,
                          "" if call.complete else " (cut off)", _what(decision))
        for webhook in webhooks:
            assert self._runner is not None  # tool calls come only after start
            self._runner.run(webhook)
        core.wake()

    def _answer_locked(self, decision: Decision, now: float) -> Answer | None:
        """Return the result known at once (None: a webhook must run)."""
        if isinstance(decision, Answer):
            return decision
        if isinstance(decision, RunWebhook):
            return None
        if self._exit is not None:
            return refusal(decision.call_id, "the call is already ending or being "
                                             "transferred")
        if isinstance(decision, EndCall):
            self._exit = exits.EndCallExit(decision.reason, now)
            return Answer(decision.call_id, END_CALL_ACCEPTED)
        if self._deps.transfer is None:
            return refusal(decision.call_id, "transfers are not available on this line")
        self._exit = exits.TransferExit(decision.target, now)
        return Answer(decision.call_id, TRANSFER_ACCEPTED)

    def _on_tool_result(self, result: ToolResult) -> None:
        with self._core.lock:
            taken = self._tracker.finished(result.call_id, result.output, result.outcome)
        if taken is None:
            self._core.log.info("[TOOL] %s: result dropped (no longer waited for)",
                                result.tool)
            return
        self._core.wake()
        self.deliver()

    def deliver(self) -> None:
        """Hand the ready results to the backend if it can take them; then ask for the
        answer once no call of theirs is still running."""
        core = self._core
        with self._delivering:
            with core.lock:
                if core.ledger.in_flight() or not core.connected_locked() \
                        or core.supervisor.caller_talking:
                    return
                delivery = self._tracker.deliver()
            if delivery is None:
                return
            for result in delivery.results:
                self._hand_over(result)
            if not delivery.ask:
                return
            # Sent, or deferred behind a response that slipped in: either way the AI is
            # busy until the line has been heard. Not sent at all (the backend is gone):
            # not busy, and an exit goes on at once -- there is nobody to say it.
            self._responses.request("after_tool")
        with core.lock:
            if self._exit is not None:
                self._exit.line_requested()
        core.wake()

    def _hand_over(self, result: Result) -> None:
        core = self._core
        sent = core.backend.tool_result(result.call_id, result.output)
        core.log.info("[TOOL] %s result %s to the model (%s)", result.name,
                      "given" if sent else "NOT given (backend gone)", result.outcome)
        core.recording.tool(result.started_at - core.started_at, result.name,
                            result.arguments, result.output, result.outcome)

    def session_lost(self) -> None:
        """The backend session is gone: its calls will never be answered there."""
        with self._core.lock:
            running = self._tracker.running()
            self._tracker.clear()
        if running:
            self._core.log.warning("[TOOL] results of %s dropped: the backend session "
                                   "that asked for them is gone", ", ".join(running))

    # --- the watcher ---------------------------------------------------------------------

    def wait_reason_locked(self) -> str:
        names = self._tracker.running()
        return f"{TOOL_WAIT}{names[0]} running" if names else ""

    def next_deadline_locked(self) -> float | None:
        due = [self._keypad.next_deadline(), self._tracker.next_deadline(),
               self._exit.next_deadline() if self._exit is not None else None]
        return min((d for d in due if d is not None), default=None)

    def tick_locked(self, now: float, ai_busy: bool) -> list[object]:
        """Judge the keypad, the tool backstop and the exit; return what to carry out."""
        out: list[object] = []
        entry = self._keypad.tick(now)
        if entry is not None:
            out.append(entry)
        out.extend(self._tracker.tick(now))
        if self._exit is not None:
            action = self._exit.observe(now, ai_busy) or self._exit.tick(now)
            if action is not None:
                out.append(action)
        return out

    def act(self, actions: list[object]) -> None:
        """Carry out what `tick_locked` returned (the call lock released)."""
        for action in actions:
            if isinstance(action, KeypadEntry):
                self._on_keys([action])
            elif isinstance(action, Result):
                self._core.log.warning("[TOOL] %s gave no result in time: given up",
                                       action.name)
            else:
                self._exit_action(action)  # type: ignore[arg-type]
        self.deliver()

    # --- exits ---------------------------------------------------------------------------

    def _exit_action(self, action: exits.ExitAction) -> None:
        log = self._core.log
        if isinstance(action, exits.HangUp):
            log.info("[END_CALL] %s: hanging up", action.reason)
            self._end(action.reason, False)
        elif isinstance(action, exits.CloseStream):
            log.warning("[TRANSFER] %s", action.reason)
            self._end(action.reason, True)
        elif isinstance(action, exits.SendTransfer):
            self._send_transfer(action)
        else:
            self._resume(action)

    def _send_transfer(self, action: exits.SendTransfer) -> None:
        transfer, target, sid = self._deps.transfer, action.target, self._sid
        assert transfer is not None  # a transfer exit exists only when it is configured
        self._core.log.info("[TRANSFER] to %s: handover line %s; updating the call",
                            target.spoken(), action.note or "heard")
        self._rest_request(f"transfer to {target.spoken()}", lambda: transfer(sid, target),
                           self._transfer_done)

    def _transfer_done(self, ok: bool, why: str) -> None:
        core = self._core
        with core.lock:
            action = self._exit.update_done(ok, why, core.clock.now()) \
                if isinstance(self._exit, exits.TransferExit) else None
        core.log.info("[TRANSFER] update %s%s", "accepted: waiting for Twilio's stop" if ok
                      else "failed", "" if ok else f": {why}")
        core.wake()
        if action is not None:
            self._exit_action(action)

    def _resume(self, action: exits.Resume) -> None:
        self._core.log.warning("[TRANSFER] %s; the call goes on", action.reason)
        with self._core.lock:
            self._exit = None
        error = json.loads(action.output).get("error", "")
        self._responses.request("transfer_failed", f"Do this now: {error}.")

    def redirected(self, reason: str) -> None:
        """Twilio is told to run other TwiML (voicemail): its `stop` is not a hang-up."""
        with self._core.lock:
            self._redirect = reason

    def stop_reason(self) -> str | None:
        """Return why Twilio stopped the stream if we caused it (None: the caller)."""
        with self._core.lock:
            if self._exit is not None:
                return self._exit.stream_stopped()
            return self._redirect or None

    def _rest_request(self, what: str, request: Callable[[], None],
                      done: Callable[[bool, str], None] | None) -> None:
        def run() -> None:
            try:
                request()
            except Exception as exc:  # the REST library's errors vary; the call goes on
                self._core.log.warning("[REST] %s failed: %s", what, _why(exc))
                if done is not None:
                    done(False, _why(exc))
                return
            self._core.log.info("[REST] %s: done", what)
            if done is not None:
                done(True, "")

        # Daemon: a process exit must not wait for Twilio; close() joins it (bounded by
        # the REST client's own timeout).
        thread = threading.Thread(target=run, name=f"mediasrv-rest-{self._sid[-8:]}",
                                  daemon=True)
        self._rest.append(thread)
        thread.start()


def _what(decision: Decision) -> str:
    if isinstance(decision, Answer):
        return f"refused: {decision.refused}" if decision.refused else "answered"
    if isinstance(decision, EndCall):
        return "the call ends after a goodbye"
    if isinstance(decision, Transfer):
        return f"transfer to {decision.target.spoken()} after a handover line"
    return f"webhook {decision.tool.url_for_logs()}"


def _why(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return f"{exc.__class__.__name__}" + (f" (HTTP {status})" if status else "")
