"""Settings of the local Realtime backend and its thread-safe counters.

Layer: stand-ins.

`BackendOptions` is a frozen value object checked once at construction; `BackendStats`
is the one piece of state shared by every session of a backend.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mediasrv.errors import ConfigError

from .prompts import PROMPT_TEXTS

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

Fault = Literal["close_mid_response", "stall_mid_response", "no_handshake", "error_on_response"]
FAULTS: frozenset[str] = frozenset(
    {"close_mid_response", "stall_mid_response", "no_handshake", "error_on_response"}
)


@dataclass(frozen=True)
class BackendOptions:
    """How the local backend paces audio, where its prompts are, which fault it injects.

    Faults (for tests of the bridge; `None` = behave):
      - "close_mid_response": after `fault_after_deltas` audio deltas of a response the TCP
        connection is dropped without a WebSocket close frame (a network failure).
      - "stall_mid_response": after `fault_after_deltas` deltas the response freezes: no
        more deltas, no `response.done`. The session still answers client events, so
        `response.cancel` ends it (status cancelled).
      - "no_handshake": TCP connections are accepted but the HTTP upgrade is never answered.
      - "error_on_response": every `response.create` yields `response.created` then
        `response.done` with status "failed" and a `server_error` in status_details.

    `handshake_delay_s` answers every upgrade that much later: the handshake time of a
    real API far away (about 1 s for OpenAI), for measuring the pre-warm.

    `tool_plan` makes the echo-test agent call tools: (n, name, arguments JSON) makes the
    n-th answer of a session (1-based: responses asked for with purpose "answer") a
    function call of `name` instead of speech, as a model calling a tool at once does.
    The answer after the tool's result (purpose "after_tool") says goodbye for
    `end_call`, "one moment please" (a handover line) for `transfer_call`, and the long
    answer for any other tool.
    """

    speed: float = 5.0  # audio streamed at 5x real time, like the real API's bursts
    delta_ms: int = 100  # audio per `response.output_audio.delta`
    prompts_dir: Path = PROMPTS_DIR
    model: str = "gpt-realtime-2.1"  # used when the client's URL has no `model=`
    fault: Fault | None = None
    fault_after_deltas: int = 3
    server_vad_threshold_db: float = 15.0  # speech = this far above the tracked noise floor
    server_vad_min_speech_ms: int = 100  # energy must last this long to count as speech
    answer_caller_audio_cap_ms: int = 6000  # longest caller audio echoed in an answer
    socket_timeout_s: float = 2.0  # a client that stops reading for this long is dropped
    # The prompts the greeting says, in order: ("greeting", "long_answer", "apology") makes
    # a ~20 s bot turn, for echo tests that need the bot to talk that long.
    greeting_prompts: tuple[str, ...] = ("greeting",)
    # Keep per session what a judge needs (test and benchmark backends only: it holds
    # every appended byte): appends with their times, VAD starts, items, truncations.
    record_sessions: bool = False
    handshake_delay_s: float = 0.0
    tool_plan: tuple[tuple[int, str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ConfigError(f"speed must be > 0, got {self.speed!r}")
        if self.delta_ms < 10 or self.delta_ms % 10:
            raise ConfigError(f"delta_ms must be a positive multiple of 10, got {self.delta_ms!r}")
        if self.fault is not None and self.fault not in FAULTS:
            raise ConfigError(f"fault must be one of {sorted(FAULTS)} or None, got {self.fault!r}")
        if self.fault_after_deltas < 0:
            raise ConfigError("fault_after_deltas must be >= 0")
        if self.socket_timeout_s <= 0:
            raise ConfigError("socket_timeout_s must be > 0")
        if not 0 <= self.handshake_delay_s <= 60:
            raise ConfigError("handshake_delay_s must be 0 to 60")
        if any(n < 1 or not name for n, name, _ in self.tool_plan):
            raise ConfigError("tool_plan: (answer number >= 1, tool name, arguments)")
        unknown = [n for n in self.greeting_prompts if n not in PROMPT_TEXTS]
        if not self.greeting_prompts or unknown:
            raise ConfigError(f"greeting_prompts must name prompts of {sorted(PROMPT_TEXTS)}")

    @property
    def delta_interval_s(self) -> float:
        """Return the wall-clock gap between two audio deltas of one response."""
        return self.delta_ms / 1000.0 / self.speed


@dataclass
class SessionRecord:
    """What one session received and did, with the backend's clock times.

    appends: (time, audio) of every `input_audio_buffer.append`; speech_started: (time,
    audio_start_ms) of every server-VAD start; items: assistant items created;
    truncations: (time, item, audio_end_ms, item_ms); texts: (time, text) of caller
    messages given as text; tool_calls: (time, call id, name, arguments) made;
    tool_outputs: (time, call id, output) received.
    """

    session_id: str
    appends: list[tuple[float, bytes]] = field(default_factory=list)
    speech_started: list[tuple[float, int]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    truncations: list[tuple[float, str, int, int]] = field(default_factory=list)
    texts: list[tuple[float, str]] = field(default_factory=list)
    tool_calls: list[tuple[float, str, str, str]] = field(default_factory=list)
    tool_outputs: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, now: float, kind: str, value: Any) -> None:
        if kind == "append":
            self.appends.append((now, value))
        elif kind == "speech_started":
            self.speech_started.append((now, value))
        elif kind == "item":
            self.items.append(value)
        elif kind == "truncation":
            self.truncations.append((now, *value))
        elif kind == "text":
            self.texts.append((now, value))
        elif kind == "tool_call":
            self.tool_calls.append((now, *value))
        elif kind == "tool_output":
            self.tool_outputs.append((now, *value))

    def copy(self) -> SessionRecord:
        return SessionRecord(self.session_id, list(self.appends), list(self.speech_started),
                             list(self.items), list(self.truncations), list(self.texts),
                             list(self.tool_calls), list(self.tool_outputs))


@dataclass
class BackendStats:
    """Counters shared by all sessions; every method is short and thread-safe."""

    sessions_opened: int = 0
    sessions_active: int = 0
    responses_created: int = 0
    responses_completed: int = 0
    responses_cancelled: int = 0
    responses_failed: int = 0
    commits: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    truncations: list[tuple[str, int, int]] = field(default_factory=list)
    records: dict[str, SessionRecord] = field(default_factory=dict, repr=False)
    # Guards every field above; held only for a few increments, never while blocking.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def session_opened(self) -> None:
        with self._lock:
            self.sessions_opened += 1
            self.sessions_active += 1

    def session_closed(self) -> None:
        with self._lock:
            self.sessions_active -= 1

    def response_created(self) -> None:
        with self._lock:
            self.responses_created += 1

    def response_done(self, status: str) -> None:
        with self._lock:
            if status == "completed":
                self.responses_completed += 1
            elif status == "cancelled":
                self.responses_cancelled += 1
            else:
                self.responses_failed += 1

    def committed(self) -> None:
        with self._lock:
            self.commits += 1

    def error_sent(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def truncated(self, item_id: str, audio_end_ms: int, item_ms: int) -> None:
        with self._lock:
            self.truncations.append((item_id, audio_end_ms, item_ms))

    def record(self, session_id: str, now: float, kind: str, value: Any) -> None:
        """Add to a session's record (only called when `record_sessions` is on)."""
        with self._lock:
            rec = self.records.setdefault(session_id, SessionRecord(session_id))
            rec.add(now, kind, value)

    def session_record(self, item_id: str) -> SessionRecord | None:
        """Return a copy of the record of the session that produced assistant item `item_id`."""
        with self._lock:
            for rec in self.records.values():
                if item_id in rec.items:
                    return rec.copy()
        return None

    def snapshot(self) -> dict[str, Any]:
        """Return a copy of every counter as plain data."""
        with self._lock:
            return {
                "sessions_opened": self.sessions_opened,
                "sessions_active": self.sessions_active,
                "responses_created": self.responses_created,
                "responses_completed": self.responses_completed,
                "responses_cancelled": self.responses_cancelled,
                "responses_failed": self.responses_failed,
                "commits": self.commits,
                "errors": dict(self.errors),
                "truncations": list(self.truncations),
            }
