"""The echo-test agent's words: shipped mu-law prompts and what each response says.

Layer: stand-ins.

Pure: `compose()` turns a response purpose and the caller's last utterance into the
audio and transcript to stream. Files are read once, by `PromptBank.load()`.

What a response says, by `response.metadata.purpose`:
  greeting    -> greeting.ulaw
  idle_prompt -> still_there.ulaw
  goodbye     -> goodbye.ulaw
  one_moment  -> one_moment.ulaw, apology -> apology.ulaw (for completeness)
  answer, none or unknown -> "You said:" + the caller's last committed utterance as heard
              (capped) + 300 ms pause + long_answer.ulaw, so every answer lasts >= ~10 s
              and there is time to barge in. With no utterance yet: long_answer alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mediasrv.audio import BYTES_PER_MS, ULAW_SILENCE
from mediasrv.errors import ConfigError

from .vad import speech_span_ms

PROMPT_TEXTS: dict[str, str] = {
    "greeting": (
        "Hello! This is the mediasrv echo test. Say something and I will play it back to you."
    ),
    "still_there": "Are you still there?",
    "goodbye": "Thanks for calling. Goodbye!",
    "you_said": "You said:",
    "one_moment": "One moment please.",
    "apology": "Sorry, we are having technical trouble. Please call again later. Goodbye.",
    "long_answer": (
        "That was the echo of what I heard. This answer is long on purpose, so you can test "
        "interrupting me. If you talk while I am speaking, I should stop and listen."
    ),
}

PURPOSE_PROMPTS: dict[str, str] = {
    "greeting": "greeting",
    "idle_prompt": "still_there",
    "goodbye": "goodbye",
    "one_moment": "one_moment",
    "apology": "apology",
}
ANSWER_PAUSE_MS = 300  # a breath between the echoed audio and the long answer


@dataclass(frozen=True)
class Speech:
    """What one response says: mu-law audio and its transcript."""

    audio: bytes
    transcript: str


@dataclass(frozen=True)
class PromptBank:
    """The shipped prompts, read into memory once (about 200 kB)."""

    audio: dict[str, bytes]

    @classmethod
    def load(cls, directory: Path) -> PromptBank:
        """Read every prompt of PROMPT_TEXTS from `directory`."""
        audio: dict[str, bytes] = {}
        for name in PROMPT_TEXTS:
            path = directory / f"{name}.ulaw"
            try:
                audio[name] = path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"prompt file missing or unreadable: {path}") from exc
        return cls(audio)

    def speech(self, name: str) -> Speech:
        """Return one prompt as Speech."""
        return Speech(self.audio[name], PROMPT_TEXTS[name])


def describe_caller_audio(ulaw: bytes) -> str:
    """Return the placeholder transcript of caller mu-law: how long the speech in it is."""
    return f"({speech_span_ms(ulaw) / 1000:.1f} s of caller audio)"


def compose(
    bank: PromptBank,
    purpose: str | None,
    caller: bytes | None,
    cap_ms: int,
    greeting: tuple[str, ...] = ("greeting",),
) -> Speech:
    """Return what a response with this purpose says, echoing `caller` for answers.

    `greeting` names the prompts the greeting says, in order (a longer bot turn).
    """
    if purpose == "greeting" and greeting != ("greeting",):
        parts = [bank.speech(name) for name in greeting]
        return Speech(b"".join(p.audio for p in parts), " ".join(p.transcript for p in parts))
    if purpose in PURPOSE_PROMPTS:
        return bank.speech(PURPOSE_PROMPTS[purpose])
    long_answer = bank.speech("long_answer")
    if not caller:
        return long_answer
    echoed = caller[: cap_ms * BYTES_PER_MS]
    you_said = bank.speech("you_said")
    pause = bytes([ULAW_SILENCE]) * (ANSWER_PAUSE_MS * BYTES_PER_MS)
    return Speech(
        audio=you_said.audio + echoed + pause + long_answer.audio,
        transcript=(
            f"{you_said.transcript} {describe_caller_audio(echoed)} {long_answer.transcript}"
        ),
    )
