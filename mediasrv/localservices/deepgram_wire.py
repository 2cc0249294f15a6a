"""Deepgram live STT wire shapes (PROTOCOLS-2 section 3): handshake checks, messages. Pure.

Layer: stand-ins.

Handshake: `GET /v1/listen?<params>` with `Authorization: Token <key>` (or `Bearer`).
A missing or wrong key is refused with HTTP 401 and Deepgram's JSON error body
(`err_code`/`err_msg`/`request_id`); bad parameters with 400. Stricter than the real
service on purpose: unknown parameters and audio formats other than 8 kHz mono mu-law
(the only thing mediasrv sends) are refused, so a wrong URL fails loudly in tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .common import JsonObj, request_id
from .recognizer import Word

LISTEN_PATH = "/v1/listen"
NO_AUDIO_REASON = ("Deepgram did not receive audio data or a text message within the timeout "
                   "window. See https://dpgr.am/net0001")
DATA_REASON = "DATA-0000"  # [assumed] the payload of the 1008 close for undecodable input
MODELS = frozenset({"nova-3", "nova-3-general", "nova-3-medical", "nova-2", "nova-2-general",
                    "nova-2-phonecall", "nova-2-conversationalai", "nova-2-meeting", "nova",
                    "enhanced", "base"})
LANGUAGES = frozenset({"en", "en-US", "en-GB", "en-AU", "en-IN", "en-NZ", "multi"})
BOOL_PARAMS = frozenset({"interim_results", "vad_events", "punctuate", "smart_format",
                         "no_delay", "filler_words", "numerals", "profanity_filter",
                         "diarize", "multichannel", "mip_opt_out", "dictation",
                         "measurements", "detect_entities"})
FREE_PARAMS = frozenset({"keyterm", "keywords", "redact", "replace", "search", "tag", "extra",
                         "callback", "callback_method", "version"})
ALL_PARAMS = BOOL_PARAMS | FREE_PARAMS | {"model", "language", "encoding", "sample_rate",
                                          "channels", "endpointing", "utterance_end_ms"}
MODEL_INFO = {"name": "general-nova-3", "version": "local", "arch": "nova-3"}
MODEL_UUID = "00000000-0000-4000-8000-000000000003"


class ParamError(ValueError):
    """A query parameter Deepgram would refuse at the handshake (HTTP 400)."""


@dataclass(frozen=True)
class ListenParams:
    """The parsed query string of one `/v1/listen` connection."""

    model: str = "base"
    language: str = "en"
    interim_results: bool = False
    endpointing_ms: int | None = 10  # Deepgram's default: 10 ms of silence; None = disabled
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False


def parse_params(query: str) -> ListenParams:
    """Validate a `/v1/listen` query string; raise ParamError with Deepgram-style text."""
    raw = parse_qs(query, keep_blank_values=True)
    for name, values in raw.items():
        if name not in ALL_PARAMS:
            raise ParamError(f"Unknown query parameter '{name}' (local stand-in: refused).")
        if len(values) > 1 and name not in FREE_PARAMS:
            raise ParamError(f"Query parameter '{name}' was given more than once.")
    one = {name: values[0] for name, values in raw.items()}
    flags = {name: _bool(name, one[name]) for name in BOOL_PARAMS if name in one}
    if "encoding" in one and "sample_rate" not in one:
        raise ParamError("sample_rate is required when encoding is set for raw audio.")
    if (one.get("encoding"), one.get("sample_rate"), one.get("channels", "1")) != \
            ("mulaw", "8000", "1"):
        raise ParamError("The local stand-in accepts only encoding=mulaw&sample_rate=8000"
                         "&channels=1 (what Twilio sends).")
    model, language = one.get("model", "base"), one.get("language", "en")
    if model not in MODELS or language not in LANGUAGES:
        raise ParamError("No such model/language/tier combination found.")
    return ListenParams(
        model=model, language=language,
        interim_results=flags.get("interim_results", False),
        endpointing_ms=_endpointing(one.get("endpointing")),
        utterance_end_ms=_ms("utterance_end_ms", one["utterance_end_ms"])
        if "utterance_end_ms" in one else None,
        vad_events=flags.get("vad_events", False),
        punctuate=flags.get("punctuate", False) or flags.get("smart_format", False),
    )


def check_auth(headers: list[tuple[str, str]], keys: frozenset[str]) -> bool:
    """True if `Authorization: Token|Bearer <key>` holds a key.

    The browser form (`Sec-WebSocket-Protocol: token, <key>`) is not served: mediasrv
    sends the header, and a subprotocol the stand-in cannot echo would only half work.
    """
    for name, value in headers:
        scheme, _, token = value.strip().partition(" ")
        if name == "authorization" and scheme.lower() in ("token", "bearer"):
            return token.strip() in keys
    return False


def error_body(err_code: str, err_msg: str) -> bytes:
    """Return the JSON body Deepgram answers a refused handshake with."""
    return json.dumps({"err_code": err_code, "err_msg": err_msg,
                       "request_id": request_id()}).encode()


def results(*, words: list[Word], start: float, duration: float, is_final: bool,
            speech_final: bool, from_finalize: bool, punctuate: bool, req_id: str) -> JsonObj:
    """Return a `Results` message; word times are absolute seconds on the audio clock."""
    entries = []
    for i, w in enumerate(words):
        shown = w.word.capitalize() if punctuate and i == 0 else w.word
        if punctuate and is_final and i == len(words) - 1:
            shown += "."
        entries.append({"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                        "confidence": w.confidence, "punctuated_word": shown})
    transcript = " ".join(str(e["punctuated_word"] if punctuate else e["word"])
                          for e in entries)
    confidence = round(sum(w.confidence for w in words) / len(words), 3) if words else 0.0
    return {
        "type": "Results", "channel_index": [0, 1], "duration": round(duration, 3),
        "start": round(start, 3), "is_final": is_final, "speech_final": speech_final,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": confidence,
                                      "words": entries}]},
        "metadata": {"request_id": req_id, "model_info": MODEL_INFO, "model_uuid": MODEL_UUID},
        "from_finalize": from_finalize,
    }


def speech_started(timestamp: float) -> JsonObj:
    return {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(timestamp, 3)}


def utterance_end(last_word_end: float) -> JsonObj:
    return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}


def metadata(req_id: str, created: str, sha256: str, duration: float) -> JsonObj:
    """Return the summary sent after CloseStream, just before the 1000 close."""
    return {"type": "Metadata", "transaction_key": "deprecated", "request_id": req_id,
            "sha256": sha256, "created": created, "duration": round(duration, 3),
            "channels": 1, "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: MODEL_INFO}}


def _bool(name: str, raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ParamError(f"Invalid value for '{name}': expected true or false, got '{raw}'.")
    return raw == "true"


def _ms(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise ParamError(f"Invalid value for '{name}': expected milliseconds, got '{raw}'.")
    return int(raw)


def _endpointing(raw: str | None) -> int | None:
    if raw is None or raw == "true":
        return 10
    if raw == "false":
        return None
    return _ms("endpointing", raw)


def split_target(target: str) -> tuple[str, str]:
    """Return (path, query) of a request target."""
    url = urlsplit(target)
    return url.path, url.query
