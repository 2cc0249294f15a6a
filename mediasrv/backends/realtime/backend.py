"""The OpenAI Realtime API behind the backend seam: its events to seam events, commands back.

Layer: backends.

One connection at a time (`RealtimeClient`: the socket and its reader thread). When it
is lost -- the socket closes or fails, the handshake never completes, or the call says
it stalled -- it is dialled once more with the same session settings, and the call is
told (`ConnectionLost(retrying=True)`, later `SessionReady(resumed=True)`); a second
loss is final (`retrying=False`). The retry lives here rather than in the call because
what a new connection needs is this backend's business: the session.update it sends,
that a new Realtime session has not heard the caller. The call only decides what the
caller hears meanwhile.

Tools: the session offers the config's tools; function calls are gathered per response
(mediasrv.protocol.toolcalls, `response.done` the authority) and reported as one
`ToolCallsReady` just before that response's `ResponseDone`. Calls of a lost session are
forgotten: the new session never made them.

`_lock` guards which client is current, the retry budget and the threads started; it is
a leaf lock: nothing is sent, logged or called back while it is held. Commands read the
current client without it (one reference read): a command racing a loss reaches the
old client, whose closed socket makes it return False. The tool-call assembler is the
reader thread's own (events come from one reader at a time).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from mediasrv.backends import base
from mediasrv.backends.realtime.client import Connector, RealtimeClient
from mediasrv.protocol import realtime as wire
from mediasrv.protocol.toolcalls import RealtimeToolCalls

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_REFUSED = "conversation_already_has_active_response"  # answers our last response.create
_HARMLESS = frozenset({"response_cancel_not_active"})  # a cancel racing the response's end


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """The session settings sent on every connection (`session.update`)."""

    model: str
    instructions: str
    voice: str
    transcription_model: str = ""
    # `audio.input.turn_detection` when the backend ends turns (server_vad or semantic_vad,
    # built by mediasrv.protocol.realtime); None: we commit turns ourselves
    turn_detection: dict[str, Any] | None = None
    tools: tuple[base.ToolSpec, ...] = ()


class RealtimeBackend:
    """A `mediasrv.backends.base.Backend` over the Realtime API (GA events, mu-law both ways)."""

    def __init__(self, connect: Connector, config: RealtimeConfig, events: base.EventSink, *,
                 closing: threading.Event, name: str, logger: Logger = log) -> None:
        self._connect = connect
        self._closing = closing  # the call's: a loss while it ends is no loss
        self._config = config
        self._events = events
        self._name = name  # of the reader threads
        self._log = logger
        self._lock = threading.Lock()
        self._client: RealtimeClient | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._retries_left = 1
        self._opened = 0  # sessions set up: the first greets, later ones resume
        self._connect_error = ""  # the last failed connect's reason: logged once at ERROR
        self._last_request = ""
        self._tool_calls = RealtimeToolCalls()

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.connected.is_set()

    @property
    def waiting_for(self) -> str:
        return ""  # one service: the call's own reason ("response ... not answered") says it

    def start(self) -> None:
        self._dial()

    def append_audio(self, audio: bytes) -> bool:
        return self._send(wire.append_audio(audio))

    def commit(self) -> bool:
        return self._send(wire.COMMIT)

    def request_response(self, request_id: str, purpose: str, instructions: str) -> bool:
        with self._lock:
            self._last_request = request_id
        return self._send(wire.response_create(request_id, purpose, instructions))

    def cancel(self, response_id: str) -> bool:
        return self._send(wire.response_cancel(response_id))

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> bool:
        return self._send(wire.truncate(item_id, content_index, heard_ms))

    def tool_result(self, call_id: str, output: str) -> bool:
        return self._send(wire.function_call_output(call_id, output))

    def caller_text(self, text: str) -> bool:
        return self._send(wire.user_text(text))

    def reconnect(self, reason: str) -> None:
        client = self._client
        if client is not None:
            client.stop()
            self._lost(client, reason)

    def close(self, timeout: float) -> list[str]:
        with self._lock:
            self._closed = True
            client, threads = self._client, list(self._threads)
        if client is not None:
            client.stop()
        for thread in threads:
            thread.join(timeout)
            timeout = 0.05  # the first join used the budget; the others have ended with it
        return [t.name for t in threads if t.is_alive()]

    # --- the connection ------------------------------------------------------------------

    def _dial(self) -> None:
        client = RealtimeClient(self._connect, name=self._name, on_open=self._on_open,
                                on_event=self._on_event, on_lost=self._lost,
                                closing=self._closing, logger=self._log)
        with self._lock:
            if self._closed or self._closing.is_set():
                return  # the call ended meanwhile: no thread is started that nobody joins
            self._client = client
            self._threads.append(client.thread)
        client.start()

    def _send(self, text: str) -> bool:
        client = self._client
        return client is not None and client.send(text)

    def _on_open(self, client: RealtimeClient) -> None:
        cfg = self._config
        tools = [wire.function_tool(t.name, t.description, t.parameters) for t in cfg.tools]
        self._tool_calls.reset()  # on this client's reader: a new session made no calls yet
        client.send(wire.session_update(model=cfg.model, instructions=cfg.instructions,
                                        voice=cfg.voice, turn_detection=cfg.turn_detection,
                                        transcription_model=cfg.transcription_model,
                                        tools=tools))
        with self._lock:
            self._opened += 1
            resumed = self._opened > 1
        self._events(base.SessionReady(resumed))

    def _lost(self, client: RealtimeClient, reason: str) -> None:
        never_opened = not client.opened
        with self._lock:
            if self._closed or self._closing.is_set() or client is not self._client:
                return  # the call ended, or this loss was already handled
            self._client = None
            retry = self._retries_left > 0
            self._retries_left -= 1
            repeated = never_opened and reason == self._connect_error
            self._connect_error = reason if never_opened else ""
        if repeated:
            self._log.warning("[BACKEND] connect failed again, same reason")
        elif never_opened:
            self._log.error("[BACKEND] %s", reason)
        else:
            self._log.warning("[BACKEND] connection lost: %s", reason)
        self._events(base.ConnectionLost(reason, retrying=retry))
        if retry:
            self._dial()

    # --- events ----------------------------------------------------------------------------

    def _on_event(self, ev: wire.RealtimeEvent) -> None:
        if isinstance(ev, wire.FunctionCallItem):
            self._tool_calls.note(ev.response_id, ev.item)
            return
        if isinstance(ev, wire.ResponseDone):
            calls = self._tool_calls.done(ev.response_id, ev.status, list(ev.function_calls))
            if calls is not None:
                for problem in calls.problems:
                    self._log.warning("[TOOL] %s", problem)
                self._events(base.ToolCallsReady(ev.response_id, calls.calls, calls.problems))
        seam = self._translate(ev)
        if seam is not None:
            self._events(seam)

    def _translate(self, ev: wire.RealtimeEvent) -> base.BackendEvent | None:
        if isinstance(ev, wire.AudioDelta):
            return base.AudioDelta(ev.response_id, ev.item_id, ev.content_index, ev.audio)
        if isinstance(ev, wire.ResponseCreated):
            return base.ResponseCreated(ev.response_id)
        if isinstance(ev, wire.AudioDone):
            return base.AudioDone(ev.response_id, ev.item_id)
        if isinstance(ev, wire.ResponseDone):
            return base.ResponseDone(ev.response_id, ev.status, ev.reason)
        if isinstance(ev, wire.InputSpeechStarted):
            return base.CallerSpeechStarted(ev.item_id)
        if isinstance(ev, wire.InputSpeechStopped):
            return base.CallerSpeechStopped(ev.item_id)
        if isinstance(ev, wire.InputCommitted):
            return base.CallerTurnCommitted(ev.item_id)
        if isinstance(ev, wire.ErrorEvent):
            return self._error(ev)
        if isinstance(ev, wire.Truncated):
            return base.Truncated(ev.item_id, ev.audio_end_ms)
        if isinstance(ev, wire.InputTranscript):
            return base.CallerTranscript(ev.item_id, ev.transcript)
        if isinstance(ev, wire.OutputTranscript):
            return base.AgentTranscript(ev.response_id, ev.item_id, ev.transcript)
        if isinstance(ev, wire.SessionEvent):
            self._log.info("realtime %s", ev.type)
        return None  # events the call does not act on

    def _error(self, ev: wire.ErrorEvent) -> base.BackendError:
        harmless = ev.code in _HARMLESS
        if harmless:
            self._log.debug("realtime: %s (harmless)", ev.code)
        else:
            self._log.warning("realtime error %s: %s", ev.code, ev.message)
        request = ev.event_id
        if not request and ev.code == _REFUSED:
            with self._lock:
                request = self._last_request
        return base.BackendError(ev.code, ev.message, request, harmless=harmless)
