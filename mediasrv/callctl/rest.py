"""The Twilio REST client mediasrv uses, pointable at a local stand-in; TwiML builders.

twilio 9.13.0 has no base-URL setting: `twilio/rest/api/ApiBase.py` hard-codes
"https://api.twilio.com" as the domain, `Domain.absolute_url()` joins it with the path,
and `ClientBase.request()` hands the full URL to the client's `http_client`
(`HttpClient.request(method, url, params, data, headers, auth, timeout,
allow_redirects)`), the library's documented extension point. So TWILIO_API_BASE_URL is
applied there: `RebasedHttpClient` swaps the origin of every `api.*twilio.com` URL
(including the edge/region forms `get_hostname()` makes from TWILIO_EDGE/TWILIO_REGION)
for the configured one, keeps path and query, and delegates to the real client. Auth,
form encoding, the JSON parsing and `TwilioRestException` are the library's own.

Layer: call control (the Twilio REST client: I/O).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from mediasrv.errors import ConfigError

from .tools_file import TransferTarget

TWILIO_API_ORIGIN = "https://api.twilio.com"
REST_TIMEOUT_S = 5.0
DIAL_TIMEOUT_S = 20  # rings before a transfer gives up (Twilio's <Dial timeout>)


def check_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash; raise ConfigError if unusable."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ConfigError(f"TWILIO_API_BASE_URL: {base_url!r}: must be http(s)://HOST[:PORT]"
                          " with no query")
    return base_url.rstrip("/")


class RebasedHttpClient(HttpClient):
    """An HttpClient that sends Twilio API requests to `base_url` instead."""

    def __init__(self, base_url: str, inner: HttpClient | None = None,
                 timeout: float = REST_TIMEOUT_S) -> None:
        self._inner = inner or TwilioHttpClient(timeout=timeout)
        super().__init__(self._inner.logger, False, self._inner.timeout)
        self.base_url = check_base_url(base_url)

    def rebase(self, url: str) -> str:
        """Return `url` with a Twilio API origin replaced by the base URL."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not (host == "api.twilio.com" or
                (host.startswith("api.") and host.endswith(".twilio.com"))):
            return url
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(self, method: str, url: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None,
                headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                timeout: float | None = None, allow_redirects: bool = False) -> Response:
        return self._inner.request(method, self.rebase(url), params=params, data=data,
                                   headers=headers, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects)


def rest_client(account_sid: str, auth_token: str, base_url: str = "",
                timeout_s: float = REST_TIMEOUT_S, http_client: HttpClient | None = None
                ) -> Client:
    """Return a twilio Client; with `base_url`, its API requests go there."""
    inner = http_client or TwilioHttpClient(timeout=timeout_s)
    client_http = RebasedHttpClient(base_url, inner) if base_url else inner
    return Client(account_sid, auth_token, http_client=client_http)


def dial_twiml(target: TransferTarget, caller_id: str = "") -> str:
    """Return the TwiML that transfers a live call to `target` (then ends the call)."""
    vr = VoiceResponse()
    dial = vr.dial(caller_id=caller_id or None, answer_on_bridge=True,
                   timeout=DIAL_TIMEOUT_S)
    dial.number(target.number)
    return str(vr)


def say_and_hang_up_twiml(message: str) -> str:
    """Return TwiML that says `message` (e.g. the voicemail after the beep), then hangs up."""
    vr = VoiceResponse()
    vr.say(message)
    vr.hangup()
    return str(vr)
