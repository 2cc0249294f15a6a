"""What the chat stand-in answers, and the SSE stream that says it. Pure.

Layer: stand-ins.

Answers are deterministic:
  - the last message is a tool result -> "The tool <name> returned: <content>."
  - a tool is forced by `tool_choice`, or `tool_choice` is "auto"/"required" and the last
    user message names a declared tool (underscores and hyphens read as spaces, so a
    spoken "look up order" names `look_up_order`) -> a call of that tool whose required
    string arguments all carry the user's text (an argument with an `enum`: the first
    of its values the user named, as a model picks "sales" from "put me through to sales");
  - otherwise "You said: <last user text>".

The stream is built up front as (due time, SSE event) pairs, exactly as OpenAI streams
(PROTOCOLS-2 4a): a role chunk at `start + ttft_s`, then one chunk per token at
`tokens_per_s`, a chunk with `finish_reason`, the usage chunk with empty `choices` when
`stream_options.include_usage`, then `data: [DONE]`. Content chunks carry an
`obfuscation` pad unless `include_obfuscation` is false, as the real API does.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .chat_wire import ChatRequest
from .common import JsonObj, short_id

TOKEN = re.compile(r"\s*\S+")  # a word with its leading space: close to how GPT tokens split
ARGUMENT_PIECE = 8  # tool-call arguments stream in pieces of this many characters
FINGERPRINT = "fp_local0001"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, streamed in pieces


@dataclass(frozen=True)
class Answer:
    """Either text or one tool call."""

    text: str = ""
    tool: ToolCall | None = None


@dataclass(frozen=True)
class Pace:
    ttft_s: float = 0.2  # time to first token
    tokens_per_s: float = 50.0


def plan_answer(req: ChatRequest) -> Answer:
    """Decide the deterministic answer to a valid request."""
    last = req.messages[-1]
    if last["role"] == "tool":
        return Answer(f"The tool {_tool_name(req.messages, last['tool_call_id'])} returned: "
                      f"{_text(last.get('content'))}.")
    said = next((_text(m.get("content")) for m in reversed(req.messages)
                 if m["role"] == "user"), "")
    tool = _choose_tool(req, said)
    if tool is not None:
        return Answer(tool=ToolCall(short_id("call_"), tool["name"],
                                    json.dumps(_arguments(tool, said))))
    return Answer(f"You said: {said}" if said.strip() else "I did not catch that.")


class ChatStream:
    """The SSE events of one streamed completion, each with the time it is due."""

    def __init__(self, req: ChatRequest, answer: Answer, pace: Pace, start: float,
                 created: int) -> None:
        self._req = req
        self._base: JsonObj = {"id": short_id("chatcmpl-"), "object": "chat.completion.chunk",
                               "created": created, "model": req.model,
                               "service_tier": "default", "system_fingerprint": FINGERPRINT}
        deltas = _deltas(answer)
        first = start + pace.ttft_s
        gap = 1.0 / pace.tokens_per_s
        self._events: list[tuple[float, str]] = []
        for i, delta in enumerate(deltas):
            self._events.append((first + max(0, i - 1) * gap, self._chunk(delta, None)))
        end = first + max(0, len(deltas) - 2) * gap
        reason = "tool_calls" if answer.tool is not None else "stop"
        self._events.append((end, self._chunk({}, reason)))
        if req.include_usage:
            self._events.append((end, self._usage(len(deltas) - 1)))
        self._events.append((end, "data: [DONE]\n\n"))
        self._next = 0

    @property
    def finished(self) -> bool:
        return self._next >= len(self._events)

    def next_deadline(self) -> float | None:
        return None if self.finished else self._events[self._next][0]

    def due(self, now: float) -> list[str]:
        """Return the SSE events due by `now`, in order."""
        out = []
        while not self.finished and self._events[self._next][0] <= now:
            out.append(self._events[self._next][1])
            self._next += 1
        return out

    def _chunk(self, delta: JsonObj, finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk: JsonObj = {**self._base, "choices": [choice]}
        if self._req.include_usage:
            chunk["usage"] = None
        if self._req.include_obfuscation and delta:
            chunk["obfuscation"] = secrets.token_urlsafe(6)
        return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"

    def _usage(self, completion_tokens: int) -> str:
        prompt = _prompt_tokens(self._req)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                 "total_tokens": prompt + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        chunk = {**self._base, "choices": [], "usage": usage}
        return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


def completion(req: ChatRequest, answer: Answer, created: int) -> JsonObj:
    """Return the non-streaming `chat.completion` object for the same answer."""
    message: JsonObj = {"role": "assistant", "content": answer.text or None, "refusal": None,
                        "annotations": []}
    if answer.tool is not None:
        message["tool_calls"] = [{"id": answer.tool.id, "type": "function",
                                  "function": {"name": answer.tool.name,
                                               "arguments": answer.tool.arguments}}]
    tokens = len(TOKEN.findall(answer.text)) if answer.tool is None else 10
    prompt = _prompt_tokens(req)
    return {"id": short_id("chatcmpl-"), "object": "chat.completion", "created": created,
            "model": req.model, "service_tier": "default", "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if answer.tool else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": tokens,
                      "total_tokens": prompt + tokens}}


def _deltas(answer: Answer) -> list[JsonObj]:
    """Return the role delta followed by one delta per token or argument piece."""
    if answer.tool is None:
        return [{"role": "assistant", "content": "", "refusal": None},
                *({"content": token} for token in TOKEN.findall(answer.text))]
    call = answer.tool
    head = {"index": 0, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""}}
    pieces = [call.arguments[i : i + ARGUMENT_PIECE]
              for i in range(0, len(call.arguments), ARGUMENT_PIECE)]
    return [{"role": "assistant", "content": None, "tool_calls": [head], "refusal": None},
            *({"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces)]


def _choose_tool(req: ChatRequest, said: str) -> JsonObj | None:
    functions = [t["function"] for t in req.tools]
    choice = req.tool_choice
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        return next((f for f in functions if f["name"] == wanted), None)
    spoken = f" {' '.join(re.findall(r'[a-z0-9]+', said.lower()))} "
    named = [f for f in functions
             if f" {' '.join(re.split(r'[_-]+', f['name'].lower()))} " in spoken]
    if named:
        return named[0]
    return functions[0] if choice == "required" else None


def _arguments(function: JsonObj, said: str) -> JsonObj:
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    return {name: _value(props.get(name) or {}, said) for name in params.get("required") or []
            if (props.get(name) or {}).get("type") == "string"}


def _value(prop: JsonObj, said: str) -> str:
    words = f" {' '.join(re.findall(r'[a-z0-9+]+', said.lower()))} "
    named = [v for v in prop.get("enum") or [] if isinstance(v, str) and f" {v.lower()} " in words]
    return named[0] if named else said


def _tool_name(messages: list[JsonObj], call_id: str) -> str:
    for msg in reversed(messages):
        for call in msg.get("tool_calls") or []:
            if call.get("id") == call_id:
                return str(call.get("function", {}).get("name", "unknown"))
    return "unknown"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _prompt_tokens(req: ChatRequest) -> int:
    return sum(len(TOKEN.findall(_text(m.get("content")))) + 4 for m in req.messages)
