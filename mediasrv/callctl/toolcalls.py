"""Tool calls as they come off the wire, for both backends. Pure: data in, data out.

Chat Completions (PROTOCOLS-2 4a) streams a call in fragments keyed by
`delta.tool_calls[i].index`: `id`, `type` and `function.name` on the first fragment of an
index, `function.arguments` as string pieces to concatenate; several calls may interleave
in one message, and compatible servers start at index 1 or repeat the id and name on
later fragments. So fragments are keyed by `index` in a dict, never by list position, and
a repeated id or name is not appended. The calls are complete at `finish_reason`.

Realtime GA (PROTOCOLS.md 2.5) announces a call with `response.output_item.added` (an
item of type `function_call` with `call_id` and `name`), streams
`response.function_call_arguments.delta`, ends it with `.done` (`call_id`, `arguments`,
and `name` on current servers) and lists every call again in `response.done`'s `output`,
which is the authority: a response may hold several calls, and `.done` is "also emitted
when a Response is interrupted", with arguments cut short. Calls of a response that did
not complete are marked `complete=False`; the registry refuses to run them.

Layer: call control (pure: no threads, no I/O).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for; `arguments` is the raw JSON text it produced."""

    call_id: str
    name: str
    arguments: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class ToolCallsDone:
    """The calls of one finished model turn, in the model's order."""

    calls: tuple[ToolCall, ...]
    problems: tuple[str, ...] = ()  # wire oddities worth one log line each
    response_id: str = ""
    status: str = "completed"


# -- Chat Completions ----------------------------------------------------------------------


@dataclass
class _Partial:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatToolCallAssembler:
    """Assembles the tool calls of one streamed Chat Completions message."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}
        self._problems: list[str] = []
        self._finish_reason: str | None = None

    def feed_chunk(self, chunk: JsonObj) -> ToolCallsDone | None:
        """Take one decoded SSE chunk; return the calls once the message has finished."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return None  # the usage chunk, or a provider's keep-alive: nothing to assemble
        choice = choices[0]
        if not isinstance(choice, dict):
            self._problems.append("a choice that is not an object: ignored")
            return None
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
            for position, fragment in enumerate(delta["tool_calls"]):
                self._feed_fragment(fragment, position)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
            return self.finish()
        return None

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    def finish(self) -> ToolCallsDone | None:
        """Return the calls gathered so far (None if there were none); usable calls only."""
        if not self._calls:
            return None
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            part = self._calls[index]
            if not part.name:
                self._problems.append(f"tool call at index {index} has no name: dropped")
                continue
            call_id = part.call_id or f"call_local_{index}"  # our own, used consistently
            calls.append(ToolCall(call_id, part.name, "".join(part.arguments)))
        return ToolCallsDone(tuple(calls), tuple(self._problems),
                             status=self._finish_reason or "completed")

    def _feed_fragment(self, fragment: Any, position: int) -> None:
        if not isinstance(fragment, dict):
            self._problems.append("a tool_calls fragment that is not an object: ignored")
            return
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            self._problems.append(f"tool_calls fragment without an integer index: "
                                  f"keyed by its position {position}")
            index = position
        part = self._calls.setdefault(index, _Partial())
        part.call_id = self._first(part.call_id, fragment.get("id"), index, "id")
        function = fragment.get("function")
        if isinstance(function, dict):
            part.name = self._first(part.name, function.get("name"), index, "name")
            pieces = function.get("arguments")
            if isinstance(pieces, str):
                part.arguments.append(pieces)

    def _first(self, have: str, new: Any, index: int, what: str) -> str:
        """Keep the first value: repeats are not appended, a different one is reported."""
        if not isinstance(new, str) or not new:
            return have
        if have and new != have:
            self._problems.append(f"tool call at index {index} changed its {what} "
                                  f"from {have!r} to {new!r}: kept the first")
            return have
        return new


def assistant_message(content: str | None, calls: tuple[ToolCall, ...]) -> JsonObj:
    """Return the history entry for a model turn that called tools (Chat Completions)."""
    return {"role": "assistant", "content": content or None,
            "tool_calls": [{"id": c.call_id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}}
                           for c in calls]}


def tool_message(call_id: str, output: str) -> JsonObj:
    """Return the history entry carrying one tool's result (Chat Completions)."""
    return {"role": "tool", "tool_call_id": call_id, "content": output}


# -- Realtime GA ---------------------------------------------------------------------------


class RealtimeToolCalls:
    """Follows the function calls of Realtime responses; see the module docstring."""

    def __init__(self) -> None:
        self._by_item: dict[str, ToolCall] = {}  # item id -> what is known so far
        self._order: dict[str, list[str]] = {}  # response id -> item ids in order

    def reset(self) -> None:
        """Forget calls of responses that will never finish (the session was replaced)."""
        self._by_item.clear()
        self._order.clear()

    def feed(self, event: JsonObj) -> ToolCallsDone | None:
        """Take one decoded server event; return the calls when their response is done."""
        kind = event.get("type")
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self._note(str(event.get("response_id", "")), item)
        elif kind == "response.function_call_arguments.done":
            self._note(str(event.get("response_id", "")),
                       {"id": event.get("item_id"), "call_id": event.get("call_id"),
                        "name": event.get("name"), "arguments": event.get("arguments")})
        elif kind == "response.done":
            response = event.get("response")
            if isinstance(response, dict):
                return self._done(response)
        return None

    def _note(self, response_id: str, item: JsonObj) -> None:
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            return
        old = self._by_item.get(item_id, ToolCall("", "", ""))
        new = ToolCall(_str_or(item.get("call_id"), old.call_id),
                       _str_or(item.get("name"), old.name),
                       _str_or(item.get("arguments"), old.arguments))
        if item_id not in self._by_item and response_id:
            self._order.setdefault(response_id, []).append(item_id)
        self._by_item[item_id] = new

    def _done(self, response: JsonObj) -> ToolCallsDone | None:
        response_id = str(response.get("id", ""))
        item_ids = self._order.pop(response_id, [])
        output = response.get("output")
        for item in output if isinstance(output, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call":
                self._note(response_id, item)
                item_id = item.get("id")
                if isinstance(item_id, str) and item_id and item_id not in item_ids:
                    item_ids.append(item_id)  # announced without its response id
        self._order.pop(response_id, None)
        if not item_ids:
            return None
        status = str(response.get("status", "completed"))
        calls, problems = [], []
        for item_id in item_ids:
            call = self._by_item.pop(item_id, ToolCall("", "", ""))
            if not call.call_id or not call.name:
                problems.append(f"function call item {item_id} has no call_id or name: "
                                "dropped")
                continue
            calls.append(ToolCall(call.call_id, call.name, call.arguments,
                                  complete=status == "completed"))
        return ToolCallsDone(tuple(calls), tuple(problems), response_id, status)


def _str_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def function_call_output(call_id: str, output: str) -> str:
    """Return the Realtime event that hands one tool's result to the model."""
    return json.dumps({"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": call_id,
                                "output": output}})
