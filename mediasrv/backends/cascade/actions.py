"""What the cascade's pure core asks its shell to do, and its configuration. Pure.

Layer: backends.

Every input of `Pipeline` (pipeline.py) returns a list of these, in the order they must
be carried out: the shell sends, dials and emits exactly that, on its one thread, so the
call sees events in the order the core decided them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediasrv.backends import base

STT = "deepgram"
TTS = "elevenlabs"
SETTING_OF = {STT: "DEEPGRAM_URL / DEEPGRAM_API_KEY", TTS: "ELEVENLABS_URL / ELEVENLABS_API_KEY",
              "chat": "OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_CHAT_MODEL"}


@dataclass(frozen=True)
class CascadeConfig:
    """How one call's cascade behaves (built from the settings by the web layer)."""

    chat_model: str
    instructions: str = ""
    greeting: str = ""  # spoken exactly, as the GREETING setting says
    idle_prompt: str = "Are you still there?"
    goodbye: str = "Thanks for calling. Goodbye!"
    server_turns: bool = False  # TURN_DETECTION=server: Deepgram's endpointing ends turns
    # How long a committed turn waits for Deepgram to finalize it: past UtteranceEnd's
    # 2 s after the last word (the commit comes END_SILENCE_MS after it), the last resort.
    finalize_wait_s: float = 2.5
    tools: tuple[base.ToolSpec, ...] = ()  # offered to the chat model (issue 13)


@dataclass(frozen=True, slots=True)
class SendStt:
    payload: str | bytes  # text: a control message; bytes: caller audio (mu-law)


@dataclass(frozen=True, slots=True)
class SendTts:
    text: str
    first_of: str = ""  # the response whose first text this is (its latency is measured)


@dataclass(frozen=True, slots=True)
class StartChat:
    job: int
    body: bytes


@dataclass(frozen=True, slots=True)
class StopChat:
    job: int


@dataclass(frozen=True, slots=True)
class Dial:
    service: str
    serial: int  # the connection's number: messages of older connections are stale


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the service's socket: the core already handled its loss."""

    service: str


@dataclass(frozen=True, slots=True)
class Emit:
    event: base.BackendEvent


Action = SendStt | SendTts | StartChat | StopChat | Dial | HangUp | Emit
