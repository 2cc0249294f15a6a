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
when a Response is interrupted", with arguments cut short. A call is complete when its
item says so (`status` "completed" on `response.output_item.done` or in the output): a
barge-in that cancels the response after the call was complete does not lose it. An item
without a final status is complete when its response completed; the others are marked
`complete=False`, and the registry refuses to run them.

Layer: protocol (pure: no threads, no I/O). Both backends read tool calls with it.
"""

from __future__ import annotations

from collections.abc import Sequence
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
            self.feed_fragments(delta["tool_calls"])
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
            return self.finish()
        return None

    def feed_fragments(self, fragments: Sequence[Any]) -> None:
        """Take one chunk's `delta.tool_calls` (a reader that parsed the chunk itself)."""
        for position, fragment in enumerate(fragments):
            self._feed_fragment(fragment, position)

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
        self._status: dict[str, str] = {}  # item id -> the item's last status seen
        self._order: dict[str, list[str]] = {}  # response id -> item ids in order

    def reset(self) -> None:
        """Forget calls of responses that will never finish (the session was replaced)."""
        self._by_item.clear()
        self._status.clear()
        self._order.clear()

    def feed(self, event: JsonObj) -> ToolCallsDone | None:
        """Take one decoded server event; return the calls when their response is done."""
        kind = event.get("type")
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self.note(str(event.get("response_id", "")), item)
        elif kind == "response.function_call_arguments.done":
            self.note(str(event.get("response_id", "")), arguments_item(event))
        elif kind == "response.done":
            response = event.get("response")
            if isinstance(response, dict):
                output = response.get("output")
                return self.done(str(response.get("id", "")),
                                 str(response.get("status", "completed")),
                                 output if isinstance(output, list) else [])
        return None

    def note(self, response_id: str, item: JsonObj) -> None:
        """Take what a `function_call` item (or its arguments' `.done`) says so far."""
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            return
        status = item.get("status")
        if isinstance(status, str) and status:
            self._status[item_id] = status
        old = self._by_item.get(item_id, ToolCall("", "", ""))
        new = ToolCall(_str_or(item.get("call_id"), old.call_id),
                       _str_or(item.get("name"), old.name),
                       _str_or(item.get("arguments"), old.arguments))
        if item_id not in self._by_item and response_id:
            self._order.setdefault(response_id, []).append(item_id)
        self._by_item[item_id] = new

    def done(self, response_id: str, status: str, output: list[Any]) -> ToolCallsDone | None:
        """The response is done: return its calls (None if it had none)."""
        item_ids = self._order.pop(response_id, [])
        for item in output:
            if isinstance(item, dict) and item.get("type") == "function_call":
                self.note(response_id, item)
                item_id = item.get("id")
                if isinstance(item_id, str) and item_id and item_id not in item_ids:
                    item_ids.append(item_id)  # announced without its response id
        self._order.pop(response_id, None)
        if not item_ids:
            return None
        calls, problems = [], []
        for item_id in item_ids:
            call = self._by_item.pop(item_id, ToolCall("", "", ""))
            final = self._status.pop(item_id, "")
            if not call.call_id or not call.name:
                problems.append(f"function call item {item_id} has no call_id or name: "
                                "dropped")
                continue
            complete = final == "completed" if final in ("completed", "incomplete") \
                else status == "completed"
            calls.append(ToolCall(call.call_id, call.name, call.arguments, complete))
        return ToolCallsDone(tuple(calls), tuple(problems), response_id, status)


def arguments_item(event: JsonObj) -> JsonObj:
    """Return `response.function_call_arguments.done` as the item fields it carries."""
    return {"id": event.get("item_id"), "call_id": event.get("call_id"),
            "name": event.get("name"), "arguments": event.get("arguments")}


def _str_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default
