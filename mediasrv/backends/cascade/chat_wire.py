"""OpenAI Chat Completions streaming on the wire (PROTOCOLS-2 4a): the request body, and
the server-sent events of its answer parsed one line at a time. Pure.

Layer: backends.

The traps this module absorbs: the usage chunk (and some providers' chunks mid-stream)
carry `choices: []`, so nothing here indexes `choices[0]` blindly; an `error` object can
arrive mid-stream instead of a chunk; `[DONE]` ends the stream. Tool-call fragments are
handed on raw, with the chunk's text and `finish_reason` (compatible providers put all
three in one chunk): assembling them by index is mediasrv.protocol.toolcalls' job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mediasrv.backends.base import ToolSpec
from mediasrv.errors import ProtocolError

# A spoken answer is a few sentences; this caps a runaway one (and its cost) at ~300 words.
MAX_COMPLETION_TOKENS = 400


@dataclass(frozen=True, slots=True)
class Delta:
    """Text, tool-call fragments (raw `delta.tool_calls`), or both, of one chunk."""

    text: str
    tool_calls: tuple[Any, ...] = ()
    finish: str = ""  # the same chunk's finish_reason ("" if none)


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # stop, length, tool_calls, content_filter


@dataclass(frozen=True, slots=True)
class Done:
    """`data: [DONE]`: the stream is over."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An `error` object in the stream: the answer ends here."""

    message: str


ChatEvent = Delta | Finish | Done | Failure


def request_body(model: str, messages: list[dict[str, Any]],
                 tools: tuple[ToolSpec, ...] = ()) -> bytes:
    """Return the JSON body of a streamed completion of `messages`, offering `tools`."""
    body: dict[str, Any] = {
        "model": model, "messages": messages, "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": MAX_COMPLETION_TOKENS,
    }
    if tools:  # (an empty `tools` list is refused by the API)
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools]
    return json.dumps(body).encode()


def parse_line(line: bytes) -> ChatEvent | None:
    """Return what one SSE line says (None: a blank line, a comment, nothing for us)."""
    text = line.decode("utf-8", errors="strict").strip() if line else ""
    if not text or text.startswith(":") or text.startswith(("event:", "id:", "retry:")):
        return None
    if not text.startswith("data:"):
        raise ProtocolError(f"chat: not a server-sent event line: {text[:40]!r}")
    data = text[5:].strip()
    if data == "[DONE]":
        return Done()
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"chat: data is not JSON ({len(data)} chars)") from exc
    if not isinstance(chunk, dict):
        raise ProtocolError("chat: a chunk that is not an object")
    if "error" in chunk:
        return Failure(error_message(chunk))
    return _choice(chunk.get("choices"))


def _choice(choices: Any) -> ChatEvent | None:
    if not isinstance(choices, list):
        raise ProtocolError("chat: a chunk without a choices list")
    if not choices:
        return None  # the usage chunk, or a provider's empty chunk
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ProtocolError("chat: a choice that is not an object")
    delta = choice.get("delta") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    text = content if isinstance(content, str) else ""
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    fragments = tuple(calls) if isinstance(calls, list) else ()
    reason = choice.get("finish_reason")
    finish = reason if isinstance(reason, str) else ""
    if text or fragments:
        return Delta(text, fragments, finish)
    if finish:
        return Finish(finish)
    return None  # the role chunk, a refusal fragment


def error_message(body: Any) -> str:
    """Return the `error.message` (or code) of an OpenAI error body, cut short."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        text = error.get("code") or error.get("type") or ""
        message = error.get("message") or ""
        return f"{text}: {message}"[:160] if text else str(message)[:160]
    return str(error)[:160]
