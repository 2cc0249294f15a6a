"""One assistant response as a pure, time-driven stream of GA server events.

Layer: stand-ins.

`ResponseStream` knows the audio it will say and when each delta is due; the session
calls `due(now)` and sends what it returns. Sequence (PROTOCOLS.md section 2.5):

  opening():  response.created, response.output_item.added, conversation.item.added,
              response.content_part.added
  due(now):   response.output_audio.delta + response.output_audio_transcript.delta, one
              pair per `delta_ms` of audio, the k-th due at start + k * interval; after the
              last one the closing events with status "completed"
  cancel():   the closing events at once, status "cancelled" (item status "incomplete")
  closing:    response.output_audio.done, response.output_audio_transcript.done,
              response.content_part.done, response.output_item.done,
              conversation.item.done, response.done
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from mediasrv.audio import BYTES_PER_MS

from .prompts import Speech
from .wire import JsonObj, event


@dataclass(frozen=True)
class Pace:
    """Delta size and the wall-clock gap between deltas."""

    delta_bytes: int
    interval_s: float


class ResponseStream:
    """Streams one response's audio; pure, `now` comes in from the caller."""

    def __init__(
        self, response_id: str, item_id: str, speech: Speech, pace: Pace, start: float,
        metadata: dict[str, Any] | None, previous_item_id: str | None,
        stall_after: int | None = None,
    ) -> None:
        self.response_id = response_id
        self.item_id = item_id
        self._speech = speech
        self._pace = pace
        self._start = start
        self._metadata = metadata
        self._previous_item_id = previous_item_id
        self.sent_bytes = 0
        self.deltas_sent = 0
        self._sent_chars = 0
        self._stall_after = stall_after  # fault injection: freeze after this many deltas
        self.frozen = False  # a frozen (stalled) response never finishes by itself
        self.finished = False

    @property
    def audio_ms(self) -> int:
        """Return ms of audio sent so far: what a truncate may cut."""
        return self.sent_bytes // BYTES_PER_MS

    def next_deadline(self) -> float | None:
        """Return when the next delta is due, None if nothing more will come by itself."""
        if self.finished or self.frozen:
            return None
        return self._start + self.deltas_sent * self._pace.interval_s

    def _ids(self) -> JsonObj:
        return {"response_id": self.response_id, "item_id": self.item_id,
                "output_index": 0, "content_index": 0}

    def _response(self, status: str, details: JsonObj | None = None) -> JsonObj:
        done = status != "in_progress"
        return {
            "object": "realtime.response", "id": self.response_id, "status": status,
            "status_details": details, "output": [self._item(status)] if done else [],
            "conversation_id": "conv_local", "output_modalities": ["audio"],
            "max_output_tokens": "inf", "metadata": self._metadata,
            "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
            "usage": self._usage() if done else None,
        }

    def _item(self, status: str) -> JsonObj:
        item_status = {"completed": "completed", "in_progress": "in_progress"}.get(
            status, "incomplete")
        content = [] if status == "in_progress" else [
            {"type": "output_audio", "transcript": self._transcript_so_far()}]
        return {"id": self.item_id, "object": "realtime.item", "type": "message",
                "status": item_status, "role": "assistant", "content": content}

    def _usage(self) -> JsonObj:
        # Synthetic but plausible: ~10 audio tokens per second of output audio.
        audio_tokens = self.audio_ms // 100
        text_tokens = len(self._transcript_so_far().split())
        return {"total_tokens": audio_tokens + text_tokens, "input_tokens": 0,
                "output_tokens": audio_tokens + text_tokens,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
                "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens}}

    def _transcript_so_far(self) -> str:
        return self._speech.transcript[: self._sent_chars]

    def created(self) -> JsonObj:
        """Return `response.created`."""
        return event("response.created", response=self._response("in_progress"))

    def opening(self) -> list[JsonObj]:
        """Return the events between `response.created` and the first delta."""
        part = {"type": "audio", "transcript": ""}
        return [
            event("response.output_item.added", response_id=self.response_id, output_index=0,
                  item=self._item("in_progress")),
            event("conversation.item.added", previous_item_id=self._previous_item_id,
                  item=self._item("in_progress")),
            event("response.content_part.added", part=part, **self._ids()),
        ]

    def due(self, now: float) -> list[JsonObj]:
        """Return every delta due by `now`, then the closing events once all audio is out."""
        out: list[JsonObj] = []
        audio = self._speech.audio
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                break
            if self.deltas_sent == self._stall_after:
                self.frozen = True
                break
            chunk = audio[self.sent_bytes : self.sent_bytes + self._pace.delta_bytes]
            self.sent_bytes += len(chunk)
            self.deltas_sent += 1
            out.append(event("response.output_audio.delta",
                             delta=base64.b64encode(chunk).decode("ascii"), **self._ids()))
            text = self._speech.transcript
            upto = len(text) * self.sent_bytes // max(len(audio), 1)
            if upto > self._sent_chars:
                out.append(event("response.output_audio_transcript.delta",
                                 delta=text[self._sent_chars : upto], **self._ids()))
                self._sent_chars = upto
            if self.sent_bytes >= len(audio):
                out.extend(self._closing("completed", None))
        return out

    def cancel(self, reason: str) -> list[JsonObj]:
        """Stop at once; return the closing events with status cancelled."""
        return self._closing("cancelled", {"type": "cancelled", "reason": reason})

    def fail(self, message: str) -> list[JsonObj]:
        """End without audio; return `response.done` with status failed."""
        self.finished = True
        error = {"type": "server_error", "code": "server_error", "message": message}
        details = {"type": "failed", "error": error}
        return [event("response.done", response=self._response("failed", details))]

    def _closing(self, status: str, details: JsonObj | None) -> list[JsonObj]:
        self.finished = True
        transcript = self._transcript_so_far()
        part = {"type": "audio", "transcript": transcript}
        return [
            event("response.output_audio.done", **self._ids()),
            event("response.output_audio_transcript.done", transcript=transcript, **self._ids()),
            event("response.content_part.done", part=part, **self._ids()),
            event("response.output_item.done", response_id=self.response_id, output_index=0,
                  item=self._item(status)),
            event("conversation.item.done", previous_item_id=self._previous_item_id,
                  item=self._item(status)),
            event("response.done", response=self._response(status, details)),
        ]


def function_call_response(response_id: str, item_id: str, call_id: str, name: str,
                           arguments: str, metadata: dict[str, Any] | None,
                           previous_item_id: str | None) -> list[JsonObj]:
    """Return every event of a response that only calls a tool, in the real API's order:
    created, the item added, its arguments (one delta, then done), the item done, done."""
    def item(status: str, args: str) -> JsonObj:
        return {"id": item_id, "object": "realtime.item", "type": "function_call",
                "status": status, "call_id": call_id, "name": name, "arguments": args}

    def response(status: str, output: list[JsonObj]) -> JsonObj:
        return {"object": "realtime.response", "id": response_id, "status": status,
                "status_details": None, "output": output, "conversation_id": "conv_local",
                "output_modalities": ["audio"], "max_output_tokens": "inf",
                "metadata": metadata, "usage": None}

    ids = {"response_id": response_id, "item_id": item_id, "output_index": 0}
    done_item = item("completed", arguments)
    return [
        event("response.created", response=response("in_progress", [])),
        event("response.output_item.added", response_id=response_id, output_index=0,
              item=item("in_progress", "")),
        event("conversation.item.added", previous_item_id=previous_item_id,
              item=item("in_progress", "")),
        event("response.function_call_arguments.delta", delta=arguments, call_id=call_id, **ids),
        event("response.function_call_arguments.done", arguments=arguments, call_id=call_id,
              name=name, **ids),
        event("response.output_item.done", response_id=response_id, output_index=0,
              item=done_item),
        event("conversation.item.done", previous_item_id=previous_item_id, item=done_item),
        event("response.done", response=response("completed", [done_item])),
    ]
