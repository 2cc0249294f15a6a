"""Deepgram live transcription on the wire (PROTOCOLS-2 section 3): the URL, control
messages, and server messages parsed into frozen dataclasses. Pure.

Layer: backends.

What we ask for and why:
- `encoding=mulaw&sample_rate=8000&channels=1`: Twilio's frames pass through as they
  are (base64-decoded, never transcoded);
- `interim_results=true`: `UtteranceEnd` is never sent without it;
- `utterance_end_ms=2000`: the fallback end of a turn the issue's seed asked for;
- `vad_events=true`: `SpeechStarted`, the server-mode caller-speech signal;
- `endpointing`: silence before `speech_final` (server mode's end of turn; in local mode
  our own turn policy ends turns and `Finalize` closes them).

Times in every server message are seconds of audio sent on *this* connection; the
caller of `parse` maps them onto the call's timeline (transcript.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mediasrv.errors import ProtocolError

KEEPALIVE = '{"type":"KeepAlive"}'
FINALIZE = '{"type":"Finalize"}'
CLOSE_STREAM = '{"type":"CloseStream"}'
UTTERANCE_END_MS = 2000  # the seed's fallback end of a turn; >= 1000 is what is useful


@dataclass(frozen=True, slots=True)
class Results:
    """A transcript of the audio from `start` for `duration` seconds (connection clock)."""

    transcript: str
    start: float
    duration: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    words_start: float | None  # first word's start (None: no words)
    words_end: float | None  # last word's end: where the speech ends (livekit PR #6712)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    timestamp: float


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    last_word_end: float


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A message we take no action on (`Metadata`, or a type added later)."""

    type: str


SttMessage = Results | SpeechStarted | UtteranceEnd | OtherMessage


def listen_url(base: str, *, model: str, endpointing_ms: int) -> str:
    """Return the `/v1/listen` URL with our query (`base` is DEEPGRAM_URL)."""
    query = urlencode({
        "model": model, "language": "en-US", "encoding": "mulaw", "sample_rate": "8000",
        "channels": "1", "interim_results": "true", "utterance_end_ms": str(UTTERANCE_END_MS),
        "vad_events": "true", "endpointing": str(endpointing_ms), "punctuate": "true",
    })
    return f"{base}?{query}"


def parse(data: str | bytes) -> SttMessage:
    """Return one server message; raise ProtocolError naming what is wrong with it."""
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"deepgram: not JSON ({len(data)} bytes)") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("deepgram: a message without a type")
    kind = msg["type"]
    if kind == "Results":
        return _results(msg)
    if kind == "SpeechStarted":
        return SpeechStarted(_seconds(msg, "timestamp"))
    if kind == "UtteranceEnd":
        return UtteranceEnd(_seconds(msg, "last_word_end"))
    return OtherMessage(kind[:40])


def _results(msg: dict[str, Any]) -> Results:
    channel = msg.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    if not isinstance(alternatives, list) or not alternatives \
            or not isinstance(alternatives[0], dict):
        raise ProtocolError("deepgram: Results without channel.alternatives")
    best = alternatives[0]
    transcript = best.get("transcript")
    if not isinstance(transcript, str):
        raise ProtocolError("deepgram: Results without a transcript string")
    words = best.get("words") or []
    if not isinstance(words, list) or not all(isinstance(w, dict) for w in words):
        raise ProtocolError("deepgram: Results with malformed words")
    first = _seconds(words[0], "start") if words else None
    last = _seconds(words[-1], "end") if words else None
    return Results(transcript.strip(), _seconds(msg, "start"), _seconds(msg, "duration"),
                   _flag(msg, "is_final"), _flag(msg, "speech_final"),
                   _flag(msg, "from_finalize"), first, last)


def _seconds(msg: dict[str, Any], key: str) -> float:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ProtocolError(f"deepgram: {key} is not a time in seconds: {str(value)[:20]!r}")
    return float(value)


def _flag(msg: dict[str, Any], key: str) -> bool:
    value = msg.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"deepgram: {key} is not true or false")
    return value
