"""Realtime GA wire shapes for the local backend: ids, errors, session validation. Pure.

Layer: stand-ins.

Bad client input raises `ClientEventError`; the session turns it into an `error` event
(`error.type` "invalid_request_error") and stays open, as the real API does. Codes and
message texts copy the real API where they are known (PROTOCOLS.md section 2.6); the
rest follow its style ("Missing required parameter: 'x'.").
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from mediasrv.errors import ProtocolError

JsonObj = dict[str, Any]

BETA_DISABLED_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
# Session keys of the GA model; anything else is an unknown parameter, as in the real API.
GA_SESSION_KEYS = frozenset(
    {"type", "model", "output_modalities", "instructions", "audio", "include", "tracing",
     "tools", "tool_choice", "max_output_tokens", "truncation", "prompt"}
)
AUDIO_FORMATS = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma"})
VAD_DEFAULTS: JsonObj = {
    "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
    "silence_duration_ms": 500, "create_response": True, "interrupt_response": True,
    "idle_timeout_ms": None,
}


class ClientEventError(ProtocolError):
    """A client event the backend rejects; becomes an `error` event on the wire."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def new_id(prefix: str) -> str:
    """Return an id shaped like the real API's (`item_`, `resp_`, `event_` + 20 chars)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def event(kind: str, **fields: Any) -> JsonObj:
    """Return a server event with a fresh `event_id`."""
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(
    code: str, message: str, param: str | None = None, event_id: str | None = None,
    kind: str = "invalid_request_error",
) -> JsonObj:
    """Return an `error` server event; `event_id` echoes the failing client event."""
    body = {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
    return event("error", error=body)


def beta_disabled_event() -> JsonObj:
    """Return the exact error the real API sends before closing a beta connection (4000)."""
    body = {"type": "invalid_request_error", "code": "beta_api_shape_disabled",
            "message": BETA_DISABLED_MESSAGE, "param": None}
    return {"type": "error", "event_id": new_id("event"), "error": body}


def missing(param: str) -> ClientEventError:
    return ClientEventError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


def unknown(param: str) -> ClientEventError:
    return ClientEventError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def bad_type(param: str, expected: str, got: Any) -> ClientEventError:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             dict: "an object", list: "an array", type(None): "null"}
    message = (
        f"Invalid type for '{param}': expected {expected}, "
        f"but got {names.get(type(got), 'a value')} instead."
    )
    return ClientEventError("invalid_type", message, param)


def bad_value(param: str, got: Any, hint: str) -> ClientEventError:
    return ClientEventError("invalid_value", f"Invalid value: '{got}'. {hint}", param)


def need_int(obj: JsonObj, key: str, param: str, minimum: int = 0) -> int:
    """Return obj[key] as a non-negative int (bools rejected), or raise."""
    if key not in obj:
        raise missing(param)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_type(param, "an integer", value)
    if value < minimum:
        raise ClientEventError(
            "integer_below_min_value",
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.", param,
        )
    return value


def need_obj(value: Any, param: str) -> JsonObj:
    if not isinstance(value, dict):
        raise bad_type(param, "an object", value)
    return value


def default_session(session_id: str, model: str) -> JsonObj:
    """Return the session `session.created` reports: GA shape, mu-law both ways."""
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": ["audio"], "instructions": "",
        "audio": {
            "input": {"format": {"type": "audio/pcmu"}, "transcription": None,
                      "noise_reduction": None, "turn_detection": dict(VAD_DEFAULTS)},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
        },
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf",
        "tracing": None, "truncation": "auto", "prompt": None, "include": None,
    }


def apply_session_update(current: JsonObj, update: Any) -> JsonObj:
    """Return the effective session after a `session.update`, or raise ClientEventError."""
    update = need_obj(update, "session")
    for key in update:
        if key not in GA_SESSION_KEYS:
            raise unknown(f"session.{key}")
    if "type" not in update:
        raise missing("session.type")
    if update["type"] != "realtime":
        raise bad_value("session.type", update["type"],
                        "The local backend supports only 'realtime' sessions.")
    if "model" in update and update["model"] != current["model"]:
        raise ClientEventError("invalid_value", "Cannot update a session's model.", "session.model")
    if "output_modalities" in update and update["output_modalities"] != ["audio"]:
        raise bad_value("session.output_modalities", update["output_modalities"],
                        "The local backend supports only ['audio'].")
    if "instructions" in update and not isinstance(update["instructions"], str):
        raise bad_type("session.instructions", "a string", update["instructions"])
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key != "audio":
            merged[key] = copy.deepcopy(value)
    if "audio" in update:
        _merge_audio(merged["audio"], need_obj(update["audio"], "session.audio"))
    return merged


def _merge_audio(audio: JsonObj, update: JsonObj) -> None:
    allowed = {"input": {"format", "transcription", "noise_reduction", "turn_detection"},
               "output": {"format", "voice", "speed"}}
    for side, value in update.items():
        if side not in allowed:
            raise unknown(f"session.audio.{side}")
        section = need_obj(value, f"session.audio.{side}")
        for key, item in section.items():
            param = f"session.audio.{side}.{key}"
            if key not in allowed[side]:
                raise unknown(param)
            if key == "format":
                _check_format(item, param)
            elif key == "turn_detection":
                item = _turn_detection(item, param)
            elif key in ("transcription", "noise_reduction") and item is not None:
                need_obj(item, param)
            audio[side][key] = copy.deepcopy(item)


def _check_format(value: Any, param: str) -> None:
    kind = need_obj(value, param).get("type")
    if kind is None:
        raise missing(f"{param}.type")
    if kind not in AUDIO_FORMATS:
        raise bad_value(f"{param}.type", kind,
                        "Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'.")
    if kind != "audio/pcmu":
        raise bad_value(f"{param}.type", kind, "The local backend supports only 'audio/pcmu'.")


def _turn_detection(value: Any, param: str) -> JsonObj | None:
    if value is None:
        return None
    value = need_obj(value, param)
    kind = value.get("type")
    if kind == "semantic_vad":
        raise bad_value(f"{param}.type", kind, "The local backend supports only 'server_vad'.")
    if kind != "server_vad":
        raise bad_value(f"{param}.type", kind,
                        "Supported values are: 'server_vad' and 'semantic_vad'.")
    for key in value:
        if key not in VAD_DEFAULTS:
            raise unknown(f"{param}.{key}")
    merged = {**VAD_DEFAULTS, **value}
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        need_int(merged, key, f"{param}.{key}")
    if merged["idle_timeout_ms"] is not None:
        need_int(merged, "idle_timeout_ms", f"{param}.idle_timeout_ms")
    for key in ("create_response", "interrupt_response"):
        if not isinstance(merged[key], bool):
            raise bad_type(f"{param}.{key}", "a boolean", merged[key])
    threshold = merged["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise bad_type(f"{param}.threshold", "a number", threshold)
    if not 0.0 <= threshold <= 1.0:
        raise bad_value(f"{param}.threshold", threshold, "Expected a number from 0.0 to 1.0.")
    return merged
