"""The cascade behind the backend seam: Deepgram -> chat -> ElevenLabs, on threads.

Layer: backends.

Threads of one call's cascade (all end when the call's `closing` is set, or at `close`):

- mediasrv-cascade-<sid>: the dispatcher. It owns the pure core (pipeline.Pipeline)
  alone, so the core needs no lock: every command of the call and every report of a
  reader becomes a closure on one inbox, and the dispatcher runs them in order, carries
  out the actions each returns (sends, dials, the chat job, events to the call), and
  ticks the core at its next deadline (Deepgram's KeepAlive, a Finalize left
  unanswered). Events reach the call from this thread only, in the order decided.
- mediasrv-dg-<sid>, mediasrv-tts-<sid>: the Deepgram and ElevenLabs readers
  (sockets.WsLink; a new one per connection), parsing on their own thread;
- mediasrv-chat-<sid>: the chat worker (chat.ChatWorker).

Commands never block: a put on the inbox (bounded: a wedged dispatcher costs dropped
audio, logged, never a stuck rx loop). Readers block on a full inbox for a bounded time
instead: back-pressure onto their socket. `connected` and `waiting_for` are published
by the dispatcher after each step and read without a lock (one reference each).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from mediasrv.backends import base
from mediasrv.backends.cascade import actions as act
from mediasrv.backends.cascade import chat_wire, stt_wire, tts_wire
from mediasrv.backends.cascade.chat import ChatTarget, ChatWorker
from mediasrv.backends.cascade.pipeline import Pipeline
from mediasrv.backends.cascade.sockets import WsLink, WsTarget
from mediasrv.clock import Clock

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

INBOX = 2000  # inputs waiting for the dispatcher: ~20 s of appends and audio together
_PUT_S = 1.0  # how long a reader waits on a full inbox before dropping its message
_POLL_S = 0.25  # the dispatcher's longest sleep without a deadline (`closing` is seen)
_TAGS = {act.STT: "dg", act.TTS: "tts"}  # thread names: mediasrv-dg-<sid>, -tts-<sid>

Step = Callable[[], list[act.Action]]


@dataclass(frozen=True)
class Services:
    """Where the three services are and the keys for them (stand-ins or the real ones)."""

    deepgram_url: str
    deepgram_key: str
    deepgram_model: str
    chat_base_url: str
    chat_key: str
    elevenlabs_url: str
    elevenlabs_key: str
    voice_id: str
    tts_model: str
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 4.0  # a chat stream with no byte for this long has stalled
    endpointing_ms: int = 300  # Deepgram's silence before speech_final (server turns)

    def targets(self) -> dict[str, WsTarget]:
        stt = stt_wire.listen_url(self.deepgram_url, model=self.deepgram_model,
                                  endpointing_ms=self.endpointing_ms)
        tts = tts_wire.stream_url(self.elevenlabs_url, voice_id=self.voice_id,
                                  model=self.tts_model)
        return {
            act.STT: WsTarget(act.STT, stt, (f"Authorization: Token {self.deepgram_key}",),
                              self.connect_timeout_s, stt_wire.parse),
            act.TTS: WsTarget(act.TTS, tts, (f"xi-api-key: {self.elevenlabs_key}",),
                              self.connect_timeout_s, tts_wire.parse),
        }


class CascadeBackend:
    """A `mediasrv.backends.base.Backend` over Deepgram, a chat model and ElevenLabs."""

    def __init__(self, services: Services, config: act.CascadeConfig, events: base.EventSink,
                 *, closing: threading.Event, name: str, clock: Clock,
                 logger: Logger = log) -> None:
        self._events = events
        self._closing = closing  # the call's
        self._clock = clock
        self._log = logger
        self._sid = name.rpartition("-")[2]
        self._targets = services.targets()
        self._core = Pipeline(config, clock.now(), logger)
        self._inbox: queue.Queue[Step | None] = queue.Queue(INBOX)
        self._reports = _Reports(self._core, lambda step: self._put(step, block=True))
        self._links: dict[str, WsLink] = {}
        self._threads: list[threading.Thread] = []  # dispatcher only, until close()
        self._lock = threading.Lock()  # a leaf: guards _threads and _closed for close()
        self._closed = False
        self._chat = ChatWorker(
            ChatTarget(services.chat_base_url, services.chat_key, services.connect_timeout_s,
                       services.read_timeout_s),
            self._reports, closing=closing, clock=clock,
            name=f"mediasrv-chat-{self._sid}", logger=logger)
        # Daemon: never keep a dying process up; it ends on `closing` or close().
        self._thread = threading.Thread(target=self._run, name=f"mediasrv-cascade-{self._sid}",
                                        daemon=True)
        self._connected = False
        self._stt_up = False
        self._waiting_for = ""

    # --- the seam: commands (any thread of the call, never under its lock) ---------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def waiting_for(self) -> str:
        """Say what a waiting caller waits on, naming the service ("" if nothing)."""
        return self._waiting_for

    def start(self) -> None:
        self._threads += [self._thread, self._chat.thread]
        self._thread.start()
        self._chat.start()
        self._put(self._core.start)

    def append_audio(self, audio: bytes) -> bool:
        if not self._stt_up:
            return False
        now = self._clock.now()
        return self._put(lambda: self._core.append(audio, now))

    def commit(self) -> bool:
        now = self._clock.now()
        return self._connected and self._put(lambda: self._core.commit(now))

    def request_response(self, request_id: str, purpose: str, instructions: str) -> bool:
        now = self._clock.now()
        return self._connected and self._put(
            lambda: self._core.request(request_id, purpose, instructions, now))

    def cancel(self, response_id: str) -> bool:
        return self._connected and self._put(lambda: self._core.cancel(response_id))

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> bool:
        return self._connected and self._put(lambda: self._core.truncate(item_id, heard_ms))

    def tool_result(self, call_id: str, output: str) -> bool:
        return self._connected and self._put(lambda: self._core.tool_result(call_id, output))

    def caller_text(self, text: str) -> bool:
        return self._connected and self._put(lambda: self._core.caller_text(text))

    def reconnect(self, reason: str) -> None:
        now = self._clock.now()
        self._put(lambda: self._core.stalled(reason, now))

    def close(self, timeout: float) -> list[str]:
        deadline = self._clock.now() + timeout
        with self._lock:
            self._closed = True
        self._put(None)
        if self._thread.ident is not None:
            self._thread.join(timeout)
        with self._lock:
            links, threads = list(self._links.values()), list(self._threads)
        self._chat.stop()
        for link in links:
            link.stop()
        for thread in threads:
            if thread.ident is not None:
                thread.join(max(0.05, deadline - self._clock.now()))
        return [t.name for t in threads if t.is_alive()]

    # --- the inbox -----------------------------------------------------------------------

    def _put(self, step: Step | None, *, block: bool = False) -> bool:
        try:
            if block and threading.current_thread() is not self._thread:
                self._inbox.put(step, timeout=_PUT_S)
            else:
                self._inbox.put_nowait(step)
            return True
        except queue.Full:
            self._log.error("cascade inbox full (%d): input dropped", INBOX)
            return False

    # --- the dispatcher --------------------------------------------------------------------

    def _run(self) -> None:
        core = self._core
        while not self._closing.is_set():
            now = self._clock.now()
            due = core.next_deadline()
            if due is not None and now >= due:
                self._do(partial(core.tick, now))
                continue
            try:
                step = self._inbox.get(timeout=_POLL_S if due is None else min(_POLL_S, due - now))
            except queue.Empty:
                continue
            if step is None:
                return  # close()
            self._do(step)

    def _do(self, step: Step) -> None:
        try:
            actions = step()
            self._publish()  # before the events: the call may command at once (a greeting)
            for action in actions:
                self._act(action)
        except Exception:  # the safety net: one bad input must not kill the dispatcher
            self._log.exception("cascade step failed; input dropped")
        self._publish()

    def _publish(self) -> None:
        core = self._core
        self._connected = core.connected
        self._stt_up = core.links.up(act.STT) and core.connected
        self._waiting_for = core.waiting_for()

    def _act(self, action: act.Action) -> None:
        if isinstance(action, act.SendStt):
            self._send(act.STT, action.payload)
        elif isinstance(action, act.SendTts):
            self._send(act.TTS, action.text)
            if action.first_of:
                self._core.first_text_sent(action.first_of, self._clock.now())
        elif isinstance(action, act.StartChat):
            self._chat.submit(action.job, action.body)
        elif isinstance(action, act.StopChat):
            self._chat.abort(action.job)
        elif isinstance(action, act.Dial):
            self._dial(action.service, action.serial)
        elif isinstance(action, act.HangUp):
            link = self._links.get(action.service)
            if link is not None:
                link.stop()
        elif not self._closing.is_set():
            self._events(action.event)

    def _send(self, service: str, payload: str | bytes) -> None:
        link = self._links.get(service)
        if link is not None:
            link.send(payload)

    def _dial(self, service: str, serial: int) -> None:
        old = self._links.get(service)
        if old is not None:
            old.stop()
        link = WsLink(self._targets[service], serial, self._reports, closing=self._closing,
                      clock=self._clock, name=f"mediasrv-{_TAGS[service]}-{self._sid}",
                      logger=self._log)
        with self._lock:
            if self._closed:
                return  # the call ended meanwhile: no thread that nobody joins
            self._links[service] = link
            self._threads = [t for t in self._threads if t.is_alive() or not t.ident]
            self._threads.append(link.thread)
        link.start()


class _Reports:
    """What the readers and the chat worker report, as steps on the dispatcher's inbox
    (`sockets.LinkListener`, `chat.ChatListener`); they wait on a full inbox, bounded."""

    def __init__(self, core: Pipeline, put: Callable[[Step], bool]) -> None:
        self._core = core
        self._put = put

    def opened(self, service: str, serial: int, at: float) -> None:
        self._put(lambda: self._core.opened(service, serial, at))

    def message(self, service: str, serial: int, msg: Any, at: float) -> None:
        if service == act.STT:
            self._put(lambda: self._core.on_stt(serial, msg, at))
        else:
            self._put(lambda: self._core.on_tts(serial, msg, at))

    def lost(self, service: str, serial: int, reason: str, at: float) -> None:
        self._put(lambda: self._core.lost(service, serial, reason, at))

    def sent(self, job: int, at: float) -> None:
        self._put(lambda: self._core.chat_sent(job, at))

    def event(self, job: int, ev: chat_wire.ChatEvent, at: float) -> None:
        self._put(lambda: self._core.on_chat(job, ev, at))

    def ended(self, job: int, error: str, at: float) -> None:
        self._put(lambda: self._core.chat_ended(job, error, at))
