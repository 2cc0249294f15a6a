"""The JSON transcript of one call: turns, cut-offs, tool calls, barge-ins, the end. Pure.

Times are seconds on the call clock (0 = the stream started), rounded to milliseconds.
An AI turn cut by a barge-in keeps the text the backend produced and is marked
`cut_off` with the milliseconds the caller heard (from the playback ledger): which
words those were is only known when the backend gives word timings, so `heard_text` is
filled only then. Nothing secret goes in: tools appear by name with their arguments and
results, never with their URLs or headers. Sizes are bounded (MAX_ENTRIES, MAX_TEXT) so a
runaway call cannot make an unbounded file.

Layer: call control (pure: no threads, no I/O).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

JsonObj = dict[str, Any]
MAX_ENTRIES = 5000  # turns plus events; a 30-minute call has a few hundred
MAX_TEXT = 4000  # characters kept of one text (a turn, tool arguments, a tool result)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " [...]"


def _t(seconds: float) -> float:
    return round(seconds, 3)


class Transcript:
    """Collects one call's transcript; `to_json()` renders it."""

    def __init__(self, call_sid: str, started_at_unix: float) -> None:
        self.call_sid = call_sid
        self._started = started_at_unix
        self._turns: list[JsonObj] = []
        self._events: list[JsonObj] = []
        self._ai_turns: dict[str, JsonObj] = {}  # item id -> its turn, for later updates
        self._end: JsonObj = {}
        self.dropped = 0

    def caller(self, text: str, t: float) -> None:
        """Record what the caller said (a final transcript), starting at `t`."""
        self._add(self._turns, {"t": _t(t), "who": "caller", "text": _clip(text)})

    def ai(self, item_id: str, text: str, t: float) -> None:
        """Record or update the AI turn `item_id` (first call sets its start time)."""
        turn = self._ai_turns.get(item_id)
        if turn is not None:
            turn["text"] = _clip(text)
            return
        turn = {"t": _t(t), "who": "ai", "item_id": item_id, "text": _clip(text)}
        if self._add(self._turns, turn):
            self._ai_turns[item_id] = turn

    def ai_cut(self, item_id: str, heard_ms: int, heard_text: str | None = None) -> None:
        """Mark the AI turn `item_id` as cut off after `heard_ms` of it played."""
        turn = self._ai_turns.get(item_id)
        if turn is None:
            return
        turn["cut_off"] = True
        turn["heard_ms"] = int(heard_ms)
        if heard_text is not None:
            turn["heard_text"] = _clip(heard_text)

    def barge_in(self, t: float, item_id: str = "", heard_ms: int | None = None) -> None:
        event: JsonObj = {"t": _t(t), "kind": "barge_in"}
        if item_id:
            event["item_id"] = item_id
        if heard_ms is not None:
            event["heard_ms"] = int(heard_ms)
        self._add(self._events, event)

    def tool_call(self, t: float, name: str, arguments: str, result: str,
                  outcome: str) -> None:
        """Record one tool call with its result; `outcome` e.g. ok, refused, timeout."""
        self._add(self._events, {"t": _t(t), "kind": "tool", "name": name,
                                 "arguments": _clip(arguments), "result": _clip(result),
                                 "outcome": outcome})

    def keypad(self, t: float, digits: str) -> None:
        self._add(self._events, {"t": _t(t), "kind": "keypad", "digits": digits})

    def end(self, t: float, reason: str) -> None:
        self._end = {"duration_s": _t(t), "end_reason": reason}

    def to_dict(self) -> JsonObj:
        started = datetime.fromtimestamp(self._started, UTC).isoformat(timespec="seconds")
        return {"call_sid": self.call_sid, "started_at": started,
                "duration_s": self._end.get("duration_s"),
                "end_reason": self._end.get("end_reason", "unknown (call still running)"),
                "turns": self._turns, "events": self._events,
                "dropped_entries": self.dropped}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    def _add(self, where: list[JsonObj], entry: JsonObj) -> bool:
        if len(self._turns) + len(self._events) >= MAX_ENTRIES:
            self.dropped += 1
            return False
        where.append(entry)
        return True
