"""The conversation the chat model sees: the instructions, the caller's turns, and of the
AI's answers only what the caller heard, with the tools it called and their results. Pure.

Layer: backends.

The chat API is stateless: every request carries the whole conversation, so the history
is ours to keep, and after a barge-in ours to correct. An answer enters it once its
audio is all received (what the voice said), and a truncate replaces it with the words
the caller heard before the `clear` (speech.SpokenText); an answer nobody heard leaves
no message at all. A long call keeps its last `MAX_MESSAGES`: the request stays small,
and its cost bounded.

Tool calls (issue 13): a model turn that called tools is one assistant message with its
`tool_calls` (and the heard part of its text); each result is kept on that message, so
a request always carries the calls immediately followed by one `tool` message each, as
the API demands (an assistant `tool_calls` message followed by anything else is refused
with a 400). A call whose result has not come yet is answered `PENDING` in the meantime:
the caller may speak while a slow tool runs, and that answer must still be askable. The
first result that comes after such later messages moves the calls to the end of the
conversation (their text stays where it was said), so the answer asked after the tool
reads them last, as news.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mediasrv.protocol.toolcalls import ToolCall, assistant_message, tool_message

MAX_MESSAGES = 40  # ~20 exchanges: what a phone call needs, at a bounded request size
PENDING = json.dumps({"pending": True, "note": "the tool is still running; its result "
                                               "comes in a later message"})


@dataclass
class Message:
    role: str  # user, assistant
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    results: dict[str, str] = field(default_factory=dict)  # call id -> the tool's output

    def entries(self) -> list[dict[str, Any]]:
        """Return the message as chat request entries (none for an unheard answer)."""
        if not self.tool_calls:
            return [{"role": self.role, "content": self.content}] if self.content else []
        return [assistant_message(self.content, self.tool_calls),
                *(tool_message(c.call_id, self.results.get(c.call_id, PENDING))
                  for c in self.tool_calls)]


class History:
    """One call's conversation, oldest first."""

    def __init__(self, instructions: str, limit: int = MAX_MESSAGES) -> None:
        self._instructions = instructions
        self._limit = limit
        self._messages: list[Message] = []

    def add(self, role: str, content: str, calls: tuple[ToolCall, ...] = ()) -> Message:
        """Append a message; return it (an answer's may be corrected later)."""
        message = Message(role, content, calls)
        self._messages.append(message)
        del self._messages[: max(0, len(self._messages) - self._limit)]
        return message

    def add_result(self, call_id: str, output: str) -> bool:
        """Keep a tool's result against its call; False if no message holds that call."""
        message = next((m for m in self._messages
                        if any(c.call_id == call_id for c in m.tool_calls)), None)
        if message is None:
            return False
        if not message.results and message is not self._messages[-1]:
            message = self._move_calls_to_end(message)
        message.results[call_id] = output
        return True

    def _move_calls_to_end(self, message: Message) -> Message:
        """Leave the text where it was said; put its calls (and results) last."""
        moved = Message("assistant", "", message.tool_calls, message.results)
        message.tool_calls, message.results = (), {}
        self._messages.append(moved)
        return moved

    def request(self, extra: str = "") -> list[dict[str, Any]]:
        """Return the messages of a chat request (`extra`: instructions for this one only)."""
        out = [{"role": "system", "content": self._instructions}] if self._instructions else []
        for message in self._messages:
            out += message.entries()
        if extra:
            out.append({"role": "system", "content": extra})
        return out

    def messages(self) -> list[Message]:
        return list(self._messages)
