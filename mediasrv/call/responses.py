"""The call's side of the backend seam: its events in, response requests out, our own prompts.

Layer: call.

`on_event` runs on the backend's reader thread for every event: it takes the call lock
briefly (the response and playback ledgers decide, audio goes into the playout buffer,
which never blocks), then logs and asks for what comes next. Requests come from every
thread (an answer from the rx loop, a greeting from the reader, an idle prompt from the
watcher); the ledger lets one at a time through and defers the rest.

When the backend cannot speak, the call speaks for it from pre-rendered prompts: "one
moment" while a reconnect is under way (and during dead air, and while a tool runs), the
apology and a goodbye when it is gone for good.

Tool calls go to call control (`tools`, control.py), which is also told when a response
ends (its held tool results may go now) and when the session is lost.
"""

from __future__ import annotations

from typing import Protocol

from mediasrv.backends import base
from mediasrv.call.core import CallCore
from mediasrv.call.outbound import BargeIn
from mediasrv.policy.ledger import Defer

BACKEND_UNAVAILABLE = "backend unavailable"
INSTRUCTIONS = {
    "idle_prompt": "The caller has been silent. Briefly ask whether they are still there.",
    "goodbye": "Say a short, polite goodbye. The call is ending now.",
}
# What an ending or a goodbye is about, for its log line's tag (silence is the default).
REASON_TAGS = {BACKEND_UNAVAILABLE: "[BACKEND]", "server shutting down": "[SHUTDOWN]",
               "max_call_duration": "[MAX_CALL]"}


def reason_tag(reason: str) -> str:
    return next((t for r, t in REASON_TAGS.items() if reason.startswith(r)), "[SILENCE]")


class ToolHooks(Protocol):
    """What the backend's events tell call control (control.py)."""

    def on_tool_calls(self, ev: base.ToolCallsReady, now: float) -> None: ...

    def deliver(self) -> None: ...

    def session_lost(self) -> None: ...


class _NoTools:
    def on_tool_calls(self, ev: base.ToolCallsReady, now: float) -> None:
        pass

    def deliver(self) -> None:
        pass

    def session_lost(self) -> None:
        pass


class Responses:
    def __init__(self, core: CallCore, barge_in: BargeIn) -> None:
        self._core = core
        self._barge_in = barge_in
        self.tools: ToolHooks = _NoTools()  # call control, set before the call starts

    # --- requests (any thread) -----------------------------------------------------------

    def request(self, purpose: str, instructions: str = "") -> bool:
        """Ask the backend for a response now, or once the one in flight is done."""
        core = self._core
        now = core.clock.now()
        with core.lock:
            decision = core.ledger.request(purpose, closing=core.closing.is_set())
            if decision is not None and not isinstance(decision, Defer):
                # The stall clock starts now: the backend may have been quiet for longer
                # than the stall timeout (a long answer streams 5x faster than it plays).
                core.supervisor.backend_heard(now)
        core.wake()
        if decision is None:
            return False
        if isinstance(decision, Defer):
            core.log.info("response for %s deferred: one is active", purpose)
            if purpose == "answer":
                self._supersede()
            return False
        text = instructions or INSTRUCTIONS.get(purpose, "")
        if not core.backend.request_response(decision.request_id, purpose, text):
            with core.lock:
                core.ledger.request_failed(decision.request_id)
            core.log.warning("response for %s not sent: backend not connected", purpose)
            return False
        core.log.info("TRIGGER_RESPONSE #%d purpose=%s", decision.answer_no, purpose)
        return True

    def _supersede(self) -> None:
        """Cancel the answer in flight if none of it was heard: the caller went on talking
        right after the turn end that asked for it, and the deferred answer will answer the
        whole utterance (ResponseLedger.supersede)."""
        core = self._core
        with core.lock:
            plan = core.ledger.supersede()
            if plan is not None and plan.response_id is not None:
                core.ai_speaking.clear()  # none of its audio came: nothing to drain
        if plan is None:
            return
        if plan.response_id is None:
            core.log.info("[TURN] the caller went on before the answer was created: it is "
                          "cancelled once created, one answer follows for the whole turn")
            return
        core.log.info("[TURN] the caller went on: answer %s cancelled before any of it was "
                      "heard, one answer follows for the whole turn", plan.response_id)
        core.backend.cancel(plan.response_id)
        core.wake()

    def say_local(self, prompt: str) -> None:
        """Play a pre-rendered prompt (the backend cannot speak) through the tx path."""
        core = self._core
        audio = core.prompts.get(prompt, b"")
        if not audio:
            core.log.warning("prompt %s not available", prompt)
            return
        with core.lock:
            local = core.ledger.local_prompt(prompt)
            core.playback.on_audio(local.item_id, local.response_id, 0, len(audio))
            core.playout.put_audio_locked(local.response_id, local.item_id, audio)
            core.playout.end_item_locked(local.response_id, local.item_id)
            core.ai_speaking.set()
            core.supervisor.watch_drain(local.response_id, core.clock.now())
        core.log.info("[AUDIO_DONE] %s: all its audio is queued", local.response_id)
        core.log.info("[AI_TALK] local prompt %s (%d ms)", prompt, len(audio) // 8)
        core.wake()

    def filler(self) -> None:
        """Tell a caller waiting on a tool "one moment" (each time the wait falls silent)."""
        self.say_local("one_moment")

    def hold(self) -> None:
        """Tell a waiting caller "one moment", once until the backend's audio flows again."""
        with self._core.lock:
            first = self._core.ledger.hold()
        if first:
            self.say_local("one_moment")

    def say_goodbye(self, reason: str) -> bool:
        """Begin a goodbye now (e.g. shutdown); the call hangs up once it has been heard."""
        core = self._core
        with core.lock:
            decision = core.supervisor.goodbye(core.clock.now(), reason)
        core.wake()
        if decision is None or core.closing.is_set():
            return False
        core.log.info("%s %s (%s)", reason_tag(reason), decision.action.value, reason)
        if core.backend.connected:
            self.request("goodbye")
        else:
            self.say_local("goodbye")
        return True

    # --- events (the backend's reader thread) ------------------------------------------

    def on_event(self, ev: base.BackendEvent) -> None:
        core = self._core
        now = core.clock.now()
        with core.lock:
            core.supervisor.backend_heard(now)
        if isinstance(ev, base.AudioDelta):
            self._on_delta(ev, now)
        elif isinstance(ev, base.ResponseCreated):
            self._on_created(ev)
        elif isinstance(ev, base.AudioDone):
            self._on_audio_done(ev, now)
        elif isinstance(ev, base.ResponseDone):
            self._on_done(ev, now)
        elif isinstance(ev, base.CallerSpeechStarted):
            if core.config.server_turns:
                self._barge_in.trigger("server_vad", now)
        elif isinstance(ev, base.CallerTurnCommitted):
            self._on_committed(now)
        elif isinstance(ev, base.ToolCallsReady):
            self.tools.on_tool_calls(ev, now)
        else:
            self._on_session_event(ev)

    def _on_session_event(self, ev: base.BackendEvent) -> None:
        core = self._core
        if isinstance(ev, base.SessionReady):
            self._on_ready()
        elif isinstance(ev, base.ConnectionLost):
            self._on_lost(ev)
        elif isinstance(ev, base.BackendError):
            with core.lock:
                core.ledger.request_failed(ev.request_id)
            core.wake()
            core.observer.backend_error(ev.code)
        elif isinstance(ev, base.Truncated):
            core.log.info("item %s truncated at %d ms", ev.item_id, ev.audio_end_ms)
        elif isinstance(ev, base.CallerTranscript):
            core.log.info("[TRANSCRIPT] caller: %s", ev.text)
            core.recording.caller_said(ev.text, core.clock.now() - core.started_at)
        elif isinstance(ev, base.AgentTranscript):
            with core.lock:
                cut = core.ledger.is_cancelled(ev.response_id)
            core.log.info("[TRANSCRIPT] ai%s: %s", " (cut off by barge-in)" if cut else "",
                          ev.text)
            core.recording.ai_said(ev.item_id, ev.text, core.clock.now() - core.started_at)

    def _on_delta(self, ev: base.AudioDelta, now: float) -> None:
        core = self._core
        queued = True
        with core.lock:
            play = core.ledger.on_delta(ev.response_id, now)
            if play is not None:
                core.playback.on_audio(ev.item_id, ev.response_id, ev.content_index,
                                       len(ev.audio))
                queued = core.playout.put_audio_locked(ev.response_id, ev.item_id, ev.audio)
                core.ai_speaking.set()
        if play is None:
            core.log.debug("audio delta of %s dropped (cancelled or not current)",
                           ev.response_id)
        elif not queued:
            core.log.warning("playout overflow full (10 min of audio): delta dropped")
        elif play.first:
            tag = "[GREETING]" if play.purpose == "greeting" else "[AI_TALK]"
            core.log.info("%s audio of %s started", tag, ev.response_id)

    def _on_created(self, ev: base.ResponseCreated) -> None:
        core = self._core
        with core.lock:
            purpose = core.ledger.on_created(ev.response_id)
            superseded = core.ledger.is_cancelled(ev.response_id)
            if not superseded:
                core.ai_speaking.set()
        core.wake()
        core.log.info("response %s created (%s)", ev.response_id, purpose)
        if superseded:  # ResponseLedger.supersede: a newer answer is owed
            core.log.info("[TURN] answer %s superseded before it was heard: cancelled",
                          ev.response_id)
            core.backend.cancel(ev.response_id)

    def _on_audio_done(self, ev: base.AudioDone, now: float) -> None:
        core = self._core
        with core.lock:
            if not core.ledger.is_live(ev.response_id):
                return
            core.playback.on_audio_done(ev.item_id)
            core.playout.end_item_locked(ev.response_id, ev.item_id)
            watch = core.supervisor.watch_drain(ev.response_id, now)
        if watch:
            self._log_audio_done(ev.response_id)

    def _on_done(self, ev: base.ResponseDone, now: float) -> None:
        core = self._core
        with core.lock:
            done = core.ledger.on_done(ev.response_id)
            watch = done.live and core.supervisor.watch_drain(ev.response_id, now)
        if watch:
            self._log_audio_done(ev.response_id)
        core.wake()
        core.log.info("response %s done: %s%s", ev.response_id, ev.status,
                      f" ({ev.reason})" if ev.reason else "")
        if done.deferred is not None:
            self.request(done.deferred)
        self.tools.deliver()  # results held while this response was in flight

    def _log_audio_done(self, response_id: str) -> None:
        core = self._core
        core.log.info("[AUDIO_DONE] %s: all its audio is queued", response_id)
        core.wake()

    def _on_committed(self, now: float) -> None:
        core = self._core
        if not core.config.server_turns:
            return
        with core.lock:
            heard = core.ledger.take_caller_speech(now)
            just_began = core.ledger.caller_just_began(now)
        if heard:
            self.request("answer")
        elif just_began:
            core.log.info("[UTT] SKIPPED: the server ended a turn as the caller began "
                          "(what it ended came before them): their turn is the next commit")
        else:
            core.log.info("[UTT] SKIPPED: server turn without local speech (noise or echo)")

    # --- the backend session -------------------------------------------------------------

    def _on_ready(self) -> None:
        core = self._core
        with core.lock:
            start = core.ledger.on_session_ready()
        greeting = core.config.greeting
        if start.first:
            if greeting:
                self.request("greeting", _greeting(greeting))
            return
        core.log.info("[BACKEND] reconnected: session settings restored%s",
                      f", asking again for the {start.resume}" if start.resume else "")
        if start.resume == "greeting":
            self.request("greeting", _greeting(greeting))
        elif start.resume is not None:
            self.request(start.resume)

    def _on_lost(self, ev: base.ConnectionLost) -> None:
        core = self._core
        if core.closing.is_set():
            return
        with core.lock:
            core.ledger.on_lost()
        core.wake()
        core.observer.reconnect()
        self.tools.session_lost()
        if ev.retrying:
            self.hold()
            return
        core.log.error("[BACKEND] unavailable after one retry: the caller hears the apology, "
                       "then the call ends")
        self.say_local("apology")
        with core.lock:
            core.supervisor.goodbye(core.clock.now(), BACKEND_UNAVAILABLE)


def _greeting(text: str) -> str:
    return f"Greet the caller by saying exactly: {text}"
