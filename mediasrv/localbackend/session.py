"""One Realtime session of the local backend: a pure state machine, no I/O, no threads.

Layer: stand-ins.

The connection shell feeds it client text frames (`handle`) and timer ticks (`tick`),
both with `now`, and sends the events of the returned `Step` in order. `next_deadline()`
says when the next tick is wanted (the next audio delta of the active response).
Bad client events become `error` events; the session always stays open.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediasrv.audio import BYTES_PER_MS

from .options import BackendOptions, BackendStats
from .prompts import PromptBank, compose, describe_caller_audio
from .response import Pace, ResponseStream, function_call_response
from .session_input import InputAudio
from .tooling import ToolAgent, ToolOutput, read_item
from .wire import (
    ClientEventError,
    JsonObj,
    apply_session_update,
    bad_type,
    bad_value,
    default_session,
    error_event,
    event,
    missing,
    need_int,
    need_obj,
    new_id,
    unknown,
)

log = logging.getLogger(__name__)

# Keys each client event may carry besides `type` and `event_id`.
EVENT_KEYS: dict[str, frozenset[str]] = {
    "session.update": frozenset({"session"}),
    "input_audio_buffer.append": frozenset({"audio"}),
    "input_audio_buffer.commit": frozenset(),
    "input_audio_buffer.clear": frozenset(),
    "response.create": frozenset({"response"}),
    "response.cancel": frozenset({"response_id"}),
    "conversation.item.truncate": frozenset({"item_id", "content_index", "audio_end_ms"}),
    "conversation.item.create": frozenset({"item", "previous_item_id"}),
}
# Real GA client events this backend does not implement: rejected with a clear reason.
UNSUPPORTED = frozenset({"conversation.item.delete", "conversation.item.retrieve",
                         "output_audio_buffer.clear"})
RESPONSE_KEYS = frozenset({"output_modalities", "audio", "instructions", "conversation", "input",
                           "metadata", "tools", "tool_choice", "max_output_tokens", "prompt"})
MIN_COMMIT_MS = 100  # the real API refuses to commit less than 100 ms of audio


@dataclass(frozen=True)
class CloseAction:
    """Tell the shell to end the connection: close frame `code`, or drop TCP if abrupt."""

    code: int
    reason: str
    abrupt: bool = False


@dataclass(frozen=True)
class Step:
    """What to send, in order, and whether to close afterwards."""

    events: tuple[JsonObj, ...] = ()
    close: CloseAction | None = None


class RealtimeSession:
    """The GA Realtime subset the bridge uses, over canned prompts and an energy VAD."""

    def __init__(
        self, options: BackendOptions, bank: PromptBank, stats: BackendStats, model: str
    ) -> None:
        self.id = new_id("sess")
        self._options = options
        self._bank = bank
        self._stats = stats
        self._session = default_session(self.id, model)
        self._input = InputAudio(options)
        self._input.configure(self._session["audio"]["input"]["turn_detection"])
        self._active: ResponseStream | None = None
        self._assistant_ms: dict[str, int] = {}  # finished assistant item -> audio ms left
        self._user_items: set[str] = set()
        self._last_item_id: str | None = None
        self._last_utterance: bytes | None = None
        self._tools = ToolAgent(options.tool_plan)
        self._out: list[JsonObj] = []
        self._close: CloseAction | None = None
        self._handlers: dict[str, Callable[[JsonObj, float], None]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.create": self._on_item_create,
        }

    # -- inputs -------------------------------------------------------------------------

    def open(self) -> Step:
        """Return the greeting of a new connection: `session.created`."""
        self._emit(event("session.created", session=self._session))
        return self._take()

    def handle(self, text: str, now: float) -> Step:
        """Apply one client text frame; return what to send."""
        event_id: str | None = None
        try:
            msg = _parse(text)
            if isinstance(msg.get("event_id"), str):
                event_id = msg["event_id"]
            self._dispatch(msg, now)
        except ClientEventError as exc:
            log.info("session %s: client event rejected (%s): %s", self.id, exc.code, exc)
            self._emit(error_event(exc.code, exc.message, exc.param, event_id))
        return self._take()

    def tick(self, now: float) -> Step:
        """Send the audio deltas due by `now`."""
        self._pump(now)
        return self._take()

    def next_deadline(self) -> float | None:
        """Return when `tick` is next wanted, None when nothing is scheduled."""
        return self._active.next_deadline() if self._active is not None else None

    # -- plumbing -----------------------------------------------------------------------

    def _emit(self, ev: JsonObj) -> None:
        kind = ev["type"]
        if kind == "error":
            self._stats.error_sent(ev["error"]["code"])
        elif kind == "response.created":
            self._stats.response_created()
        elif kind == "response.done":
            self._stats.response_done(ev["response"]["status"])
        elif kind == "input_audio_buffer.committed":
            self._stats.committed()
        self._out.append(ev)

    def _record(self, now: float, kind: str, value: Any) -> None:
        if self._options.record_sessions:
            self._stats.record(self.id, now, kind, value)

    def _take(self) -> Step:
        step = Step(tuple(self._out), self._close)
        self._out = []
        self._close = None
        return step

    def _dispatch(self, msg: JsonObj, now: float) -> None:
        if "event_id" in msg and not isinstance(msg["event_id"], str):
            raise bad_type("event_id", "a string", msg["event_id"])
        kind = msg.get("type")
        if kind is None:
            raise missing("type")
        if not isinstance(kind, str):
            raise bad_type("type", "a string", kind)
        if kind in UNSUPPORTED:
            raise ClientEventError(
                "unsupported_event", f"'{kind}' is not supported by the local backend.", "type"
            )
        if kind not in self._handlers:
            supported = ", ".join(f"'{name}'" for name in EVENT_KEYS)
            raise bad_value("type", kind, f"Supported values are: {supported}.")
        for key in msg:
            if key not in EVENT_KEYS[kind] and key not in ("type", "event_id"):
                raise unknown(key)
        self._handlers[kind](msg, now)

    # -- session and input audio --------------------------------------------------------

    def _on_session_update(self, msg: JsonObj, now: float) -> None:
        if "session" not in msg:
            raise missing("session")
        self._session = apply_session_update(self._session, msg["session"])
        self._input.configure(self._session["audio"]["input"]["turn_detection"])
        self._emit(event("session.updated", session=self._session))

    def _on_append(self, msg: JsonObj, now: float) -> None:
        if "audio" not in msg:
            raise missing("audio")
        if not isinstance(msg["audio"], str):
            raise bad_type("audio", "a string", msg["audio"])
        try:
            audio = base64.b64decode(msg["audio"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientEventError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio data.", "audio"
            ) from exc
        self._record(now, "append", audio)
        for turn in self._input.append(audio):
            if turn.started_ms is not None:
                self._record(now, "speech_started", turn.started_ms)
                self._on_speech_started(turn.item_id, turn.started_ms)
            if turn.stopped_ms is not None:
                self._on_speech_stopped(turn.item_id, turn.stopped_ms, turn.audio, now)

    def _on_speech_started(self, item_id: str, start_ms: int) -> None:
        self._emit(event("input_audio_buffer.speech_started", item_id=item_id,
                         audio_start_ms=start_ms))
        vad = self._session["audio"]["input"]["turn_detection"]
        if vad is not None and vad["interrupt_response"] and self._active is not None:
            # Only speech over a response is a barge-in; the tag must not cry wolf.
            log.info("session %s: [BARGE-IN] speech started at %d ms during %s", self.id,
                     start_ms, self._active.response_id)
            self._cancel_active("turn_detected")
        else:
            log.info("session %s: speech started at %d ms", self.id, start_ms)

    def _on_speech_stopped(self, item_id: str, end_ms: int, audio: bytes, now: float) -> None:
        log.info("session %s: END OF UTTERANCE at %d ms (%d ms of audio)",
                 self.id, end_ms, len(audio) // BYTES_PER_MS)
        self._emit(event("input_audio_buffer.speech_stopped", item_id=item_id,
                         audio_end_ms=end_ms))
        self._commit(item_id, audio)
        vad = self._session["audio"]["input"]["turn_detection"]
        if vad is not None and vad["create_response"]:
            if self._active is None:
                log.info("session %s: TRIGGER_RESPONSE after server VAD stop", self.id)
                self._start_response(None, now)
            else:
                log.info("session %s: VAD stop while %s active: no new response",
                         self.id, self._active.response_id)

    def _on_commit(self, msg: JsonObj, now: float) -> None:
        buffered_ms = self._input.buffered_bytes / BYTES_PER_MS
        if buffered_ms < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id, audio = self._input.take_all()
        self._commit(item_id, audio)

    def _on_clear(self, msg: JsonObj, now: float) -> None:
        self._input.clear()
        self._emit(event("input_audio_buffer.cleared"))

    def _commit(self, item_id: str, audio: bytes) -> None:
        previous, self._last_item_id = self._last_item_id, item_id
        self._user_items.add(item_id)
        self._last_utterance = audio[: self._options.answer_caller_audio_cap_ms * BYTES_PER_MS]
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        self._emit(event("input_audio_buffer.committed", item_id=item_id,
                         previous_item_id=previous))
        self._emit(event("conversation.item.added", previous_item_id=previous, item=item))
        self._emit(event("conversation.item.done", previous_item_id=previous, item=item))
        if self._session["audio"]["input"]["transcription"] is not None:
            seconds = round(len(audio) / BYTES_PER_MS / 1000, 3)
            self._emit(event("conversation.item.input_audio_transcription.completed",
                             item_id=item_id, content_index=0,
                             transcript=describe_caller_audio(audio),
                             usage={"type": "duration", "seconds": seconds}))

    # -- responses ----------------------------------------------------------------------

    def _on_response_create(self, msg: JsonObj, now: float) -> None:
        params = need_obj(msg.get("response", {}), "response")
        for key in params:
            if key not in RESPONSE_KEYS:
                raise unknown(f"response.{key}")
        metadata = params.get("metadata")
        if metadata is not None:
            metadata = need_obj(metadata, "response.metadata")
            for key, value in metadata.items():
                if not isinstance(value, str):
                    raise bad_type(f"response.metadata.{key}", "a string", value)
        if self._active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self._active.response_id}. Wait until the response is finished before "
                "creating a new one.",
            )
        self._start_response(metadata, now)

    def _start_response(self, metadata: dict[str, Any] | None, now: float) -> None:
        purpose = metadata.get("purpose") if metadata else None
        caller = self._last_utterance
        planned = self._tools.next_answer() if purpose == "answer" else None
        if planned is not None:
            self._call_tool(*planned, metadata, now)
            return
        if purpose == "after_tool":
            purpose, caller = self._tools.after_tool_purpose(), None
        speech = compose(self._bank, purpose, caller,
                         self._options.answer_caller_audio_cap_ms,
                         greeting=self._options.greeting_prompts)
        fault = self._options.fault
        stall_after = (self._options.fault_after_deltas
                       if fault in ("stall_mid_response", "close_mid_response") else None)
        pace = Pace(self._options.delta_ms * BYTES_PER_MS, self._options.delta_interval_s)
        stream = ResponseStream(new_id("resp"), new_id("item"), speech, pace, now, metadata,
                                self._last_item_id, stall_after)
        tag = "[GREETING]" if purpose == "greeting" else "[AI_TALK]"
        log.info("session %s: %s response %s purpose=%s audio=%d ms", self.id, tag,
                 stream.response_id, purpose, len(speech.audio) // BYTES_PER_MS)
        self._emit(stream.created())
        self._record(now, "item", stream.item_id)
        if fault == "error_on_response":
            for ev in stream.fail("The server had an error while processing your request "
                                  "(local backend fault injection: error_on_response)."):
                self._emit(ev)
            return
        for ev in stream.opening():
            self._emit(ev)
        self._active = stream
        self._last_item_id = stream.item_id
        self._pump(now)

    def _call_tool(self, name: str, arguments: str, metadata: dict[str, Any] | None,
                   now: float) -> None:
        response_id, item_id, call_id = new_id("resp"), new_id("item"), new_id("call")
        self._tools.called(call_id, name)
        log.info("session %s: response %s calls the tool %s", self.id, response_id, name)
        self._record(now, "tool_call", (call_id, name, arguments))
        for ev in function_call_response(response_id, item_id, call_id, name, arguments,
                                         metadata, self._last_item_id):
            self._emit(ev)
        self._last_item_id = item_id

    def _on_item_create(self, msg: JsonObj, now: float) -> None:
        item = read_item(msg.get("item"), self._tools.calls)
        if isinstance(item, ToolOutput):
            self._tools.took(item)
            self._record(now, "tool_output", (item.call_id, item.output))
        else:
            self._last_utterance = None  # the next answer is to this text, not old audio
            self._record(now, "text", item.text)
        added = {**msg["item"], "id": new_id("item"), "object": "realtime.item",
                 "status": "completed"}
        previous, self._last_item_id = self._last_item_id, added["id"]
        self._emit(event("conversation.item.added", previous_item_id=previous, item=added))
        self._emit(event("conversation.item.done", previous_item_id=previous, item=added))

    def _pump(self, now: float) -> None:
        stream = self._active
        if stream is None:
            return
        for ev in stream.due(now):
            self._emit(ev)
        if stream.finished:
            self._retire(stream)
        elif stream.frozen and self._options.fault == "close_mid_response":
            log.warning("session %s: fault injection: dropping the connection mid-response",
                        self.id)
            self._close = CloseAction(1006, "fault injection: close_mid_response", abrupt=True)

    def _cancel_active(self, reason: str) -> None:
        stream = self._active
        assert stream is not None
        log.info("session %s: response %s cancelled (%s) after %d ms of audio",
                 self.id, stream.response_id, reason, stream.audio_ms)
        for ev in stream.cancel(reason):
            self._emit(ev)
        self._retire(stream)

    def _retire(self, stream: ResponseStream) -> None:
        log.info("session %s: [AUDIO_DONE] response %s: %d ms of audio sent",
                 self.id, stream.response_id, stream.audio_ms)
        self._assistant_ms[stream.item_id] = stream.audio_ms
        self._active = None

    def _on_response_cancel(self, msg: JsonObj, now: float) -> None:
        wanted = msg.get("response_id")
        if wanted is not None and not isinstance(wanted, str):
            raise bad_type("response_id", "a string", wanted)
        if self._active is None or wanted not in (None, self._active.response_id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        self._cancel_active("client_cancelled")

    def _on_truncate(self, msg: JsonObj, now: float) -> None:
        item_id = msg.get("item_id")
        if item_id is None:
            raise missing("item_id")
        if not isinstance(item_id, str):
            raise bad_type("item_id", "a string", item_id)
        content_index = need_int(msg, "content_index", "content_index")
        audio_end_ms = need_int(msg, "audio_end_ms", "audio_end_ms")
        item_ms = self._item_audio_ms(item_id)
        if item_ms is None:
            if item_id not in self._user_items:
                raise bad_value("item_id", item_id, "No conversation item with this id.")
            item_ms = 0
        if item_ms == 0 or item_id in self._user_items:
            raise ClientEventError("unsupported_content_type",
                                   "Only model output audio messages can be truncated", "item_id")
        if content_index != 0:
            raise bad_value("content_index", content_index, "This item has one content part: 0.")
        if audio_end_ms > item_ms:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {item_ms}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        log.info("session %s: item %s truncated at %d of %d ms",
                 self.id, item_id, audio_end_ms, item_ms)
        self._stats.truncated(item_id, audio_end_ms, item_ms)
        self._record(now, "truncation", (item_id, audio_end_ms, item_ms))
        if self._active is None or self._active.item_id != item_id:
            self._assistant_ms[item_id] = audio_end_ms  # the unheard rest is deleted
        self._emit(event("conversation.item.truncated", item_id=item_id,
                         content_index=content_index, audio_end_ms=audio_end_ms))

    def _item_audio_ms(self, item_id: str) -> int | None:
        if self._active is not None and self._active.item_id == item_id:
            return self._active.audio_ms
        return self._assistant_ms.get(item_id)


def _parse(text: str) -> JsonObj:
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ClientEventError(
            "invalid_json", f"The event is not valid JSON: {exc}.", None
        ) from exc
    if not isinstance(msg, dict):
        raise ClientEventError("invalid_json", "The event must be a JSON object.", None)
    return msg
