"""Twilio's side of the wire, as the emulator speaks it (PROTOCOLS.md sections 1.2-1.8).

Layer: emulator.

Builders return `str` exactly shaped like Twilio's messages (numeric-looking fields are
strings); `parse_server_message` turns a server frame into a `ServerMessage` or an
`Ignored` with the reason. The voice webhook (`post_voice`) is the only I/O here.

This is deliberately written apart from the server's own Twilio codec: an emulator that
shares the code under test cannot catch its mistakes.
"""

from __future__ import annotations

import binascii
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field

from twilio.request_validator import RequestValidator


class CallSetupError(Exception):
    """The emulated call could not be set up (webhook, TwiML or WebSocket handshake)."""


@dataclass(frozen=True)
class StreamTarget:
    """Where `<Connect><Stream>` points, with its `<Parameter>`s."""

    url: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerMessage:
    """A server -> Twilio message: `media` (payload), `mark` (name) or `clear`."""

    event: str
    stream_sid: str = ""
    payload: bytes = b""
    name: str = ""


@dataclass(frozen=True)
class Ignored:
    reason: str


def new_sid(prefix: str) -> str:
    """Return a random Twilio-looking sid: two letters then 32 hex digits."""
    return prefix + secrets.token_hex(16)


def connected_msg() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_msg(
    seq: int, stream_sid: str, call_sid: str, account_sid: str, params: Mapping[str, str]
) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(seq),
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "accountSid": account_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": dict(params),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media_msg(seq: int, stream_sid: str, chunk: int, timestamp_ms: int, payload: bytes) -> str:
    # A template rather than json.dumps: 50 of these per second per call, and every
    # field is a sid, a number or base64, none of which needs JSON escaping.
    return (
        f'{{"event":"media","sequenceNumber":"{seq}","streamSid":"{stream_sid}",'
        f'"media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}",'
        f'"payload":"{b64encode(payload).decode("ascii")}"}}}}'
    )


def mark_msg(seq: int, stream_sid: str, name: str) -> str:
    return json.dumps(
        {
            "event": "mark",
            "sequenceNumber": str(seq),
            "streamSid": stream_sid,
            "mark": {"name": name},
        }
    )


def dtmf_msg(seq: int, stream_sid: str, digit: str) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "streamSid": stream_sid,
            "sequenceNumber": str(seq),
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    )


def stop_msg(seq: int, stream_sid: str, call_sid: str, account_sid: str) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(seq),
            "streamSid": stream_sid,
            "stop": {"accountSid": account_sid, "callSid": call_sid},
        }
    )


def parse_server_message(text: str | bytes) -> ServerMessage | Ignored:
    """Parse one frame the server sent; unknown or malformed input becomes `Ignored`."""
    try:
        msg = json.loads(text)
    except ValueError:
        return Ignored("not json")
    if not isinstance(msg, dict):
        return Ignored("not a json object")
    event, sid = msg.get("event"), msg.get("streamSid", "")
    if event == "media":
        payload = (msg.get("media") or {}).get("payload")
        if not isinstance(payload, str):
            return Ignored("media without payload")
        try:
            return ServerMessage("media", sid, payload=b64decode(payload, validate=True))
        except binascii.Error:
            return Ignored("media payload is not base64")
    if event == "mark":
        name = (msg.get("mark") or {}).get("name")
        if not isinstance(name, str):
            return Ignored("mark without name")
        return ServerMessage("mark", sid, name=name)
    if event == "clear":
        return ServerMessage("clear", sid)
    return Ignored(f"unknown event {event!r}")


def parse_twiml(xml_text: str) -> StreamTarget:
    """Return the `<Connect><Stream>` target of a TwiML document."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise CallSetupError(f"twiml is not xml: {exc}") from exc
    reject = root.find("./Reject")
    if reject is not None:
        raise CallSetupError(f"call rejected: {reject.get('reason', 'rejected')}")
    stream = root.find("./Connect/Stream")
    if root.tag != "Response" or stream is None:
        raise CallSetupError("twiml has no <Response><Connect><Stream>")
    url = stream.get("url", "")
    if not url.startswith("wss://"):
        raise CallSetupError(f"stream url must be wss:// (twilio error 31922): {url!r}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return StreamTarget(url, params)


def parse_redirect(xml_text: str) -> str | None:
    """Return the URL of a `<Response><Redirect>` document (None for any other TwiML).

    Only POST redirects are emulated (the method Twilio uses unless told otherwise).
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None  # parse_twiml says why
    redirect = root.find("./Redirect")
    if root.tag != "Response" or redirect is None:
        return None
    if redirect.get("method", "POST").upper() != "POST":
        raise CallSetupError(f"redirect method {redirect.get('method')!r} is not emulated")
    return (redirect.text or "").strip()


def local_http_url(public_url: str, base_url: str) -> str:
    """Map a public webhook URL onto the server we actually reach (same path and query)."""
    base = urllib.parse.urlsplit(base_url)
    public = urllib.parse.urlsplit(public_url)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, public.path, public.query, ""))


def local_ws_url(stream_url: str, base_url: str) -> str:
    """Map the public stream URL onto the server we actually reach (same path)."""
    base = urllib.parse.urlsplit(base_url)
    path = urllib.parse.urlsplit(stream_url).path or "/"
    scheme = "wss" if base.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, base.netloc, path, "", ""))


def public_stream_url(public_url: str | None, base_url: str, path: str = "/media") -> str:
    """Return the stream URL a `<Stream>` would name when no webhook is fetched."""
    origin = urllib.parse.urlsplit(public_url or base_url)
    scheme = "wss" if public_url or origin.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, origin.netloc, path, "", ""))


def signature(token: str, url: str, params: Mapping[str, str]) -> str:
    """Return the X-Twilio-Signature Twilio would send for `url` and form `params`."""
    return RequestValidator(token).compute_signature(url, dict(params))


def post_voice(
    url: str,
    params: Mapping[str, str],
    *,
    signed_url: str,
    token: str | None,
    timeout: float,
) -> str:
    """POST the voice webhook like Twilio does; return the TwiML text."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        headers["X-Twilio-Signature"] = signature(token, signed_url, params)
    body = urllib.parse.urlencode(dict(params)).encode("ascii")
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return str(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise CallSetupError(f"voice webhook answered http {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CallSetupError(f"voice webhook failed: {exc}") from exc
