"""What `/voice` answers: the stream on this instance, a handoff to another, or busy.

Behind a proxy that spreads `/voice` over several instances, the instance that answers
the webhook is the one that reserved the slot (admission.py), so its TwiML points the
stream at itself: `wss://<PUBLIC_URL host><INSTANCE_PATH>/media`. The proxy routes on
that path segment and strips it (`<Stream>` URLs cannot carry a query string).

An instance with no room does not answer busy at once when there may be others: it
hands the call back to the proxy with `<Redirect>` to `/voice?handoff=N` (a webhook URL
may carry a query string; Twilio POSTs the same call again, signed over the new URL).
The counter bounds the round trips: after BUSY_REDIRECTS handoffs the call is answered
busy. A load balancer that reads `/healthz?ready=1` rarely sends a call to a full
instance; the handoff covers the seconds before it notices, and proxies without
active health checks.

Pure: builds TwiML text from decisions, no Flask, no I/O.

Layer: web.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from twilio.twiml.voice_response import Connect, VoiceResponse

HANDOFF_PARAM = "handoff"  # the counter in the redirect URL's query: handoffs so far
VOICE_PATH = "/voice"


class Outcome(Enum):
    STREAM = "stream"  # the call streams to this instance
    HANDOFF = "handoff"  # redirected to the proxy's /voice: another instance may have room
    BUSY = "busy"  # rejected: no instance had room within the handoff budget


@dataclass(frozen=True)
class VoiceAnswer:
    outcome: Outcome
    twiml: str
    detail: str  # for the log line: why, and where to


def handoffs_so_far(raw: str | None) -> int | None:
    """Parse the counter of a redirected webhook (absent: 0); None when malformed."""
    if raw is None:
        return 0
    if not raw.isdigit() or len(raw) > 3:
        return None
    return int(raw)


def stream(stream_url: str, parameters: dict[str, str]) -> VoiceAnswer:
    """Connect the call's media to `stream_url`; nothing follows, so closing it hangs up."""
    vr = VoiceResponse()
    connect = Connect()
    verb = connect.stream(url=stream_url)
    for name, value in parameters.items():
        verb.parameter(name=name, value=value)
    vr.append(connect)
    return VoiceAnswer(Outcome.STREAM, str(vr), stream_url)


def refuse(why: str, *, handoffs: int | None, max_handoffs: int, public_url: str) -> VoiceAnswer:
    """No room here: hand the call to the proxy's /voice again, or reject it busy.

    `handoffs` is None when the counter was malformed: answered busy, never looped.
    `max_handoffs` 0 (or no instance routing) means busy at once.
    """
    if handoffs is None:
        return _busy(f"{why}; handoff counter malformed")
    if handoffs >= max_handoffs:
        tried = f"; tried {handoffs + 1} instances" if max_handoffs else ""
        return _busy(why + tried)
    url = voice_url(public_url, handoffs + 1)
    vr = VoiceResponse()
    vr.redirect(url, method="POST")
    return VoiceAnswer(Outcome.HANDOFF, str(vr), f"{why}; handing off ({handoffs + 1} of "
                                                 f"{max_handoffs}) to {url}")


def voice_url(public_url: str, handoffs: int) -> str:
    """Return the proxy's webhook URL with the handoff counter.

    Absolute under PUBLIC_URL (Twilio signs exactly the URL it requests); without it,
    relative, which Twilio resolves against the webhook URL it just requested.
    """
    return f"{public_url}{VOICE_PATH}?{HANDOFF_PARAM}={handoffs}"


def _busy(detail: str) -> VoiceAnswer:
    vr = VoiceResponse()
    vr.reject(reason="busy")
    return VoiceAnswer(Outcome.BUSY, str(vr), detail)
