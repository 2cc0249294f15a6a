"""ElevenLabs multi-context WebSocket TTS wire shapes (PROTOCOLS-2 section 5). Pure.

Layer: stand-ins.

Handshake: `GET /v1/text-to-speech/{voice_id}/multi-stream-input?model_id=...` with the
key in the `xi-api-key` header. A wrong key is refused with 401 and ElevenLabs' JSON
(`{"detail": {"status", "message"}}`); bad query values with 422 in FastAPI's shape.
Stricter than the real service on purpose: a key in a message body (which the real
service tolerates and which leaked keys into logs in the user's old cascade) is refused,
unknown query parameters and message fields are refused, and only `ulaw_8000` is served.
Server errors on an open socket are `{"message", "error", "code": 1008}` followed by a
1008 close whose reason is the message cut to 123 bytes, as the real service does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .common import JsonObj

PATH = re.compile(r"^/v1/text-to-speech/([A-Za-z0-9_-]{1,64})/multi-stream-input$")
MODELS = frozenset({"eleven_flash_v2_5", "eleven_flash_v2", "eleven_turbo_v2_5",
                    "eleven_turbo_v2", "eleven_multilingual_v2", "eleven_monolingual_v1"})
QUERY_KEYS = frozenset({"model_id", "output_format", "inactivity_timeout", "sync_alignment",
                        "auto_mode", "apply_text_normalization", "language_code",
                        "enable_ssml_parsing", "enable_logging", "seed"})
MESSAGE_KEYS = frozenset({"text", "context_id", "voice_settings", "generation_config",
                          "pronunciation_dictionary_locators", "flush", "close_context",
                          "close_socket", "try_trigger_generation"})
BODY_KEY_FIELDS = ("xi_api_key", "xi-api-key")
VOICE_SETTINGS = {"stability": (0.0, 1.0), "similarity_boost": (0.0, 1.0), "style": (0.0, 1.0),
                  "speed": (0.7, 1.2)}
DEFAULT_SCHEDULE = (120, 160, 250, 290)

BAD_MESSAGE = ("Could not parse input message, make sure it is a json and follows the "
               "schema outlined in protocol.")
VOICE_SETTINGS_CHANGED = ("voice_settings field must be provided in the first message and "
                          "then either be not provided or not change.")
KEY_IN_BODY = ("The API key must be sent in the xi-api-key header; a key in the message body "
               "is refused (local stand-in).")
NO_KEY = "You must be authenticated to use this endpoint: send the xi-api-key header."
TOO_MANY_CONTEXTS = ("Maximum number of simultaneous contexts (5) exceeded. Close a context "
                     "before opening a new one.")


def inactivity_message(seconds: int) -> str:
    return (f"Have not received a new text input within the timeout of {seconds} seconds. "
            "Streaming input terminated. Please make sure to either feed the input in the "
            'timely manner, or to send the end of input text (empty string "") when done.')


class QueryError(ValueError):
    """A query parameter refused at the handshake (HTTP 422)."""

    def __init__(self, name: str, message: str, value: str) -> None:
        super().__init__(message)
        self.name = name
        self.value = value

    def body(self) -> bytes:
        return json.dumps({"detail": [{"type": "value_error", "loc": ["query", self.name],
                                       "msg": str(self), "input": self.value}]}).encode()


class MessageError(ValueError):
    """A client message the server answers with an error and a 1008 close."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error

    def event(self) -> JsonObj:
        return {"message": str(self), "error": self.error, "code": 1008}


@dataclass(frozen=True)
class StreamParams:
    voice_id: str
    model_id: str = "eleven_flash_v2_5"
    inactivity_timeout_s: int = 20
    sync_alignment: bool = False
    auto_mode: bool = False


def parse_target(target: str) -> StreamParams | None:
    """Return the parameters of a multi-stream-input URL, None for another path."""
    url = urlsplit(target)
    match = PATH.match(url.path)
    if match is None:
        return None
    raw = parse_qs(url.query, keep_blank_values=True)
    one = {name: values[-1] for name, values in raw.items()}
    for name in one:
        if name not in QUERY_KEYS:
            raise QueryError(name, f"Unknown query parameter '{name}' (local stand-in).",
                             one[name])
    model = one.get("model_id", "eleven_flash_v2_5")
    if model not in MODELS:
        raise QueryError("model_id", f"Model '{model}' is not available for streaming input.",
                         model)
    if one.get("output_format", "mp3_44100_128") != "ulaw_8000":
        raise QueryError("output_format", "The local stand-in serves only "
                         "output_format=ulaw_8000 (what Twilio plays).",
                         one.get("output_format", ""))
    timeout = one.get("inactivity_timeout", "20")
    if not timeout.isdigit() or not 1 <= int(timeout) <= 180:
        raise QueryError("inactivity_timeout", "Input should be an integer from 1 to 180.",
                         timeout)
    return StreamParams(match.group(1), model, int(timeout),
                        _flag(one, "sync_alignment"), _flag(one, "auto_mode"))


def header_key(headers: list[tuple[str, str]]) -> str | None:
    return next((value for name, value in headers if name == "xi-api-key"), None)


def parse_message(text: str) -> JsonObj:
    """Return a client message as a dict, or raise MessageError."""
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise MessageError(BAD_MESSAGE, "invalid_input_message") from exc
    if not isinstance(msg, dict):
        raise MessageError(BAD_MESSAGE, "invalid_input_message")
    if any(key in msg for key in BODY_KEY_FIELDS):
        raise MessageError(KEY_IN_BODY, "authorization_header_required")
    if set(msg) - MESSAGE_KEYS:
        raise MessageError(BAD_MESSAGE, "invalid_input_message")
    for key, kind in (("text", str), ("context_id", str), ("flush", bool),
                      ("close_context", bool), ("close_socket", bool),
                      ("try_trigger_generation", bool)):
        if key in msg and not isinstance(msg[key], kind):
            raise MessageError(BAD_MESSAGE, "invalid_input_message")
    if "voice_settings" in msg:
        _check_voice_settings(msg["voice_settings"])
    if "generation_config" in msg:
        schedule(msg["generation_config"])
    return msg


def schedule(config: Any) -> tuple[int, ...]:
    """Return a generation_config's chunk_length_schedule (validated), or the default."""
    if not isinstance(config, dict) or set(config) - {"chunk_length_schedule"}:
        raise MessageError(BAD_MESSAGE, "invalid_input_message")
    values = config.get("chunk_length_schedule", list(DEFAULT_SCHEDULE))
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and 50 <= v <= 500
                       for v in values)):
        raise MessageError("chunk_length_schedule values must be integers from 50 to 500.",
                           "invalid_input_message")
    return tuple(values)


def _check_voice_settings(settings: Any) -> None:
    if not isinstance(settings, dict):
        raise MessageError(BAD_MESSAGE, "invalid_input_message")
    for key, value in settings.items():
        if key == "use_speaker_boost":
            ok = isinstance(value, bool)
        elif key in VOICE_SETTINGS:
            low, high = VOICE_SETTINGS[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool) \
                and low <= value <= high
        else:
            ok = False
        if not ok:
            raise MessageError(f"Invalid voice_settings.{key}: {value!r}.",
                               "invalid_input_message")


def _flag(query: dict[str, str], name: str) -> bool:
    value = query.get(name, "false")
    if value not in ("true", "false"):
        raise QueryError(name, "Input should be a valid boolean.", value)
    return value == "true"


def auth_error() -> bytes:
    return json.dumps({"detail": {"status": "invalid_api_key",
                                  "message": "Invalid API key"}}).encode()
