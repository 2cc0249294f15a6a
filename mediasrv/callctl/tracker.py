"""The tool calls of one call: which run, which results wait, when to hand them over. Pure.

A model turn that calls tools leaves the backend waiting for their results. Each call is
tracked by its id from the moment the engine starts it (a webhook, or a built-in whose
result is known at once) until its result has been given to the backend:

    started(call)      running: the caller is owed words ("one moment" after 2 s)
    finished(id, ...)  ready: the result waits for the backend
    deliver()          the ready results, in the model's order, and whether to ask for
                       the answer now (nothing of theirs is still running)

Results are handed over only when the backend can take them: the engine calls
`deliver()` when no response is in flight and the caller is not mid-sentence, so a
result that comes in while a barge-in's new answer is being generated waits for it and
is not lost. A result nobody waits for (its call never started, or was given up) is
refused. `tick(now)` is the backstop: a call still running TIMEOUT_GRACE_S after the tool
timeout is given up with a "did not answer" result (the webhook runner bounds its own
requests; this covers a runner that never reports).

Layer: call control (pure: no threads, no I/O; `now` as an argument).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mediasrv.protocol.toolcalls import ToolCall

# Beyond the tool timeout, how long a silent runner is given before the call is given up.
TIMEOUT_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class Result:
    """One tool result ready for the model (`output` is JSON text)."""

    call_id: str
    name: str
    arguments: str
    output: str
    outcome: str  # ok, refused, timeout, http_error, ... (for the log and transcript)
    started_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    results: tuple[Result, ...]
    ask: bool  # no call is still running: ask for the answer after these results


@dataclass
class _Call:
    call: ToolCall
    started_at: float
    result: Result | None = None


class ToolTracker:
    """Tool calls in flight for one call; see the module docstring."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._calls: dict[str, _Call] = {}  # call id -> state, in the order started

    def started(self, call: ToolCall, now: float) -> bool:
        """Track a call the engine starts now; False if its id is already tracked."""
        if call.call_id in self._calls:
            return False
        self._calls[call.call_id] = _Call(call, now)
        return True

    def finished(self, call_id: str, output: str, outcome: str) -> Result | None:
        """Take a call's result; None if nobody waits for it (unknown or given up)."""
        state = self._calls.get(call_id)
        if state is None or state.result is not None:
            return None
        c = state.call
        state.result = Result(call_id, c.name, c.arguments, output, outcome, state.started_at)
        return state.result

    def deliver(self) -> Delivery | None:
        """Return the results ready for the backend (None if none); call only when the
        backend can take them."""
        ready = tuple(s.result for s in self._calls.values() if s.result is not None)
        if not ready:
            return None
        for result in ready:
            del self._calls[result.call_id]
        return Delivery(ready, ask=not self._calls)

    def running(self) -> tuple[str, ...]:
        """Return the names of the calls whose results have not come yet."""
        return tuple(s.call.name for s in self._calls.values() if s.result is None)

    def waiting(self) -> bool:
        """Tell whether any call is running or any result waits to be handed over."""
        return bool(self._calls)

    def wait_reason(self, now: float) -> str:
        """Say why the caller waits on a tool ("" if no tool is running)."""
        running = [s for s in self._calls.values() if s.result is None]
        if not running:
            return ""
        first = running[0]
        return f"tool {first.call.name} running for {now - first.started_at:.1f} s"

    def next_deadline(self) -> float | None:
        due = [s.started_at + self._timeout_s + TIMEOUT_GRACE_S
               for s in self._calls.values() if s.result is None]
        return min(due, default=None)

    def tick(self, now: float) -> list[Result]:
        """Give up the calls past the backstop; return their results (now ready)."""
        out = []
        for call_id, state in list(self._calls.items()):
            if state.result is None and now >= state.started_at + self._timeout_s \
                    + TIMEOUT_GRACE_S:
                words = f"the tool {state.call.name} did not answer in time"
                result = self.finished(call_id, json.dumps({"ok": False, "error": words}),
                                       "timeout")
                if result is not None:
                    out.append(result)
        return out

    def clear(self) -> None:
        """Forget every call (the backend session they belong to is gone)."""
        self._calls.clear()
