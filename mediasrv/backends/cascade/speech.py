"""Text to speech and back: the chat's tokens cut for the voice, the voice's alignment
turned into the words the caller heard. Pure.

Layer: backends.

`TextChunker`: tokens stream in as fragments of words; ElevenLabs wants text that ends
with a space (PROTOCOLS-2 section 5), so the chunker hands out everything up to the last
whitespace as soon as it comes, and says when a piece ends a sentence or a clause. The
pipeline flushes there (every sentence, and an answer's first clause): audio starts
without waiting for the chunk schedule's 50 characters, which a slow model takes seconds
to write -- long enough for the call's dead-air prompt to talk over the answer.

`SpokenText`: what one response's audio says and when. ElevenLabs times each character
relative to the audio chunk it arrives with, never to the response, so every chunk is
placed at the audio already received before it -- counted in bytes (8 per ms of
ulaw_8000), because the sum of the characters' durations differs from the audio length
(elevenlabs-js#129). `heard(ms)` is then the text whose characters started before the
caller's heard ms, cut back to the last whole word: what goes into the conversation
history after a barge-in.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

from mediasrv.audio import BYTES_PER_MS
from mediasrv.backends.cascade.tts_wire import Alignment

_SENTENCE_END = re.compile(r"[.!?]['\")\]]*\s*$")
_CLAUSE_END = re.compile(r"[,;:]\s*$")
_WORD_CHARS = "'’-"  # inside a word, as letters are: "don't" is one word


@dataclass(frozen=True, slots=True)
class Piece:
    text: str  # ends with whitespace
    ends_sentence: bool
    ends_clause: bool = False  # a comma, semicolon or colon (a sentence end is not one)


class TextChunker:
    """Cuts streamed text at word boundaries."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> Piece | None:
        """Add streamed text; return what is complete up to its last whitespace."""
        self._buffer += text.replace("\n", " ")
        cut = max(self._buffer.rfind(" "), self._buffer.rfind("\t")) + 1
        if cut <= 0:
            return None
        piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
        if not piece.strip():
            return None
        return Piece(piece, bool(_SENTENCE_END.search(piece)), bool(_CLAUSE_END.search(piece)))

    def finish(self) -> str:
        """Return the text still held (the last word), ending with a space."""
        rest, self._buffer = self._buffer.strip(), ""
        return f"{rest} " if rest else ""


class SpokenText:
    """One response's audio: its length and the characters it speaks, on its own timeline."""

    def __init__(self) -> None:
        self.received_ms = 0.0
        self._chars: list[str] = []
        self._starts: list[float] = []  # ms of the response's audio where each char starts

    def on_audio(self, nbytes: int, alignment: Alignment | None) -> None:
        """Place one audio chunk (and its characters) after the audio received so far."""
        if alignment is not None:
            for char, start in zip(alignment.chars, alignment.starts_ms, strict=True):
                self._chars.append(char)
                # never before the last char: a chunk re-timed from zero must not jump back
                self._starts.append(max(self.received_ms + start,
                                        self._starts[-1] if self._starts else 0.0))
        self.received_ms += nbytes / BYTES_PER_MS

    def heard(self, heard_ms: float) -> str:
        """Return the whole words whose characters started before `heard_ms`."""
        n = bisect_left(self._starts, heard_ms)
        kept = "".join(self._chars[:n])
        rest = "".join(self._chars[n:])
        if rest and kept and _in_word(kept[-1]) and _in_word(rest[0]):
            kept = kept[: max(kept.rfind(" "), 0)]  # the word was cut off: drop it
        return " ".join(kept.split())

    def text(self) -> str:
        """Return everything the audio received so far speaks."""
        return " ".join("".join(self._chars).split())


def _in_word(char: str) -> bool:
    return char.isalnum() or char in _WORD_CHARS
