"""Twilio Media Streams messages (PROTOCOLS.md section 1): data in, data out.

Layer: protocol.

`parse_twilio` turns one text frame into a frozen dataclass or raises
TwilioProtocolError with a lowercase reason; the rx loop logs the reason and drops
the message. Builders return `str` from templates computed once per stream, so a
20 ms frame costs one base64 encode and one concatenation.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mediasrv.audio import FRAME_BYTES
from mediasrv.errors import TwilioProtocolError

# Far larger than any real frame (Twilio sends 20 ms); 1 s of audio is a hostile size.
MAX_MEDIA_BYTES = 8000


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True, slots=True)
class Media:
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str


TwilioMessage = Connected | Start | Media | Mark | Dtmf | Stop


def parse_twilio(text: str | bytes, max_chars: int | None = None) -> TwilioMessage:
    """Parse one Twilio WebSocket message; raise TwilioProtocolError if unusable.

    `max_chars` caps the message (WS_MAX_MESSAGE_BYTES): longer ones are dropped
    before any parsing, the socket stays open.
    """
    if not isinstance(text, str):
        raise TwilioProtocolError(f"binary websocket frame of {len(text)} bytes: dropped")
    if max_chars is not None and len(text) > max_chars:
        raise TwilioProtocolError(f"message of {len(text)} chars exceeds {max_chars}: dropped")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TwilioProtocolError("not json: dropped") from exc
    if not isinstance(msg, dict):
        raise TwilioProtocolError("json is not an object: dropped")
    event = msg.get("event")
    if not isinstance(event, str):
        raise TwilioProtocolError("no event field: dropped")
    parser = _PARSERS.get(event)
    if parser is None:
        raise TwilioProtocolError(f"unknown event {event[:40]!r}: dropped")
    return parser(msg)


def _obj(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise TwilioProtocolError(f"{msg.get('event')}: missing object {key!r}: dropped")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise TwilioProtocolError(f"{where}: missing field {key!r}: dropped")
    return value


def _parse_media(msg: dict[str, Any]) -> Media:
    media = _obj(msg, "media")
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise TwilioProtocolError("media: missing payload: dropped")
    if len(payload) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise TwilioProtocolError(f"media: payload of {len(payload)} chars is too large: dropped")
    try:
        audio = b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TwilioProtocolError("media: payload is not base64: dropped") from exc
    if not audio:
        raise TwilioProtocolError("media: empty payload: dropped")
    if len(audio) % FRAME_BYTES:
        raise TwilioProtocolError(
            f"media: payload of {len(audio)} bytes is not a multiple of 20 ms: dropped"
        )
    raw_ts = media.get("timestamp", -1)
    try:
        timestamp = int(raw_ts)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is inf
        timestamp = -1  # optional for our purposes; gap detection skips it
    return Media(timestamp_ms=timestamp, payload=audio)


def _parse_start(msg: dict[str, Any]) -> Start:
    start = _obj(msg, "start")
    custom = start.get("customParameters") or {}
    if not isinstance(custom, dict):
        raise TwilioProtocolError("start: customParameters is not an object: dropped")
    fmt = start.get("mediaFormat") or {}
    if not isinstance(fmt, dict):
        raise TwilioProtocolError("start: mediaFormat is not an object: dropped")
    encoding = fmt.get("encoding", "audio/x-mulaw")
    rate = fmt.get("sampleRate", 8000)
    channels = fmt.get("channels", 1)
    if encoding != "audio/x-mulaw" or rate != 8000 or channels != 1:
        raise TwilioProtocolError(f"start: unsupported media format {encoding}/{rate}/{channels}")
    stream_sid = start.get("streamSid") or msg.get("streamSid")
    if not isinstance(stream_sid, str) or not stream_sid:
        raise TwilioProtocolError("start: missing field 'streamSid': dropped")
    return Start(
        stream_sid=stream_sid,
        call_sid=_str(start, "callSid", "start"),
        account_sid=str(start.get("accountSid") or ""),
        custom_parameters={str(k): str(v) for k, v in custom.items()},
    )


def _parse_mark(msg: dict[str, Any]) -> Mark:
    return Mark(name=_str(_obj(msg, "mark"), "name", "mark"))


def _parse_dtmf(msg: dict[str, Any]) -> Dtmf:
    return Dtmf(digit=_str(_obj(msg, "dtmf"), "digit", "dtmf"))


def _parse_stop(msg: dict[str, Any]) -> Stop:
    stop = msg.get("stop")
    call_sid = stop.get("callSid", "") if isinstance(stop, dict) else ""
    return Stop(call_sid=str(call_sid))


def _parse_connected(msg: dict[str, Any]) -> Connected:
    return Connected(protocol=str(msg.get("protocol", "")), version=str(msg.get("version", "")))


_PARSERS: dict[str, Callable[[dict[str, Any]], TwilioMessage]] = {
    "connected": _parse_connected,
    "start": _parse_start,
    "media": _parse_media,
    "mark": _parse_mark,
    "dtmf": _parse_dtmf,
    "stop": _parse_stop,
}


class TwilioMessages:
    """Outbound message builders for one stream (templates built once)."""

    def __init__(self, stream_sid: str) -> None:
        sid = json.dumps(stream_sid)
        self._media_head = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_head = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self.clear = '{"event":"clear","streamSid":' + sid + "}"

    def media(self, frame: bytes) -> str:
        return self._media_head + b64encode(frame).decode("ascii") + '"}}'

    def mark(self, name: str) -> str:
        return self._mark_head + json.dumps(name) + "}}"
