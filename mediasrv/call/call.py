"""One phone call: the rx loop, the realtime dispatcher, barge-in, drain watchers.

Threads of a call (all end when `closing` is set; every wait has a bound):
- rx loop: the flask-sock handler thread running `Call.run`; reads Twilio, runs the
  turn policy on every inbound frame, forwards caller audio, ticks the timers;
- mediasrv-rt-<sid>: the Realtime reader (realtime_client.py), calls `_on_event`;
- mediasrv-frame-<sid> and mediasrv-tx-<sid>: audio out (tx.py);
- mediasrv-drain-<sid>-<n>: at most one per response, clears speaking state.

State that must change together (active/playing response, cancelled ids, the backlog,
the playback ledger, the silence policy) lives here behind `self._lock`, the one call
lock. It is never held while blocking on a socket or a full queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE
from mediasrv.backends.realtime.client import Connector, RealtimeClient
from mediasrv.call.observer import NULL_OBSERVER, CallLog, Observer
from mediasrv.call.tx import Frame, Framer, TwilioWriter, TxLoop
from mediasrv.clock import Clock
from mediasrv.errors import PeerClosed, TwilioProtocolError
from mediasrv.policy.drain import DrainOutcome, DrainTracker
from mediasrv.policy.guards import DeadAirWatch, InboundBudget
from mediasrv.policy.playback import MarkOutcome, Playback
from mediasrv.policy.silence import Action, SilencePolicy
from mediasrv.policy.turns import (
    BargeIn,
    EndOfUtterance,
    TurnConfig,
    TurnPolicy,
    UtteranceSkipped,
    UtteranceStarted,
)
from mediasrv.protocol import realtime as rp
from mediasrv.protocol.twilio import Dtmf, Mark, Media, Start, Stop, TwilioMessages, parse_twilio
from mediasrv.web.settings import Settings

log = logging.getLogger("mediasrv.call")  # one logger for all parts of a call

QUEUE_FRAMES = 150  # 3 s of 20 ms frames: enough to ride out jitter, small enough to flush
# Audio beyond the queues waits in a per-response backlog; 6000 deltas is far beyond any
# answer (10 min at 100 ms deltas -- Twilio itself refuses more buffered audio than that).
BACKLOG_MAX = 6000
START_TIMEOUT_S = 10.0
# The drain watcher runs for most of every answer (the backend streams faster than real
# time): 25 polls a second keep its wake-ups small next to the tx loop's 50, and decide
# within 40 ms -- far inside DRAIN_TIMEOUT_MS.
DRAIN_POLL_S = 0.04
TX_FAILURE_GRACE_S = 1.0  # after a failed send, how long the rx loop may take to see why
MAX_GAP_PAD_MS = 2000  # longest inbound gap padded with silence for the backend
BACKEND_UNAVAILABLE = "backend unavailable"
# Prompts a lost session owed that a new session can say as well (not answers: see there).
RESUMABLE = ("greeting", "idle_prompt", "goodbye")
# What an ending or a goodbye is about, for its log line's tag (silence is the default).
REASON_TAGS = {BACKEND_UNAVAILABLE: "[BACKEND]", "server shutting down": "[SHUTDOWN]",
               "max_call_duration": "[MAX_CALL]"}
PURPOSE_PRIORITY = {"answer": 1, "idle_prompt": 1, "greeting": 1, "goodbye": 2}
INSTRUCTIONS = {
    "idle_prompt": "The caller has been silent. Briefly ask whether they are still there.",
    "goodbye": "Say a short, polite goodbye. The call is ending now.",
}


class TwilioSocket(Protocol):
    def send(self, data: str) -> None: ...

    def receive(self, timeout: float) -> str | bytes | None:
        """Return a message, None on timeout; raise PeerClosed when the socket is gone."""
        ...


@dataclass
class CallDeps:
    settings: Settings
    clock: Clock
    connect_realtime: Connector
    prompts: Mapping[str, bytes] = field(default_factory=dict)
    observer: Observer = NULL_OBSERVER
    check_start: Callable[[Start], str | None] = lambda start: None  # reason to refuse
    # Ends the call at Twilio (REST) when the server hangs up; None = closing the socket only.
    hang_up: Callable[[str], None] | None = None


class Call:
    def __init__(self, ws: TwilioSocket, deps: CallDeps) -> None:
        self.ws = ws
        self.deps = deps
        self.s = deps.settings
        self.clock = deps.clock
        self.obs = deps.observer
        self.closing = threading.Event()
        self.is_ai_speaking = threading.Event()
        self.audio_out_q: queue.Queue[tuple[str, str, bytes | None]] = queue.Queue(QUEUE_FRAMES)
        self.tx_q: queue.Queue[Frame] = queue.Queue(QUEUE_FRAMES)
        self.log: CallLog = CallLog(log, {"call_sid": "-"})
        self.call_sid = ""
        self.end_reason = ""
        self.started_at = self.clock.now()
        self._lock = threading.Lock()
        self.playback = Playback()
        self._backlog: deque[tuple[str, str, bytes | None]] = deque()
        self._active_id: str | None = None
        self._playing_id: str | None = None
        self._pending: str | None = None  # purpose of a response.create not yet answered
        self._pending_eid = ""
        self._want: str | None = None  # a response deferred until the active one is done
        self._cancelled: set[str] = set()
        self._watched: set[str] = set()
        self._purposes: dict[str, str] = {}
        self._announced: set[str] = set()
        self._first_delta_at: dict[str, float] = {}
        self._speech_seen = False
        # The caller is mid-utterance: the silence clock must not run. rx loop only.
        self._caller_talking = False
        self._req_n = 0
        self.turns = 0
        self.barge_ins = 0
        self._reconnects_left = 1
        self._sessions = 0  # backend sessions opened: the greeting is the first one's
        # "One moment" plays once per outage (dead air, a lost backend), until audio flows.
        self._holding = False
        self._resume: str | None = None  # a prompt the lost session owed, asked for again
        self._connect_error = ""  # its ERROR line (host, reason, hint) is logged once
        self._sent_ref: deque[tuple[float, bytes]] = deque(maxlen=256)
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._appended = 0
        self._next_ts: int | None = None
        self._bad_inputs = 0
        self._budget = InboundBudget(self.started_at)
        self.flood_dropped = 0  # caller frames beyond the inbound budget
        self._dead_air = DeadAirWatch()
        self.dead_air_events = 0
        self._caller_ended = False  # the caller (Twilio) ended it: no REST hang-up
        self._tx_failed: tuple[float, str] | None = None  # set by the tx thread, read by rx
        self._threads: list[threading.Thread] = []
        self._rt: RealtimeClient | None = None
        self.silence = SilencePolicy(self.s.silence_timeout_s, self.s.max_call_s, self.started_at)
        self.policy = TurnPolicy(
            TurnConfig(
                end_silence_ms=self.s.end_silence_ms,
                min_utterance_ms=self.s.min_utterance_ms,
                barge_in_min_ms=self.s.barge_in_min_ms,
                echo_window_ms=self.s.echo_window_ms,
                erl_db=self.s.echo_erl_db,
                echo_cancel=self.s.echo_cancel,
            ),
            logger=self.log,
        )
        self.writer: TwilioWriter | None = None
        self.tx: TxLoop | None = None

    # --- lifecycle -----------------------------------------------------------------

    def run(self) -> str:
        """Serve the call on the current thread (the rx loop); return the end reason."""
        start = self._await_start()
        if start is not None:
            refusal = self.deps.check_start(start)
            if refusal:
                self.log.warning("call refused: %s", refusal)
                self.end_reason = refusal
                start = None
        if start is None:
            self.end_reason = self.end_reason or "no start message"
            self.closing.set()
            self.log.info("stream ended before the call started: %s", self.end_reason)
            return self.end_reason
        self._setup(start)
        try:
            self._rx_loop()
        finally:
            self._shutdown()
        return self.end_reason

    def end(self, reason: str) -> None:
        """End the call from any thread (the rx loop closes the Twilio socket)."""
        with self._lock:
            if not self.end_reason:
                self.end_reason = reason
        self.closing.set()

    def _await_start(self) -> Start | None:
        deadline = self.clock.now() + START_TIMEOUT_S
        while self.clock.now() < deadline and not self.closing.is_set():
            try:
                data = self.ws.receive(timeout=0.5)
            except PeerClosed:
                self.end_reason = "twilio closed before start"
                return None
            if data is None:
                continue
            try:
                msg = parse_twilio(data, self.s.ws_max_message_bytes)
            except TwilioProtocolError as exc:
                self._bad_input(str(exc))
                continue
            if isinstance(msg, Start):
                return msg
            if isinstance(msg, Stop):
                self.end_reason = "stop before start"
                return None
            if isinstance(msg, Media):
                self._bad_input("media before start: dropped")
        return None

    def _setup(self, start: Start) -> None:
        self.call_sid = start.call_sid
        self.log.bind(start.call_sid)
        self.writer = TwilioWriter(self.ws, TwilioMessages(start.stream_sid), self.clock)
        self.tx = TxLoop(
            self.tx_q,
            self.writer,
            self.clock,
            self.closing,
            prebuffer_ms=self.s.prebuffer_ms,
            mark_interval_ms=self.s.mark_interval_ms,
            register_mark=self._register_mark,
            register_probe=self._register_probe,
            on_first_frame=self._on_first_frame,
            sent_ref=self._sent_ref,
        )
        framer = Framer(
            self.audio_out_q, self.tx_q, self.writer, self._is_cancelled, self._refill, self.closing
        )
        sid = start.call_sid[-8:]
        for name, target in (("frame", framer.run), ("tx", self._tx_run)):
            # Daemon: never keep a dying process up; they still end on `closing`.
            thread = threading.Thread(target=target, name=f"mediasrv-{name}-{sid}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self.log.info("call started (stream %s, turn detection %s)", start.stream_sid,
                      self.s.turn_detection)
        self.obs.call_started()
        self._connect_realtime()

    def _connect_realtime(self) -> None:
        client = RealtimeClient(
            self.deps.connect_realtime,
            name=f"mediasrv-rt-{self.call_sid[-8:]}",
            on_open=self._on_realtime_open,
            on_event=self._on_event,
            on_lost=self._on_realtime_lost,
            closing=self.closing,
            logger=self.log,
        )
        self._rt = client  # before start: its thread may call back at once
        self._threads.append(client.thread)
        self._last_rt_event = self.clock.now()
        client.start()

    def _tx_run(self) -> None:
        assert self.tx is not None
        try:
            self.tx.run()
        except PeerClosed as exc:
            # The rx loop names the ending: a caller's `stop` or close is usually still
            # in its buffer. If it hears nothing for a second, the socket is broken.
            self._tx_failed = (self.clock.now(), str(exc))

    def _shutdown(self) -> None:
        self.closing.set()
        if self._rt is not None:
            self._rt.stop()
        deadline = self.clock.now() + 1.0
        for thread in list(self._threads):
            thread.join(timeout=max(0.05, deadline - self.clock.now()))
            if thread.is_alive():
                self.log.error("thread %s did not end within 1 s", thread.name)
        if not self._caller_ended and self.deps.hang_up is not None:
            try:
                self.deps.hang_up(self.call_sid)
                self.log.info("call completed through the Twilio REST API")
            except Exception as exc:  # the socket close still ends the call (PROTOCOLS 1.7)
                self.log.warning("REST hang-up failed: %s", exc.__class__.__name__)
        duration = self.clock.now() - self.started_at
        self.log.info(
            "call ended: reason=%s duration=%.1fs turns=%d barge_ins=%d",
            self.end_reason or "unknown", duration, self.turns, self.barge_ins,
        )
        self.obs.call_ended(self.end_reason or "unknown")

    # --- rx loop -----------------------------------------------------------------

    def _rx_loop(self) -> None:
        while not self.closing.is_set():
            try:
                data = self.ws.receive(timeout=0.1)
            except PeerClosed:
                self._caller_ended = True
                self.end("twilio socket closed")
                return
            now = self.clock.now()
            if data is not None:
                try:
                    self._on_twilio(data, now)
                except Exception:  # the safety net: one bad message must not end the call
                    self._bad_input("message handler failed (see traceback): dropped")
                    self.log.exception("twilio message handler failed")
            self._tick(now)

    def _on_twilio(self, data: str | bytes, now: float) -> None:
        try:
            msg = parse_twilio(data, self.s.ws_max_message_bytes)
        except TwilioProtocolError as exc:
            self._bad_input(str(exc))
            return
        if isinstance(msg, Media):
            self._on_media(msg, now)
        elif isinstance(msg, Mark):
            self._on_mark(msg.name, now)
        elif isinstance(msg, Stop):
            self._caller_ended = True
            self.end("caller hung up (stop)")
        elif isinstance(msg, Dtmf):
            self.log.info("dtmf digit %s", msg.digit)
        elif isinstance(msg, Start):
            self._bad_input("second start: dropped")

    def _bad_input(self, reason: str) -> None:
        self._bad_inputs += 1
        self.obs.bad_input()
        # A flood of garbage must not become a flood of log lines.
        if self._bad_inputs <= 20 or self._bad_inputs % 500 == 0:
            self.log.warning("twilio input dropped (%d so far): %s", self._bad_inputs, reason)

    def _on_media(self, msg: Media, now: float) -> None:
        if not self._budget.take(len(msg.payload) / 8, now):
            self.flood_dropped += 1
            self._bad_input("media faster than real time (flood): dropped")
            return
        if msg.timestamp_ms >= 0:
            if self._next_ts is not None and msg.timestamp_ms > self._next_ts:
                self._on_gap(msg.timestamp_ms - self._next_ts, now)
            self._next_ts = msg.timestamp_ms + len(msg.payload) // 8
        ai_playing = self._ai_playing()
        while self._sent_ref:
            sent_at, frame = self._sent_ref.popleft()
            self.policy.on_sent(frame, sent_at)
        closing = self.closing.is_set()
        for start in range(0, len(msg.payload), FRAME_BYTES):
            step = self.policy.feed(
                msg.payload[start : start + FRAME_BYTES], now, ai_playing=ai_playing,
                closing=closing,
            )
            if step.forward:
                self._forward(step.forward)
            for event in step.events:
                self._on_turn_event(event, now)

    def _on_gap(self, gap_ms: int, now: float) -> None:
        """Twilio may omit silent frames: the VAD hears silence, the server VAD too."""
        self.log.debug("inbound gap of %d ms treated as silence", gap_ms)
        step = self.policy.feed_gap(gap_ms, now, closing=self.closing.is_set())
        for event in step.events:
            self._on_turn_event(event, now)
        pad_ms = min(gap_ms, MAX_GAP_PAD_MS)
        # Padding is caller audio too: forged timestamps must not amplify a flood.
        if self.s.turn_detection == "server" and self._budget.take(pad_ms, now):
            self._forward(bytes([ULAW_SILENCE]) * pad_ms * 8)

    def _forward(self, audio: bytes) -> None:
        # Batched: one append per APPEND_BATCH_MS instead of one per 20 ms frame.
        self._batch.append(audio)
        self._batch_bytes += len(audio)
        if self._batch_bytes >= self.s.append_batch_ms * 8:
            self._flush_audio()

    def _flush_audio(self) -> None:
        if not self._batch:
            return
        audio = b"".join(self._batch)
        self._batch.clear()
        self._batch_bytes = 0
        if self._rt is not None and self._rt.send(rp.append_audio(audio)):
            self._appended += len(audio)

    def _on_turn_event(self, event: object, now: float) -> None:
        if isinstance(event, UtteranceStarted):
            with self._lock:
                self.silence.on_caller_speech(now)
                self._speech_seen = True
            self._caller_talking = True
        elif isinstance(event, BargeIn):
            if self.s.turn_detection == "local":
                self.barge_in("local_vad", now, speech_ms=event.speech_ms)
        elif isinstance(event, EndOfUtterance):
            self._caller_talking = False
            with self._lock:
                self.silence.on_caller_speech(now)
            if self.s.turn_detection == "local":
                self._end_of_turn()
        elif isinstance(event, UtteranceSkipped):
            self._caller_talking = False  # silence is timed from the end of the sound

    def _end_of_turn(self) -> None:
        self._flush_audio()
        if self._appended <= 0:
            self.log.info("[UTT] SKIPPED: no caller audio reached the backend")
            return
        if self._rt is not None and self._rt.send(rp.COMMIT):
            self._appended = 0
            self.request_response("answer")

    def _on_mark(self, name: str, now: float) -> None:
        with self._lock:
            echo = self.playback.on_mark_echo(name, now)
        if echo.outcome is MarkOutcome.UNKNOWN:
            self._bad_input(f"mark {name[:60]!r} we never sent: dropped")
        elif echo.is_end and echo.item is not None:
            self.log.info("[PLAYED] item %s fully heard (%d ms)", echo.item.item_id,
                          echo.item.heard_ms)

    def _tick(self, now: float) -> None:
        failed = self._tx_failed
        if failed is not None and now - failed[0] >= TX_FAILURE_GRACE_S:
            self._caller_ended = True
            self.end(f"twilio socket failed: {failed[1]}")
            return
        with self._lock:
            if self._caller_talking:
                self.silence.on_caller_speech(now)  # a long sentence is not silence
            decision = self.silence.tick(now, ai_busy=self._ai_busy_locked())
            stalled = (self._pending is not None or self._active_id is not None) and (
                now - self._last_rt_event > self.s.openai_stall_timeout_s
            )
            waiting = self._owes_audio_locked()
            why = self._dead_air_reason_locked() if waiting else ""
            last_sent = self.writer.last_sent_at if self.writer is not None else None
            silent = self._dead_air.step(now, reason=why, last_sent_at=last_sent)
        if silent is not None:
            self.dead_air_events += 1
            self.log.warning("[DEAD_AIR] caller waiting in silence for %.1f s: %s", silent, why)
            self._hold()
        if stalled and self._rt is not None and self._rt.connected.is_set():
            self._last_rt_event = now
            self._rt.stop()
            self._on_realtime_lost(f"stalled: no event for {self.s.openai_stall_timeout_s:g} s "
                                   "(OPENAI_STALL_TIMEOUT_S)")
        if decision is None:
            return
        self.log.info("%s %s (%s)", _tag(decision.reason), decision.action.value, decision.reason)
        if decision.action is Action.ASK_STILL_THERE:
            self.request_response("idle_prompt")
        elif decision.action is Action.SAY_GOODBYE:
            self.request_response("goodbye")
        else:
            self.end(decision.reason)

    def say_goodbye(self, reason: str) -> bool:
        """Begin a goodbye now (e.g. shutdown); the call hangs up once it has been heard."""
        with self._lock:
            decision = self.silence.goodbye(self.clock.now(), reason)
        if decision is None or self.closing.is_set():
            return False
        self.log.info("%s %s (%s)", _tag(reason), decision.action.value, reason)
        rt = self._rt
        if rt is not None and rt.connected.is_set():
            self.request_response("goodbye")
        else:
            self.say_local("goodbye")
        return True

    # --- state queries (callers hold no lock unless the name says so) -------------

    def backlog_len(self) -> int:
        return len(self._backlog)

    def inbound_backlog(self) -> int:
        """Twilio messages received by the socket but not yet read (if it can tell)."""
        backlog = getattr(self.ws, "backlog", None)
        return int(backlog()) if callable(backlog) else 0

    def _owes_audio_locked(self) -> bool:
        assert self._lock.locked()
        # Audio flowing is seen by DeadAirWatch (frames sent); this says whether any is due.
        if self.closing.is_set() or self._caller_talking:
            return False
        connected = self._rt is not None and self._rt.connected.is_set()
        return not connected or self._pending is not None or self._active_id is not None

    def _dead_air_reason_locked(self) -> str:
        assert self._lock.locked()
        if self._rt is None or not self._rt.connected.is_set():
            return "backend not connected (connecting, reconnecting or gone)"
        if self._pending is not None:
            return f"response.create for {self._pending} not answered by the backend yet"
        return f"response {self._active_id} active but no audio from the backend yet"

    def _queued(self) -> int:
        return self.audio_out_q.qsize() + self.tx_q.qsize() + len(self._backlog)

    def _frames_sent(self) -> int:
        return self.writer.frames_sent if self.writer is not None else 0

    def _ai_playing(self) -> bool:
        """Is AI audio still playing at the caller: queued here or unheard at Twilio?"""
        if self.is_ai_speaking.is_set() or self._queued():
            return True
        with self._lock:
            return self.playback.has_unheard()

    def _ai_busy_locked(self) -> bool:
        assert self._lock.locked()
        return (
            self._pending is not None
            or self._active_id is not None
            or self.is_ai_speaking.is_set()
            or self._queued() > 0
            or self.playback.has_unheard()
        )

    def _is_cancelled(self, response_id: str) -> bool:
        with self._lock:
            return response_id in self._cancelled

    # --- realtime events (reader thread) ------------------------------------------

    def _on_realtime_open(self) -> None:
        s = self.s
        turn = rp.server_vad(s.server_vad_threshold, s.server_vad_silence_ms)
        rt = self._rt
        assert rt is not None
        rt.send(
            rp.session_update(
                model=s.openai_realtime_model,
                instructions=s.instructions,
                voice=s.openai_voice,
                turn_detection=turn if s.turn_detection == "server" else None,
                transcription_model=s.input_transcription_model,
            )
        )
        with self._lock:
            self._sessions += 1
            first = self._sessions == 1
            resume, self._resume = self._resume, None
        if first and s.greeting:
            self.request_response("greeting", self._greeting_instructions())
        elif not first:
            self.log.info("[BACKEND] reconnected: session settings restored%s",
                          f", asking again for the {resume}" if resume else "")
            if resume == "greeting":
                self.request_response("greeting", self._greeting_instructions())
            elif resume is not None:
                self.request_response(resume)

    def _greeting_instructions(self) -> str:
        return f"Greet the caller by saying exactly: {self.s.greeting}"

    def _on_event(self, ev: rp.RealtimeEvent) -> None:
        self._last_rt_event = self.clock.now()
        if isinstance(ev, rp.AudioDelta):
            self._on_delta(ev)
        elif isinstance(ev, rp.ResponseCreated):
            self._on_response_created(ev.response_id)
        elif isinstance(ev, rp.AudioDone):
            self._on_audio_done(ev.response_id, ev.item_id)
        elif isinstance(ev, rp.ResponseDone):
            self._on_response_done(ev)
        elif isinstance(ev, rp.InputSpeechStarted):
            if self.s.turn_detection == "server":
                self.barge_in("server_vad", self.clock.now())
        elif isinstance(ev, rp.InputCommitted):
            self._on_committed()
        elif isinstance(ev, rp.ErrorEvent):
            self._on_error(ev)
        elif isinstance(ev, rp.Truncated):
            self.log.info("item %s truncated at %d ms", ev.item_id, ev.audio_end_ms)
        elif isinstance(ev, rp.InputTranscript):
            self.log.info("[TRANSCRIPT] caller: %s", ev.transcript)
        elif isinstance(ev, rp.OutputTranscript):
            with self._lock:
                cut = ev.response_id in self._cancelled
            self.log.info("[TRANSCRIPT] ai%s: %s", " (cut off by barge-in)" if cut else "",
                          ev.transcript)
        elif isinstance(ev, rp.SessionEvent):
            self.log.info("realtime %s", ev.type)

    def _on_delta(self, ev: rp.AudioDelta) -> None:
        rid = ev.response_id
        with self._lock:
            if rid != self._playing_id or rid in self._cancelled:
                dropped = True
            else:
                dropped = False
                self.playback.on_audio(ev.item_id, rid, ev.content_index, len(ev.audio))
                self._enqueue_locked((rid, ev.item_id, ev.audio))
                self.is_ai_speaking.set()
                first = rid not in self._announced
                if first:
                    self._holding = False  # the backend speaks again: a new outage may hold
                    self._announced.add(rid)
                    self._first_delta_at[rid] = self.clock.now()
                    tag = "[GREETING]" if self._purposes.get(rid) == "greeting" else "[AI_TALK]"
        if dropped:
            self.log.debug("audio delta of %s dropped (cancelled or not current)", rid)
        elif first:
            self.log.info("%s audio of %s started", tag, rid)

    def _enqueue_locked(self, entry: tuple[str, str, bytes | None]) -> None:
        assert self._lock.locked()
        if not self._backlog:
            try:
                self.audio_out_q.put_nowait(entry)
                return
            except queue.Full:
                pass
        if len(self._backlog) >= BACKLOG_MAX:
            self.log.warning("audio backlog full (%d deltas): delta dropped", BACKLOG_MAX)
            return
        self._backlog.append(entry)

    def _refill(self) -> None:
        """Move backlog into audio_out_q (framer thread, after each get)."""
        with self._lock:
            while self._backlog:
                try:
                    self.audio_out_q.put_nowait(self._backlog[0])
                except queue.Full:
                    return
                self._backlog.popleft()

    def _on_response_created(self, rid: str) -> None:
        with self._lock:
            purpose = self._pending or "unsolicited"
            self._pending = None
            self._active_id = rid
            self._playing_id = rid
            self._purposes[rid] = purpose
            self.is_ai_speaking.set()
        self.log.info("response %s created (%s)", rid, purpose)

    def _on_audio_done(self, rid: str, item_id: str) -> None:
        with self._lock:
            if rid != self._playing_id or rid in self._cancelled:
                return
            self.playback.on_audio_done(item_id)
            self._enqueue_locked((rid, item_id, None))
            self._watch_drain_locked(rid)

    def _on_response_done(self, ev: rp.ResponseDone) -> None:
        with self._lock:
            if self._active_id == ev.response_id:
                self._active_id = None
            want, self._want = self._want, None
            if ev.response_id == self._playing_id and ev.response_id not in self._cancelled:
                self._watch_drain_locked(ev.response_id)
        self.log.info("response %s done: %s%s", ev.response_id, ev.status,
                      f" ({ev.reason})" if ev.reason else "")
        if want is not None:
            self.request_response(want)

    def _on_committed(self) -> None:
        if self.s.turn_detection != "server":
            return
        with self._lock:
            speech, self._speech_seen = self._speech_seen, False
        if speech:
            self.request_response("answer")
        else:
            self.log.info("[UTT] SKIPPED: server turn without local speech (noise or echo)")

    def _on_error(self, ev: rp.ErrorEvent) -> None:
        with self._lock:
            if ev.event_id and ev.event_id == self._pending_eid:
                self._pending = None
            elif ev.code == "conversation_already_has_active_response":
                self._pending = None
        self.obs.backend_error(ev.code)
        if ev.code == "response_cancel_not_active":
            self.log.debug("realtime: %s (harmless)", ev.code)
        else:
            self.log.warning("realtime error %s: %s", ev.code, ev.message)

    def _on_realtime_lost(self, reason: str) -> None:
        if self.closing.is_set():
            return
        never_opened = self._rt is not None and not self._rt.opened
        with self._lock:
            retry = self._reconnects_left > 0
            self._reconnects_left -= 1
            owed = self._pending or self._purposes.get(self._active_id or "")
            # An answer is not asked for again: the new session never heard the caller.
            self._resume = owed if owed in RESUMABLE else None
            self._pending = None
            self._active_id = None
            repeated = never_opened and reason == self._connect_error
            self._connect_error = reason if never_opened else ""
        if repeated:
            self.log.warning("[BACKEND] connect failed again, same reason")
        elif never_opened:
            self.log.error("[BACKEND] %s", reason)
        else:
            self.log.warning("[BACKEND] connection lost: %s", reason)
        self.obs.reconnect()
        if retry:
            self._hold()
            self._connect_realtime()
            return
        self.log.error("[BACKEND] unavailable after one retry: the caller hears the apology, "
                       "then the call ends")
        self.say_local("apology")
        with self._lock:
            self.silence.goodbye(self.clock.now(), BACKEND_UNAVAILABLE)

    def _hold(self) -> None:
        """Tell a waiting caller "one moment", once until the backend's audio flows again."""
        with self._lock:
            held, self._holding = self._holding, True
        if not held:
            self.say_local("one_moment")

    # --- drain watcher ---------------------------------------------------------------

    def _watch_drain_locked(self, rid: str) -> None:
        assert self._lock.locked()
        if rid in self._watched:
            return  # at most one watcher per response id
        self._watched.add(rid)
        self.log.info("[AUDIO_DONE] %s: all its audio is queued", rid)
        self.log.debug("[AUDIO_DONE] %s queued: out=%d tx=%d backlog=%d", rid,
                       self.audio_out_q.qsize(), self.tx_q.qsize(), len(self._backlog))
        thread = threading.Thread(
            target=self._drain, args=(rid,), name=f"mediasrv-drain-{self.call_sid[-8:]}-{rid[-6:]}",
            daemon=True,  # bounded by DRAIN_TIMEOUT_MS of no progress and by `closing`
        )
        self._threads.append(thread)
        thread.start()

    def _drain(self, rid: str) -> None:
        tracker = DrainTracker(rid, self.clock.now(), self.s.drain_timeout_ms / 1000.0)
        outcome: DrainOutcome | None = None
        while outcome is None:
            with self._lock:
                if self._playing_id != rid or rid in self._cancelled:
                    self.log.info("[AUDIO_DRAIN] %s superseded after %d ms", rid,
                                  tracker.elapsed_ms(self.clock.now()))
                    return
                outcome = tracker.step(self._queued(), self._frames_sent(), self.clock.now())
                if outcome is not None:
                    self.is_ai_speaking.clear()
            if outcome is None and self.closing.wait(DRAIN_POLL_S):
                return
        self.obs.drain(outcome.value)
        self.log.info("[AUDIO_DRAIN] %s %s after %d ms", rid, outcome.value,
                      tracker.elapsed_ms(self.clock.now()))

    # --- responses, barge-in, local prompts -------------------------------------------

    def request_response(self, purpose: str, instructions: str = "") -> bool:
        """Send response.create unless one is active (then defer it until done)."""
        with self._lock:
            if self.closing.is_set():
                return False
            if self._pending is not None or self._active_id is not None:
                if self._want is None or PURPOSE_PRIORITY.get(purpose, 0) >= PURPOSE_PRIORITY.get(
                    self._want, 0
                ):
                    self._want = purpose
                self.log.info("response for %s deferred: one is active", purpose)
                return False
            self._req_n += 1
            self._pending = purpose
            self._pending_eid = f"mediasrv_req_{self._req_n}"
            # The stall clock starts now: the backend may have been quiet for longer than
            # the stall timeout (a long answer streams 5x faster than it plays).
            self._last_rt_event = self.clock.now()
            eid = self._pending_eid
            if purpose == "answer":
                self.turns += 1
            turn = self.turns
        rt = self._rt
        text = rp.response_create(eid, purpose, instructions or INSTRUCTIONS.get(purpose, ""))
        if rt is None or not rt.send(text):
            with self._lock:
                if self._pending_eid == eid:
                    self._pending = None
            self.log.warning("response for %s not sent: realtime not connected", purpose)
            return False
        self.log.info("TRIGGER_RESPONSE #%d purpose=%s", turn, purpose)
        return True

    def barge_in(self, trigger: str, now: float, speech_ms: int = 0) -> bool:
        """Stop the AI at once: clear, flush, truncate at heard ms, cancel if needed."""
        with self._lock:
            rid = self._playing_id
            playing = self.is_ai_speaking.is_set() or self._queued() > 0
            playing = playing or self.playback.has_unheard()
            if rid is None or rid in self._cancelled or not playing:
                return False
            self._cancelled.add(rid)
            self._backlog.clear()
            self._want = None if self._want == "answer" else self._want
            need_cancel = self._active_id == rid and not rid.startswith("local_")
        writer = self.writer
        assert writer is not None

        def on_clear() -> None:
            with self._lock:
                self.playback.on_clear()

        point = writer.clear(on_clear)
        cleared_at = point.at
        with self._lock:  # cut where the clear found playback, not where the trigger did
            cuts = self.playback.truncations(rid, point)
        for q in (self.audio_out_q, self.tx_q):
            _flush(q)
        self.is_ai_speaking.clear()
        heard = [c.audio_end_ms for c in cuts]
        if self._rt is not None and not rid.startswith("local_"):
            for cut in cuts:
                self._rt.send(rp.truncate(cut.item_id, cut.content_index, cut.audio_end_ms))
            if need_cancel:
                self._rt.send(rp.response_cancel(rid))
        self.barge_ins += 1
        latency_ms = (cleared_at - now) * 1000.0
        self.obs.barge_in(latency_ms)
        self.log.info("[BARGE-IN] trigger=%s speech_ms=%d response=%s heard_ms=%s "
                      "trigger_to_clear_ms=%.1f cancel=%s", trigger, speech_ms, rid, heard,
                      latency_ms, need_cancel)
        return True

    def say_local(self, prompt: str) -> None:
        """Play a pre-rendered prompt (the backend is unavailable) through the tx path."""
        audio = self.deps.prompts.get(prompt, b"")
        if not audio:
            self.log.warning("prompt %s not available", prompt)
            return
        with self._lock:
            self._req_n += 1
            rid, item = f"local_{prompt}_{self._req_n}", f"local_item_{self._req_n}"
            self._playing_id = rid
            self._purposes[rid] = prompt
            self.playback.on_audio(item, rid, 0, len(audio))
            for start in range(0, len(audio), 800):
                self._enqueue_locked((rid, item, audio[start : start + 800]))
            self._enqueue_locked((rid, item, None))
            self.is_ai_speaking.set()
            self._watch_drain_locked(rid)
        self.log.info("[AI_TALK] local prompt %s (%d ms)", prompt, len(audio) // 8)

    # --- tx callbacks -----------------------------------------------------------------

    def _register_mark(
        self, name: str, item_id: str, ms: float, is_end: bool, play_end: float
    ) -> None:
        with self._lock:
            self.playback.on_mark_sent(name, item_id, ms, is_end, play_end)

    def _register_probe(self, name: str, sent_at: float) -> None:
        with self._lock:
            self.playback.on_probe_sent(name, sent_at)

    def _on_first_frame(self, rid: str, now: float) -> None:
        received = self._first_delta_at.get(rid)
        if received is not None:
            self.obs.response_latency((now - received) * 1000.0)


def _tag(reason: str) -> str:
    return next((t for r, t in REASON_TAGS.items() if reason.startswith(r)), "[SILENCE]")


def _flush(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
