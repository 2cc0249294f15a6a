"""ElevenLabs multi-context WebSocket TTS on the wire (PROTOCOLS-2 section 5): the URL,
client messages, server messages parsed into frozen dataclasses. Pure.

Layer: backends.

The key goes in the `xi-api-key` header (the shell's business), never in a message body:
the user's old cascade leaked keys that way. `output_format=ulaw_8000` is what Twilio
plays, so audio passes through untouched; `sync_alignment=true` puts character timings on
every audio chunk. The traps this module absorbs (livekit and pipecat met them live):
`contextId` or `context_id`; `charDurationsMs` or `charsDurationsMs`; alignment that is
null; `normalizedAlignment` preferred, because Flash v2.5's `alignment` can go over a
sentence twice while the normalized one stays in order (pipecat#4316).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mediasrv.errors import ProtocolError

# 180 s, the most the service allows (livekit uses it too): a socket idle between answers
# lives that long; an idle close after it is expected and redialled (see pipeline.py).
INACTIVITY_TIMEOUT_S = 180
VOICE_SETTINGS = {"stability": 0.5, "similarity_boost": 0.8, "speed": 1.0}
# The first audio of an answer waits for 50 characters (or a flush at a sentence end):
# the service's default starts at 120, a long wait for a short first sentence.
CHUNK_SCHEDULE = (50, 120, 160, 250)
CLOSE_SOCKET = '{"close_socket":true}'


@dataclass(frozen=True, slots=True)
class Alignment:
    """Characters of one audio chunk and when each starts, in ms from the chunk's start."""

    chars: tuple[str, ...]
    starts_ms: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Audio:
    context_id: str
    audio: bytes  # 8 kHz mu-law: 8 bytes per ms
    alignment: Alignment | None


@dataclass(frozen=True, slots=True)
class Final:
    """The context's last message: after `close_context`, once its audio is all sent."""

    context_id: str


@dataclass(frozen=True, slots=True)
class ServiceError:
    """An error message; the service closes the socket (1008) right after it."""

    error: str
    message: str


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A message we take no action on (`flush_done`, undocumented)."""

    context_id: str


TtsMessage = Audio | Final | ServiceError | OtherMessage


def stream_url(base: str, *, voice_id: str, model: str) -> str:
    """Return the multi-stream-input URL (`base` is ELEVENLABS_URL)."""
    query = urlencode({"model_id": model, "output_format": "ulaw_8000",
                       "sync_alignment": "true", "inactivity_timeout": INACTIVITY_TIMEOUT_S})
    return f"{base}/v1/text-to-speech/{voice_id}/multi-stream-input?{query}"


def open_context(context_id: str) -> str:
    """Return a context's first message: one space, the voice and the chunk schedule.

    voice_settings are the same in every context's first message: the service refuses a
    change (1008), not a repeat.
    """
    return _dumps({"text": " ", "context_id": context_id, "voice_settings": VOICE_SETTINGS,
                   "generation_config": {"chunk_length_schedule": list(CHUNK_SCHEDULE)}})


def text(context_id: str, piece: str, *, flush: bool = False) -> str:
    """Return text for a context; `flush` generates what is buffered now."""
    body: dict[str, Any] = {"text": piece, "context_id": context_id}
    if flush:
        body["flush"] = True
    return _dumps(body)


def flush(context_id: str) -> str:
    """Return a flush: generate the context's buffered text now, even below the schedule."""
    return _dumps({"context_id": context_id, "flush": True})


def close_context(context_id: str) -> str:
    return _dumps({"context_id": context_id, "close_context": True})


def parse(data: str | bytes) -> TtsMessage:
    """Return one server message; raise ProtocolError naming what is wrong with it."""
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"elevenlabs: not JSON ({len(data)} bytes)") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("elevenlabs: a message that is not an object")
    if "error" in msg or ("message" in msg and "audio" not in msg):
        return ServiceError(str(msg.get("error", ""))[:80], str(msg.get("message", ""))[:200])
    context = msg.get("contextId") or msg.get("context_id")
    if not isinstance(context, str) or not context:
        raise ProtocolError("elevenlabs: a message without contextId")
    if isinstance(msg.get("audio"), str) and msg["audio"]:
        return Audio(context, _audio(msg["audio"]),
                     _alignment(msg.get("normalizedAlignment") or msg.get("alignment")))
    if msg.get("isFinal") is True:
        return Final(context)
    return OtherMessage(context)


def _audio(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError("elevenlabs: audio is not base64") from exc


def _alignment(raw: Any) -> Alignment | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProtocolError("elevenlabs: alignment is not an object")
    chars, starts = raw.get("chars"), raw.get("charStartTimesMs")
    durations = raw.get("charDurationsMs", raw.get("charsDurationsMs"))
    if not isinstance(chars, list) or not isinstance(starts, list) \
            or len(chars) != len(starts) or not all(isinstance(c, str) for c in chars):
        raise ProtocolError("elevenlabs: alignment chars and start times do not match")
    if durations is not None and (not isinstance(durations, list) or len(durations) != len(chars)):
        raise ProtocolError("elevenlabs: alignment durations do not match its chars")
    if not all(_ms(s) for s in starts):
        raise ProtocolError("elevenlabs: alignment start times are not ms")
    return Alignment(tuple(chars), tuple(float(s) for s in starts))


def _ms(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) \
        and math.isfinite(value) and value >= 0


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
