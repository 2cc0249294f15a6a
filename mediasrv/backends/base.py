"""The seam between a call and its AI: commands out (`Backend`), events in (frozen dataclasses).

Layer: backends. The call (mediasrv.call) imports this module and nothing else of
mediasrv.backends: the turn policy, barge-in, playback accounting and the tx path work
the same whichever backend sits behind it.

Commands are called from any of the call's threads, never under the call's lock, and
never block for long (a socket send at most): they return False when the command could
not be sent (not connected, or the connection just failed -- the loss then arrives as
an event). Events are delivered on the backend's own reader thread, one at a time, to
the `EventSink` given when it was opened; the sink must return quickly.

The seam speaks in the call's terms, not a vendor's:

- caller audio goes out as 8 kHz mu-law; `commit` ends the caller's turn (local turn
  detection); `request_response` asks for an answer, greeting, idle prompt or goodbye
  (`purpose`) with `instructions` in words for the model;
- assistant audio comes back as `AudioDelta`s of 8 kHz mu-law, grouped by response and
  item; `AudioDone` ends an item's audio;
- `truncate(item, content_index, heard_ms)` tells the backend how much of an item the
  caller heard (from the playback ledger, when a barge-in cut it off); the backend
  keeps only that much in its conversation;
- `waiting_for` says, in words, which of its services a waiting caller waits on (the
  cascade has three; a `[DEAD_AIR]` line must name the one that is slow);
- a lost connection is the backend's to repair: it retries once (a reconnect restores
  its own session settings, which only it knows) and says so with `ConnectionLost`
  (`retrying`), then `SessionReady(resumed=True)`, or gives up (`retrying=False`). The
  call decides what the caller hears meanwhile and what to ask for again.

Next backends plug in here. The cascade (Deepgram, chat, ElevenLabs; issue 12) maps
`truncate`'s heard ms onto the words whose audio played (its TTS alignment is its own
business) and keeps its own history; its `purpose` tells it a greeting or goodbye is
fixed text, not a chat turn.

Call control (issue 13). What every backend must do for tools and the keypad:

- offer the model the `ToolSpec`s it was made with (they belong to the server, not to
  one call: a backend gets them with its other session settings, before it connects,
  and a reconnect offers them again);
- when a model turn that called tools is over, emit one `ToolCallsReady` with its calls
  in the model's order, *before* that response's `ResponseDone`; a call cut short (its
  arguments incomplete, e.g. by a barge-in) is sent with `complete=False`: the call
  answers it with a refusal rather than running it;
- `tool_result(call_id, output)`: put the tool's result (JSON text) into the model's
  context against that call; the call then asks for the answer with
  `request_response(..., purpose="after_tool")`. Results are only sent while no
  response is in flight, all results of one turn before that one request;
- `caller_text(text)`: put a caller's message given as text (the keypad: "The caller
  pressed 1 2 3 4 #") into the context as the caller's turn; the call asks for the
  answer with `request_response(..., purpose="answer")` as for a spoken turn.

The Realtime API does these with `session.tools`, `response.function_call_arguments.done`
and `response.done` (the authority on a turn's calls), and `conversation.item.create` of
a `function_call_output` or a user `input_text` message. The cascade: Chat Completions
`tools`, tool-call deltas assembled by index (mediasrv.protocol.toolcalls), an assistant
message with the `tool_calls` and one `tool` message per result in its history, then a
new chat request; the text of `caller_text` as a user message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mediasrv.protocol.toolcalls import ToolCall


class Backend(Protocol):
    """Commands from the call to its AI backend."""

    @property
    def connected(self) -> bool:
        """Tell whether commands can be sent now."""
        ...

    @property
    def waiting_for(self) -> str:
        """Say what the backend waits on now, naming the service ("" if nothing, or if
        the call's own account says it all); read without a lock, for `[DEAD_AIR]`."""
        ...

    def start(self) -> None:
        """Connect on the backend's own thread; `SessionReady` or `ConnectionLost` follows."""
        ...

    def append_audio(self, audio: bytes) -> bool:
        """Send caller audio (8 kHz mu-law)."""
        ...

    def commit(self) -> bool:
        """End the caller's turn: the audio appended so far is one user message."""
        ...

    def request_response(self, request_id: str, purpose: str, instructions: str) -> bool:
        """Ask for a response; it comes back as `ResponseCreated`, or `BackendError` names
        `request_id` if the backend refuses it."""
        ...

    def cancel(self, response_id: str) -> bool:
        """Stop generating a response (a barge-in cut it off)."""
        ...

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> bool:
        """Keep only the first `heard_ms` of an item's audio: what the caller heard."""
        ...

    def tool_result(self, call_id: str, output: str) -> bool:
        """Give the model the result (JSON text) of its tool call `call_id`."""
        ...

    def caller_text(self, text: str) -> bool:
        """Give the model a caller's turn as text (the keypad), without asking an answer."""
        ...

    def reconnect(self, reason: str) -> None:
        """The call judged the connection dead (no event for too long): treat it as lost."""
        ...

    def close(self, timeout: float) -> list[str]:
        """Close the connection, wait up to `timeout` for the backend's threads; return the
        names of those still running."""
        ...


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its name, what it is for, its JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The backend is connected and configured; `resumed`: after a lost connection."""

    resumed: bool


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The connection failed or never opened (`reason` says why, in words)."""

    reason: str
    retrying: bool  # False: given up; the call must end without the backend


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    content_index: int
    audio: bytes  # 8 kHz mu-law, any length


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str  # completed, cancelled, failed, incomplete
    reason: str


@dataclass(frozen=True, slots=True)
class CallerSpeechStarted:
    """The backend's own voice detector heard the caller start (server turn detection)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class CallerSpeechStopped:
    """The backend's own voice detector heard the caller stop (server turn detection)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class CallerTurnCommitted:
    """The backend ended the caller's turn itself (server turn detection)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class Truncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class CallerTranscript:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class AgentTranscript:
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """A model turn called tools (sent before that response's `ResponseDone`)."""

    response_id: str
    calls: tuple[ToolCall, ...]
    problems: tuple[str, ...] = ()  # wire oddities worth a log line (calls dropped)


@dataclass(frozen=True, slots=True)
class BackendError:
    code: str
    message: str
    request_id: str = ""  # the request the backend refuses ("" if none)
    harmless: bool = False  # expected in a race (e.g. cancelling a response just done)


BackendEvent = (
    SessionReady | ConnectionLost | ResponseCreated | AudioDelta | AudioDone | ResponseDone
    | CallerSpeechStarted | CallerSpeechStopped | CallerTurnCommitted | Truncated
    | CallerTranscript | AgentTranscript | ToolCallsReady | BackendError
)

EventSink = Callable[[BackendEvent], None]
