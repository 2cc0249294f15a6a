"""Twilio REST (2010-04-01) shapes for the local stand-in: errors, forms, resources. Pure.

PROTOCOLS-2 6: HTTP Basic auth (AccountSid:AuthToken), form-encoded bodies with a list
sent as the same key repeated, JSON answers. Errors are the legacy shape twilio-python
parses into `TwilioRestException` (`base/version.py`): {"code", "message", "more_info",
"status"}. Codes used:

    401 20003 Authenticate                                  (twilio-python issues #42)
    404 20404 The requested resource ... was not found      (twilio.com/docs/errors/20404)
    400 21220 Call is not in-progress. Cannot redirect.     (seen in many clients)
    400 21211 Invalid 'To' Phone Number                     (twilio.com/docs/errors/21211)
    400 32019 Twiml and Url both set -- the real API only warns (32019) and uses Url; the
              stand-in refuses, to catch a client that sends both [stricter]
    400 12100 Document parse failure (bad TwiML); 400 32018 inline Twiml over 4000
              characters (PROTOCOLS.md 4); 502 11200 HTTP retrieval failure (the Url)
    400 21201 / 21213 / 21205 missing To / missing From / no Url or Twiml  [assumed codes]
    400 20001 any other bad or unknown parameter  [assumed code; unknown parameters are
              refused on purpose: the real API ignores them, hiding typos] [stricter]
    5xx 20500 injected faults  [assumed code]

Layer: stand-ins.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator

JsonObj = dict[str, Any]
Form = dict[str, list[str]]

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# What a caller may be: a phone number, a SIP address or a Twilio client identity.
PARTY = re.compile(r"^(\+[1-9][0-9]{6,14}|sip:[^\s]+|client:[A-Za-z0-9_.-]+)$")
MAX_TWIML = 4000  # characters of inline Twiml (PROTOCOLS.md 4)


class TwilioError(Exception):
    """An error answered with Twilio's JSON error shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> bytes:
        return json.dumps({"code": self.code, "message": self.message,
                           "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                           "status": self.status}).encode()


def bad_param(message: str) -> TwilioError:
    return TwilioError(400, 20001, message)


def not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def check_auth(header: str | None, account_sid: str, auth_token: str) -> None:
    """Raise 401 (20003) unless HTTP Basic auth carries AccountSid:AuthToken."""
    given = ""
    if header and header.startswith("Basic "):
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    if not hmac.compare_digest(given.encode(), f"{account_sid}:{auth_token}".encode()):
        raise TwilioError(401, 20003, "Authenticate")


def parse_form(body: bytes, content_type: str) -> Form:
    """Decode a form body; keys repeat for lists. Refuse other content types."""
    if not body:
        return {}
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise bad_param(f"Content-Type must be application/x-www-form-urlencoded, got "
                        f"{content_type!r}")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise bad_param("the body is not a valid form") from None


@dataclass(frozen=True)
class Params:
    """Form fields of one request, with the checks every endpoint needs."""

    form: Form

    def check_known(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self.form) - allowed)
        if unknown:
            raise bad_param(f"Unknown parameter(s) {unknown} [stricter than Twilio, which "
                            "ignores them]")

    def one(self, key: str, default: str = "") -> str:
        values = self.form.get(key)
        if not values:
            return default
        if len(values) > 1:
            raise bad_param(f"{key} was given {len(values)} times; it takes one value")
        return values[0]

    def many(self, key: str) -> list[str]:
        """A list parameter: repeated keys, each maybe space-separated (both are sent)."""
        return [word for value in self.form.get(key, []) for word in value.split()]

    def choice(self, key: str, allowed: tuple[str, ...], default: str = "") -> str:
        value = self.one(key, default)
        if value and value not in allowed:
            raise bad_param(f"{key} must be one of {list(allowed)}, got {value!r}")
        return value

    def method(self, key: str) -> str:
        return self.choice(key, ("GET", "POST"), "POST") or "POST"

    def url(self, key: str) -> str:
        value = self.one(key)
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise TwilioError(400, 21205, f"{key} is not a valid URL: {value!r}")
        return value


@dataclass(frozen=True)
class Route:
    operation: str  # calls.create | calls.fetch | calls.update | recordings.create | ...update
    call_sid: str = ""
    recording_sid: str = ""


_PATHS = (
    ("POST", re.compile(r"/Calls\.json"), "calls.create"),
    ("GET", re.compile(r"/Calls/(?P<call>[^/]+)\.json"), "calls.fetch"),
    ("POST", re.compile(r"/Calls/(?P<call>[^/]+)\.json"), "calls.update"),
    ("POST", re.compile(r"/Calls/(?P<call>[^/]+)/Recordings\.json"), "recordings.create"),
    ("POST", re.compile(r"/Calls/(?P<call>[^/]+)/Recordings/(?P<rec>[^/]+)\.json"),
     "recordings.update"),
)


def route(method: str, path: str, account_sid: str) -> Route:
    """Return the operation a request is for; 404 (20404) for anything else."""
    prefix = f"/{API_VERSION}/Accounts/{account_sid}"
    if path.startswith(prefix):
        rest = path[len(prefix):]
        for verb, pattern, operation in _PATHS:
            match = pattern.fullmatch(rest)
            if match and verb == method:
                groups = match.groupdict()
                return Route(operation, groups.get("call") or "", groups.get("rec") or "")
    raise not_found(path)


def rfc2822(unix: float | None) -> str | None:
    """Return Twilio's date format ("Tue, 31 Aug 2010 20:36:28 +0000"), or None."""
    if unix is None:
        return None
    return format_datetime(datetime.fromtimestamp(unix, UTC))


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Return the X-Twilio-Signature Twilio puts on a webhook POST of `params` to `url`."""
    return str(RequestValidator(auth_token).compute_signature(url, params))
