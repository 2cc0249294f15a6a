"""OpenAI Realtime GA events (PROTOCOLS.md section 2): data in, data out.

Layer: protocol.

Receiving accepts the beta event names as aliases (some compatible servers still emit
them); sending always uses GA shapes. `parse_realtime` returns a frozen dataclass, or
`Ignored` for events the bridge does not act on, and raises RealtimeProtocolError for
malformed input.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode, b64encode
from dataclasses import dataclass
from typing import Any

from mediasrv.errors import RealtimeProtocolError
from mediasrv.protocol.toolcalls import arguments_item


@dataclass(frozen=True, slots=True)
class SessionEvent:
    type: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    content_index: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str
    reason: str
    function_calls: tuple[dict[str, Any], ...] = ()  # `function_call` items of its output


@dataclass(frozen=True, slots=True)
class FunctionCallItem:
    """What a function call item (or the `.done` of its arguments) says so far; the
    fields of the item as sent (`id`, `call_id`, `name`, `arguments`, `status`)."""

    response_id: str
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputSpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class InputSpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class InputCommitted:
    item_id: str


@dataclass(frozen=True, slots=True)
class Truncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str
    event_id: str


@dataclass(frozen=True, slots=True)
class InputTranscript:
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    response_id: str
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class Ignored:
    type: str


RealtimeEvent = (
    SessionEvent | ResponseCreated | AudioDelta | AudioDone | ResponseDone
    | InputSpeechStarted | InputSpeechStopped | InputCommitted | Truncated | ErrorEvent
    | InputTranscript | OutputTranscript | FunctionCallItem | Ignored
)

BETA_ALIASES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}


def parse_realtime(text: str | bytes) -> RealtimeEvent:
    """Parse one Realtime server event; raise RealtimeProtocolError if malformed."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RealtimeProtocolError("event is not json: dropped") from exc
    if not isinstance(msg, dict):
        raise RealtimeProtocolError("event is not an object: dropped")
    etype = msg.get("type")
    if not isinstance(etype, str):
        raise RealtimeProtocolError("event without type: dropped")
    etype = BETA_ALIASES.get(etype, etype)
    parser = _PARSERS.get(etype)
    if parser is None:
        return Ignored(etype)
    try:
        return parser(msg)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        why = exc.__class__.__name__
        raise RealtimeProtocolError(f"{etype}: malformed ({why}): dropped") from exc


def _s(msg: dict[str, Any], key: str) -> str:
    value = msg[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _i(msg: dict[str, Any], key: str, default: int = 0) -> int:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(key)
    return value


def _delta(msg: dict[str, Any]) -> AudioDelta:
    return AudioDelta(
        response_id=_s(msg, "response_id"),
        item_id=_s(msg, "item_id"),
        content_index=_i(msg, "content_index"),
        audio=b64decode(_s(msg, "delta"), validate=True),
    )


def _response_done(msg: dict[str, Any]) -> ResponseDone:
    response = msg["response"]
    details = response.get("status_details") or {}
    reason = details.get("reason") if isinstance(details, dict) else None
    output = response.get("output")
    calls = tuple(item for item in output if isinstance(item, dict)
                  and item.get("type") == "function_call") if isinstance(output, list) else ()
    return ResponseDone(_s(response, "id"), str(response.get("status", "")), str(reason or ""),
                        calls)


def _output_item(msg: dict[str, Any]) -> FunctionCallItem | Ignored:
    item = msg["item"]
    if not isinstance(item, dict) or item.get("type") != "function_call":
        return Ignored(str(msg["type"]))  # an assistant message: its audio says it all
    return FunctionCallItem(_s(msg, "response_id"), item)


def _arguments_done(msg: dict[str, Any]) -> FunctionCallItem:
    return FunctionCallItem(_s(msg, "response_id"), arguments_item(msg))


def _error(msg: dict[str, Any]) -> ErrorEvent:
    err = msg.get("error")
    if not isinstance(err, dict):
        err = {}
    return ErrorEvent(
        code=str(err.get("code") or err.get("type") or "unknown"),
        message=str(err.get("message") or "")[:500],
        event_id=str(err.get("event_id") or ""),
    )


_PARSERS: dict[str, Any] = {
    "session.created": lambda m: SessionEvent("session.created"),
    "session.updated": lambda m: SessionEvent("session.updated"),
    "response.created": lambda m: ResponseCreated(_s(m["response"], "id")),
    "response.output_audio.delta": _delta,
    "response.output_audio.done": lambda m: AudioDone(_s(m, "response_id"), _s(m, "item_id")),
    "response.done": _response_done,
    "input_audio_buffer.speech_started": lambda m: InputSpeechStarted(
        str(m.get("item_id", "")), _i(m, "audio_start_ms")
    ),
    "input_audio_buffer.speech_stopped": lambda m: InputSpeechStopped(
        str(m.get("item_id", "")), _i(m, "audio_end_ms")
    ),
    "input_audio_buffer.committed": lambda m: InputCommitted(str(m.get("item_id", ""))),
    "conversation.item.truncated": lambda m: Truncated(_s(m, "item_id"), _i(m, "audio_end_ms")),
    "error": _error,
    "conversation.item.input_audio_transcription.completed": lambda m: InputTranscript(
        str(m.get("item_id", "")), _s(m, "transcript")
    ),
    "response.output_audio_transcript.done": lambda m: OutputTranscript(
        _s(m, "response_id"), _s(m, "item_id"), _s(m, "transcript")
    ),
    "response.output_item.added": _output_item,
    "response.output_item.done": _output_item,
    "response.function_call_arguments.done": _arguments_done,
}


# --- client events (always GA) -------------------------------------------------------

_APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'


def append_audio(audio: bytes) -> str:
    """Build `input_audio_buffer.append` for mu-law bytes."""
    return _APPEND_HEAD + b64encode(audio).decode("ascii") + '"}'


def session_update(
    *,
    model: str,
    instructions: str,
    voice: str,
    turn_detection: dict[str, Any] | None,
    transcription_model: str = "",
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """Build the GA `session.update` with mu-law in and out (and the model's tools)."""
    audio_in: dict[str, Any] = {
        "format": {"type": "audio/pcmu"},
        "turn_detection": turn_detection,
    }
    if transcription_model:
        audio_in["transcription"] = {"model": transcription_model}
    session: dict[str, Any] = {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {
            "input": audio_in,
            "output": {"format": {"type": "audio/pcmu"}, "voice": voice},
        },
    }
    if tools:
        session["tools"] = tools
        session["tool_choice"] = "auto"
    return json.dumps({"type": "session.update", "session": session})


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Return one entry of `session.tools`: a flat function (no Chat-style wrapper)."""
    return {"type": "function", "name": name, "description": description,
            "parameters": parameters}


def function_call_output(call_id: str, output: str) -> str:
    """Build the `conversation.item.create` that hands one tool's result to the model."""
    return json.dumps({"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": call_id,
                                "output": output}})


def user_text(text: str) -> str:
    """Build the `conversation.item.create` of a caller's message given as text."""
    return json.dumps({"type": "conversation.item.create",
                       "item": {"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": text}]}})


def server_vad(threshold: float, silence_ms: int) -> dict[str, Any]:
    """Return server VAD settings where we create and cancel responses ourselves."""
    return {
        "type": "server_vad",
        "threshold": threshold,
        "prefix_padding_ms": 300,
        "silence_duration_ms": silence_ms,
        "create_response": False,
        "interrupt_response": False,
    }


def semantic_vad(eagerness: str) -> dict[str, Any]:
    """Return semantic VAD settings (OpenAI's turn model) where we create and cancel
    responses ourselves; `eagerness` is low, medium, high or auto."""
    return {
        "type": "semantic_vad",
        "eagerness": eagerness,
        "create_response": False,
        "interrupt_response": False,
    }


def response_create(event_id: str, purpose: str, instructions: str = "") -> str:
    """Build `response.create`; `purpose` travels in metadata (the local backend uses it)."""
    response: dict[str, Any] = {"metadata": {"purpose": purpose}}
    if instructions:
        response["instructions"] = instructions
    return json.dumps({"type": "response.create", "event_id": event_id, "response": response})


def response_cancel(response_id: str) -> str:
    return json.dumps({"type": "response.cancel", "response_id": response_id})


def truncate(item_id: str, content_index: int, audio_end_ms: int) -> str:
    return json.dumps(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": int(audio_end_ms),
        }
    )


COMMIT = '{"type":"input_audio_buffer.commit"}'
