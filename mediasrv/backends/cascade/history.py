"""The conversation the chat model sees: the instructions, the caller's turns, and of the
AI's answers only what the caller heard. Pure.

Layer: backends.

The chat API is stateless: every request carries the whole conversation, so the history
is ours to keep, and after a barge-in ours to correct. An answer enters it once its
audio is all received (what the voice said), and a truncate replaces it with the words
the caller heard before the `clear` (speech.SpokenText); an answer nobody heard leaves
no message at all. A long call keeps its last `MAX_MESSAGES`: the request stays small,
and its cost bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGES = 40  # ~20 exchanges: what a phone call needs, at a bounded request size


@dataclass
class Message:
    role: str  # user, assistant
    content: str


class History:
    """One call's conversation, oldest first."""

    def __init__(self, instructions: str, limit: int = MAX_MESSAGES) -> None:
        self._instructions = instructions
        self._limit = limit
        self._messages: list[Message] = []

    def add(self, role: str, content: str) -> Message:
        """Append a message; return it (an answer's may be corrected later)."""
        message = Message(role, content)
        self._messages.append(message)
        del self._messages[: max(0, len(self._messages) - self._limit)]
        return message

    def request(self, extra: str = "") -> list[dict[str, str]]:
        """Return the messages of a chat request (`extra`: instructions for this one only)."""
        out = [{"role": "system", "content": self._instructions}] if self._instructions else []
        out += [{"role": m.role, "content": m.content} for m in self._messages if m.content]
        if extra:
            out.append({"role": "system", "content": extra})
        return out

    def messages(self) -> list[Message]:
        return list(self._messages)
