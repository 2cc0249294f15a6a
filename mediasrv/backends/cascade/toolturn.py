"""The tool calls of one chat answer, and whether they may be run. Pure.

Layer: backends.

A chat stream's calls are complete only once the stream said its turn is over with a
`finish_reason` (`tool_calls`, or `stop` from compatible servers): arguments are
concatenated pieces of JSON, and a stream cut before that point -- a barge-in closed
it, the connection failed, `length` ran out -- may have stopped mid-arguments, or before
a further call. Such calls are still reported (the model's turn made them, its history
must say so), with `complete=False`: call control answers them with a refusal the model
hears, never runs them. Their arguments, if cut mid-JSON, are kept as `{}`: they go back
to the model in the history, and a server may refuse a request whose assistant message
holds arguments that are not JSON -- the whole next answer would be lost for a call
that is refused anyway.
"""

from __future__ import annotations

import dataclasses
import json

from mediasrv.backends.cascade import chat_wire
from mediasrv.protocol.toolcalls import ChatToolCallAssembler, ToolCallsDone

ENDS_TURN = ("tool_calls", "stop")  # finish reasons after which the calls are whole


class ToolTurn:
    """Gathers one chat stream's tool-call fragments."""

    def __init__(self) -> None:
        self._calls = ChatToolCallAssembler()
        self._finish = ""

    def feed(self, delta: chat_wire.Delta) -> None:
        if delta.tool_calls:
            self._calls.feed_fragments(delta.tool_calls)
        if delta.finish:
            self._finish = delta.finish

    def finished(self, reason: str) -> None:
        """The stream gave its `finish_reason`."""
        self._finish = reason

    def take(self) -> ToolCallsDone | None:
        """Return the calls so far (None if none); see the module docstring."""
        done = self._calls.finish()
        if done is None or self._finish in ENDS_TURN:
            return done
        cut = tuple(dataclasses.replace(c, arguments=_json_or_empty(c.arguments),
                                        complete=False) for c in done.calls)
        return dataclasses.replace(done, calls=cut, status=self._finish or "cut off")


def _json_or_empty(arguments: str) -> str:
    try:
        json.loads(arguments)
    except ValueError:
        return "{}"
    return arguments
