"""The echo-test agent's tools: its tool plan, and the items a client creates. Pure.

Layer: stand-ins.

`ToolAgent` decides which answers are tool calls (`BackendOptions.tool_plan`) and what
the answer after a tool's result says. `read_item` checks what `conversation.item.create`
carries; the bridge creates two kinds: a tool's result (`function_call_output`, against
a call the session made) and a caller's message given as text (a user `message` with
`input_text` parts: the keypad). Anything else is refused with the real API's error
style; the session stays open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .wire import bad_type, bad_value, need_obj

# What the answer after a tool's result says (purpose "after_tool"), by the tool: a
# goodbye, a handover line, or (None) the long answer.
AFTER_TOOL_PURPOSE = {"end_call": "goodbye", "transfer_call": "one_moment"}


@dataclass(frozen=True)
class ToolOutput:
    call_id: str
    tool: str  # the name of the tool the session called
    output: str


@dataclass(frozen=True)
class CallerText:
    text: str


def read_item(value: Any, calls: Mapping[str, str]) -> ToolOutput | CallerText:
    """Return what a created item carries; `calls` maps the session's call ids to tools."""
    item = need_obj(value, "item")
    kind = item.get("type")
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(output, str):
            raise bad_type("item.output", "a string", output)
        if not isinstance(call_id, str) or call_id not in calls:
            raise bad_value("item.call_id", call_id, "No function call with this id.")
        return ToolOutput(call_id, calls[call_id], output)
    if kind == "message" and item.get("role") == "user":
        content = item.get("content")
        parts = content if isinstance(content, list) else []
        texts = [p.get("text") for p in parts if isinstance(p, dict)
                 and p.get("type") == "input_text"]
        if not texts or len(texts) != len(parts) or not all(isinstance(t, str) for t in texts):
            raise bad_value("item.content", "...", "Expected input_text content parts.")
        return CallerText(" ".join(str(t) for t in texts))
    raise bad_value("item.type", kind,
                    "The local backend takes 'function_call_output' and user 'message' items.")


class ToolAgent:
    """Which answers call tools, which calls were made, what follows a result."""

    def __init__(self, plan: tuple[tuple[int, str, str], ...]) -> None:
        self._plan = plan
        self._answers = 0  # responses asked for as answers: the plan counts them
        self.calls: dict[str, str] = {}  # call id -> tool name, of the calls made
        self._last_tool = ""  # the tool whose result came last

    def next_answer(self) -> tuple[str, str] | None:
        """Count an answer; return (tool, arguments) if the plan makes it a tool call."""
        self._answers += 1
        return next(((name, args) for n, name, args in self._plan if n == self._answers),
                    None)

    def called(self, call_id: str, name: str) -> None:
        self.calls[call_id] = name

    def took(self, item: ToolOutput) -> None:
        self._last_tool = item.tool

    def after_tool_purpose(self) -> str | None:
        """Return the purpose whose prompt the answer after the last result says."""
        return AFTER_TOOL_PURPOSE.get(self._last_tool)
