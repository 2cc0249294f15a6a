"""The cascade's decisions for one call: turns to chat requests, tokens to the voice, the
voice's audio to the call, barge-in to a corrected history. Pure: no threads or sockets;
time comes in as `now`, and every input returns the actions to carry out, in order.

Layer: backends.

One response at a time (the call's ledger asks for the next one only when the last is
done), each a *run*:

    request ──► [answer: wait for the turn's transcript] ──► ResponseCreated
            ──► chat stream ──tokens──► TextChunker ──pieces──► ElevenLabs context
            ──► audio + alignment ──► AudioDelta ... isFinal ──► AudioDone, ResponseDone

A greeting, idle prompt or goodbye is fixed text: it goes straight to the voice (the
greeting is exactly the GREETING setting). A barge-in (`truncate`, then `cancel`) stops
the chat stream, closes the run's context and drops its late audio by context id; the
history then holds only the words the caller heard (speech.SpokenText).

Tools (issue 13): the request offers the config's tools; an answer's tool-call fragments
are gathered by index (toolturn.ToolTurn) while its text is spoken as usual; when the
run ends its calls go out as one `ToolCallsReady`, just before its `ResponseDone`
(`complete=False` for calls of a stream cut short), and into the history with the heard
part of its text. `tool_result` keeps each result against its call (history.History);
the call's `after_tool` request then asks the chat model again with that history.
`caller_text` (the keypad) adds a user message -- after the answer being spoken, if
one is -- and lets the next `answer` go ahead without any spoken words.

Failures: a chat request that fails before any text is asked once more, then the
session is given up; one that fails after some text ends the answer there. A lost
ElevenLabs socket ends the answer speaking on it where its audio ended. Redials and
giving up are links.py's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mediasrv.backends import base
from mediasrv.backends.cascade import chat_wire, stt_wire, tts_wire
from mediasrv.backends.cascade.actions import (
    STT,
    TTS,
    Action,
    CascadeConfig,
    Emit,
    HangUp,
    SendStt,
    SendTts,
    StartChat,
    StopChat,
)
from mediasrv.backends.cascade.history import History, Message
from mediasrv.backends.cascade.links import Links
from mediasrv.backends.cascade.speech import SpokenText, TextChunker
from mediasrv.backends.cascade.toolturn import ToolTurn
from mediasrv.backends.cascade.transcript import Transcripts, Turn
from mediasrv.protocol.toolcalls import ToolCall

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

KEEPALIVE_S = 4.0  # Deepgram closes after 10 s without audio; its docs say every 3-5 s
CHAT_TRIES = 2  # a chat request that fails before any text is asked once more
_RECENT_RUNS = 8  # runs a late truncate may still correct


@dataclass(eq=False)
class Run:
    """One response, from its request to its last audio."""

    number: int
    request_id: str
    purpose: str
    fixed: str | None  # a prompt's fixed text; None: the chat model answers
    extra: str  # instructions for this request only (purposes beyond answer and prompts)
    asked_at: float
    created: bool = False
    job: int = 0  # the chat stream answering it (0: none yet)
    chat_tries: int = 0
    chat_done: bool = False
    said: str = ""  # the text given to the voice
    flushed: bool = False  # a flush went out: the first audio is on its way
    context_open: bool = False
    done: bool = False
    heard: str | None = None  # set by a truncate: what the caller heard
    message: Message | None = None  # its entry in the history
    chunker: TextChunker = field(default_factory=TextChunker)
    spoken: SpokenText = field(default_factory=SpokenText)
    tools: ToolTurn = field(default_factory=ToolTurn)
    turn_done_at: float | None = None
    chat_sent_at: float | None = None
    first_token_at: float | None = None
    first_text_at: float | None = None
    first_audio_at: float | None = None

    @property
    def response_id(self) -> str:
        return f"cascade_resp_{self.number}"

    @property
    def item_id(self) -> str:
        return f"cascade_item_{self.number}"

    @property
    def context_id(self) -> str:
        return f"ctx_{self.number}"


class Pipeline:
    """One call's cascade; the shell serialises every input (one thread)."""

    def __init__(self, config: CascadeConfig, now: float, logger: Logger = log) -> None:
        self._cfg = config
        self._log = logger
        self.links = Links()
        self.transcripts = Transcripts(server_turns=config.server_turns,
                                       finalize_wait_s=config.finalize_wait_s, logger=logger)
        self.history = History(config.instructions)
        self._run: Run | None = None
        self._recent: dict[str, Run] = {}  # item id -> run: truncates may come after its end
        self._runs = 0
        self._jobs = 0
        self._tts_backlog: list[SendTts] = []  # the run's text while ElevenLabs redials
        self._stt_sent_at = now
        self._typed: list[str] = []  # caller texts held until the answer speaking ends
        self._typed_since_answer = False  # an `answer` needs no spoken words then
        self._out: list[Action] = []

    # --- the session -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.links.ready and not self.links.gone

    def start(self) -> list[Action]:
        self._out.extend(self.links.dial_all())
        return self._take()

    def opened(self, service: str, serial: int, now: float) -> list[Action]:
        if not self.links.opened(service, serial, now):
            return []
        if service == STT:
            self.transcripts.new_connection(now)
            self._stt_sent_at = now
            self._advance(now)
        else:
            self._out.extend(self._tts_backlog)
            self._tts_backlog.clear()
        if self.links.becomes_ready():
            self._emit(base.SessionReady(resumed=False))
        return self._take()

    def lost(self, service: str, serial: int, reason: str, now: float) -> list[Action]:
        run = self._run
        speaking = service == TTS and run is not None and run.context_open and not run.done
        loss = self.links.lost(service, serial, reason, now, busy=speaking)
        if loss is None:
            return []
        if loss.expected:
            self._log.info("[BACKEND] %s closed the idle socket (%s): redialled", service, reason)
        elif loss.report is None or loss.report.retrying:
            self._log.warning("[BACKEND] %s lost: %s; redialling once", service, reason)
        if speaking and run is not None:
            self._end_run(run, "failed", f"{service} lost mid-answer: it ends where its audio "
                                         "ended")
        if loss.report is not None and not loss.report.retrying:
            self._abandon(loss.report)
        elif loss.report is not None:
            self._emit(loss.report)
        if loss.redial is not None:
            self._out.append(loss.redial)
        return self._take()

    # --- commands from the call ------------------------------------------------------------

    def append(self, audio: bytes, now: float) -> list[Action]:
        if self.links.up(STT):  # (Deepgram's clock counts only what it was sent)
            self.transcripts.audio(len(audio), now)
            self._stt(audio, now)
        return self._take()

    def commit(self, now: float) -> list[Action]:
        if self.transcripts.commit(now):
            self._stt(stt_wire.FINALIZE, now)
        self._advance(now)
        return self._take()

    def request(self, request_id: str, purpose: str, instructions: str,
                now: float) -> list[Action]:
        if self.links.gone:
            self._emit(base.BackendError("session_gone", "the cascade gave up", request_id))
            return self._take()
        if self._run is not None:
            self._emit(base.BackendError("conversation_already_has_active_response",
                                         f"{self._run.response_id} is still active", request_id))
            return self._take()
        self._runs += 1
        fixed = {"greeting": self._cfg.greeting, "idle_prompt": self._cfg.idle_prompt,
                 "goodbye": self._cfg.goodbye}.get(purpose)
        extra = instructions if fixed is None and purpose != "answer" else ""
        run = Run(self._runs, request_id, purpose, fixed, extra, now)
        self._run = run
        if fixed is not None:
            self._create(run)
            self._say(run, fixed.strip() + " ", flush=True)
            self._close_context(run)
        else:
            self._advance(now)
        return self._take()

    def cancel(self, response_id: str) -> list[Action]:
        run = self._run
        if run is None or run.response_id != response_id:
            return []  # done already: a cancel racing the response's end
        if run.job and not run.chat_done:
            self._out.append(StopChat(run.job))
        if run.context_open:
            self._send_tts(tts_wire.close_context(run.context_id))
        self._end_run(run, "cancelled", "barge-in", audio_done=False)
        return self._take()

    def truncate(self, item_id: str, heard_ms: int) -> list[Action]:
        run = self._recent.get(item_id)
        if run is None and self._run is not None and self._run.item_id == item_id:
            run = self._run
        if run is None:
            self._log.info("truncate of %s: no such answer (long gone)", item_id)
            return []
        run.heard = run.spoken.heard(heard_ms)
        if run.message is not None:
            run.message.content = run.heard
        self._emit(base.Truncated(item_id, heard_ms))
        self._emit(base.AgentTranscript(run.response_id, item_id, run.heard))
        return self._take()

    def tool_result(self, call_id: str, output: str) -> list[Action]:
        if not self.history.add_result(call_id, output):
            self._log.warning("[TOOL] result for %s dropped: no call of that id in the "
                              "history", call_id)
        return []

    def caller_text(self, text: str) -> list[Action]:
        self._typed_since_answer = True
        if self._run is not None and self._run.created:
            self._typed.append(text)  # after the answer being spoken, as it comes after it
        else:
            self.history.add("user", text)
        return []

    def stalled(self, reason: str, now: float) -> list[Action]:
        """The call saw nothing from us for its stall timeout: unstick what we wait on."""
        run = self._run
        if run is None:
            return []
        self._log.warning("[BACKEND] stalled (%s) while waiting for %s", reason,
                          self.waiting_for() or "nothing")
        if not run.created:
            self.transcripts.tick(float("inf"))
            self._advance(now)
        elif run.job and not run.chat_done:
            self._out.append(StopChat(run.job))
            return self.chat_ended(run.job, f"nothing for the stall timeout ({reason})", now)
        elif run.context_open:
            self._out.append(HangUp(TTS))
            return self._take() + self.lost(TTS, self.links.serial(TTS), "elevenlabs stalled",
                                            now)
        return self._take()

    def tick(self, now: float) -> list[Action]:
        self.transcripts.tick(now)
        self._advance(now)
        if self.links.up(STT) and now - self._stt_sent_at >= KEEPALIVE_S:
            self._stt(stt_wire.KEEPALIVE, now)
        return self._take()

    def next_deadline(self) -> float | None:
        due = [self.transcripts.next_deadline()]
        if self.links.up(STT):
            due.append(self._stt_sent_at + KEEPALIVE_S)
        return min((d for d in due if d is not None), default=None)

    # --- the services ----------------------------------------------------------------------

    def on_stt(self, serial: int, msg: stt_wire.SttMessage, at: float) -> list[Action]:
        if not self.links.is_current(STT, serial):
            return []
        for event in self.transcripts.on_message(msg, at):
            self._emit(event)
        self._advance(at)
        return self._take()

    def on_tts(self, serial: int, msg: tts_wire.TtsMessage, at: float) -> list[Action]:
        run = self._run
        if not self.links.is_current(TTS, serial):
            return []
        if isinstance(msg, tts_wire.ServiceError):
            self._log.warning("[BACKEND] elevenlabs error %s: %s", msg.error, msg.message)
        elif run is None or msg.context_id != run.context_id:
            self._log.debug("elevenlabs message of context %s dropped (cut off or done)",
                            msg.context_id)
        elif isinstance(msg, tts_wire.Audio):
            if run.first_audio_at is None:
                run.first_audio_at = at
            run.spoken.on_audio(len(msg.audio), msg.alignment)
            self._emit(base.AudioDelta(run.response_id, run.item_id, 0, msg.audio))
        elif isinstance(msg, tts_wire.Final):
            self._end_run(run, "completed", "")
        return self._take()

    def chat_sent(self, job: int, at: float) -> list[Action]:
        run = self._run
        if run is not None and run.job == job and run.chat_sent_at is None:
            run.chat_sent_at = at
        return []

    def on_chat(self, job: int, ev: chat_wire.ChatEvent, at: float) -> list[Action]:
        run = self._run
        if run is None or run.job != job or run.chat_done:
            return []
        if isinstance(ev, chat_wire.Delta):
            if run.first_token_at is None:
                run.first_token_at = at
            run.tools.feed(ev)
            piece = run.chunker.feed(ev.text) if ev.text else None
            if piece is not None:
                first_clause = piece.ends_clause and not run.flushed
                self._say(run, piece.text, flush=piece.ends_sentence or first_clause)
        elif isinstance(ev, chat_wire.Finish):
            run.tools.finished(ev.reason)
            if ev.reason not in ("stop", "tool_calls"):
                self._log.warning("chat: the answer ended with finish_reason=%s", ev.reason)
        elif isinstance(ev, chat_wire.Done):
            self._finish_text(run)
        elif isinstance(ev, chat_wire.Failure):
            return self.chat_ended(job, f"error in the stream: {ev.message}", at)
        return self._take()

    def chat_ended(self, job: int, error: str, at: float) -> list[Action]:
        """The chat stream `job` ended (`error` says why it failed, "" if it did not)."""
        run = self._run
        if run is None or run.job != job or run.chat_done:
            return self._take()
        if not error:
            self._finish_text(run)  # the stream ended without [DONE]: what came is the answer
        elif run.said or run.first_token_at is not None:
            self._log.warning("[BACKEND] chat failed mid-answer (%s): the answer ends here",
                              error)
            self._finish_text(run)
        elif run.chat_tries < CHAT_TRIES:
            self._log.warning("[BACKEND] chat request failed (%s): asking once more", error)
            self._start_chat(run)
        else:
            self._abandon(base.ConnectionLost(f"chat: {error}", retrying=False))
        return self._take()

    def first_text_sent(self, response_id: str, at: float) -> None:
        run = self._run
        if run is not None and run.response_id == response_id:
            run.first_text_at = at

    def waiting_for(self) -> str:
        """Say, naming the service, what a waiting caller is waiting on ("" if nothing)."""
        if not self.links.ready:
            return "connecting to " + " and ".join(self.links.down())
        run = self._run
        if run is None or run.done:
            return ""
        if not run.created:
            return "deepgram: the final transcript of the caller's turn"
        if run.fixed is None and run.first_token_at is None:
            return f"chat: the first token of {self._cfg.chat_model}"
        if run.spoken.received_ms == 0:
            return "elevenlabs: the first audio of the answer"
        return ""

    # --- runs --------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Start the waiting answer's chat request once its turns are transcribed."""
        run = self._run
        if run is None or run.created or run.fixed is not None or self.transcripts.pending:
            return
        turns = self.transcripts.take_ready()
        for turn in turns:
            self._caller_turn(turn)
        run.turn_done_at = max([run.asked_at, *(t.completed_at for t in turns)])
        if run.purpose == "answer" and not any(t.text for t in turns) \
                and not self._typed_since_answer:
            self._log.info("[UTT] SKIPPED: deepgram heard no words in the turn: no answer")
            self._run = None
            self._emit(base.BackendError("empty_transcript", "no words in the caller's turn",
                                         run.request_id, harmless=True))
            return
        if run.purpose == "answer":
            self._typed_since_answer = False
        self._create(run)
        self._start_chat(run)

    def _caller_turn(self, turn: Turn) -> None:
        if turn.text:
            self.history.add("user", turn.text)
            self._emit(base.CallerTranscript(f"caller_turn_{turn.number}", turn.text))

    def _create(self, run: Run) -> None:
        run.created = True
        self._emit(base.ResponseCreated(run.response_id))

    def _start_chat(self, run: Run) -> None:
        self._jobs += 1
        run.job, run.chat_tries = self._jobs, run.chat_tries + 1
        body = chat_wire.request_body(self._cfg.chat_model, self.history.request(run.extra),
                                      self._cfg.tools)
        self._out.append(StartChat(run.job, body))

    def _say(self, run: Run, text: str, *, flush: bool) -> None:
        if not run.context_open:
            run.context_open = True
            self._send_tts(tts_wire.open_context(run.context_id))
        first = "" if run.said else run.response_id
        run.said += text
        run.flushed = run.flushed or flush
        self._send_tts(tts_wire.text(run.context_id, text, flush=flush), first)

    def _finish_text(self, run: Run) -> None:
        run.chat_done = True
        rest = run.chunker.finish()
        if rest:
            self._say(run, rest, flush=True)
        if run.context_open:
            self._send_tts(tts_wire.flush(run.context_id))
            self._close_context(run)
        else:
            self._end_run(run, "completed", "" if run.tools.take() is not None
                          else "the chat model said nothing")

    def _close_context(self, run: Run) -> None:
        self._send_tts(tts_wire.close_context(run.context_id))

    def _end_run(self, run: Run, status: str, reason: str, *, audio_done: bool = True) -> None:
        run.done = True
        self._run = None
        self._tts_backlog.clear()
        if run.job and not run.chat_done and status != "cancelled":
            self._out.append(StopChat(run.job))
        text = run.heard if run.heard is not None else (
            run.said.strip() if status == "completed" else run.spoken.text())
        calls = run.tools.take()
        self._remember(run, text, calls.calls if calls is not None else ())
        self._recent[run.item_id] = run
        while len(self._recent) > _RECENT_RUNS:
            del self._recent[next(iter(self._recent))]
        if audio_done and run.spoken.received_ms > 0:
            self._emit(base.AudioDone(run.response_id, run.item_id))
        if text and run.heard is None:  # (a truncate already told what was heard)
            self._emit(base.AgentTranscript(run.response_id, run.item_id, text))
        if calls is not None:
            for problem in calls.problems:
                self._log.warning("[TOOL] %s", problem)
            self._emit(base.ToolCallsReady(run.response_id, calls.calls, calls.problems))
        self._emit(base.ResponseDone(run.response_id, status, reason))
        self._log_latency(run)

    def _remember(self, run: Run, text: str, calls: tuple[ToolCall, ...]) -> None:
        """Put the answer in the history (if heard or calling), then keys held behind it."""
        if text or calls:
            run.message = self.history.add("assistant", text, calls)
        for typed in self._typed:
            self.history.add("user", typed)
        self._typed.clear()

    def _abandon(self, report: base.ConnectionLost) -> None:
        """Give the session up: the call says its apology and hangs up."""
        run, self._run = self._run, None
        if run is not None and run.job and not run.chat_done:
            self._out.append(StopChat(run.job))
        self._tts_backlog.clear()
        self.links.gone = True
        self._log.error("[BACKEND] %s: giving up", report.reason)
        self._emit(report)

    def _log_latency(self, run: Run) -> None:
        if run.fixed is not None or run.chat_sent_at is None or run.turn_done_at is None:
            return
        token_to_text = None
        if run.first_token_at is not None and run.first_text_at is not None:
            token_to_text = (run.first_text_at - run.first_token_at) * 1000.0
        self._log.info(
            "[PIPELINE] %s: transcript->chat_sent_ms=%.2f first_token->tts_text_ms=%s "
            "ttft_ms=%s first_tts_audio_at=%s", run.response_id,
            (run.chat_sent_at - run.turn_done_at) * 1000.0,
            "-" if token_to_text is None else f"{token_to_text:.2f}",
            "-" if run.first_token_at is None
            else f"{(run.first_token_at - run.chat_sent_at) * 1000.0:.1f}",
            "-" if run.first_audio_at is None else f"{run.first_audio_at:.6f}")

    # --- plumbing ------------------------------------------------------------------------

    def _stt(self, payload: str | bytes, now: float) -> None:
        if self.links.up(STT):
            self._out.append(SendStt(payload))
            self._stt_sent_at = now

    def _send_tts(self, text: str, first_of: str = "") -> None:
        action = SendTts(text, first_of)
        if self.links.up(TTS):
            self._out.append(action)
        else:
            self._tts_backlog.append(action)

    def _emit(self, event: base.BackendEvent) -> None:
        self._out.append(Emit(event))

    def _take(self) -> list[Action]:
        out, self._out = self._out, []
        return out
