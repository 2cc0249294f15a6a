"""The server's Twilio REST actions: hang up, transfer, record, leave a voicemail (/amd).

Layer: web.

One twilio `Client` per process, pointed at TWILIO_API_BASE_URL when set
(callctl/rest.py). It is made only when the REST API may be used: an account sid, and
signed requests, so that every call sid acted on came from Twilio (Settings.rest_enabled).
Each action is one synchronous request bounded by the client's timeout; callers run it
off the call's threads (call/control.py) or on the webhook's own HTTP thread (/amd).

Imported only when the REST API is configured (app.py): the twilio client and requests
cost ~5 MB of the process's memory (docs/performance.md).
"""

from __future__ import annotations

import logging
from typing import Any

from mediasrv.callctl.rest import (
    REST_TIMEOUT_S,
    dial_twiml,
    rest_client,
    say_and_hang_up_twiml,
)
from mediasrv.callctl.tools_file import TransferTarget
from mediasrv.web.metrics import Metrics
from mediasrv.web.settings import Settings

log = logging.getLogger(__name__)


class TwilioRest:
    """See the module docstring."""

    def __init__(self, settings: Settings, metrics: Metrics, http_client: Any = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._client = rest_client(settings.twilio_account_sid, settings.twilio_auth_token,
                                   settings.twilio_api_base_url, REST_TIMEOUT_S, http_client)

    def hang_up(self, call_sid: str) -> None:
        """End the call (`status=completed`)."""
        try:
            self._client.calls(call_sid).update(status="completed")
        except Exception:
            self._metrics.rest_hangups.labels(outcome="failed").inc()
            raise
        self._metrics.rest_hangups.labels(outcome="ok").inc()

    def transfer(self, call_sid: str, target: TransferTarget) -> None:
        """Replace the call's TwiML with a <Dial> to `target` (its stream then stops)."""
        twiml = dial_twiml(target, self._settings.twilio_caller_id)
        self._client.calls(call_sid).update(twiml=twiml)

    def start_recording(self, call_sid: str) -> None:
        """Start Twilio's own dual-channel recording of the call."""
        self._client.calls(call_sid).recordings.create(recording_channels="dual")

    def voicemail(self, call_sid: str) -> None:
        """Replace the call's TwiML with VOICEMAIL_MESSAGE then a hang-up."""
        twiml = say_and_hang_up_twiml(self._settings.voicemail_message)
        self._client.calls(call_sid).update(twiml=twiml)


def place_call(settings: Settings, to: str, from_: str, *, amd: bool,
               http_client: Any = None) -> str:
    """Place an outbound call that runs our /voice (with AMD: answering-machine detection
    to the end of a machine's greeting, its result to /amd); return the call sid."""
    client = rest_client(settings.twilio_account_sid, settings.twilio_auth_token,
                         settings.twilio_api_base_url, REST_TIMEOUT_S, http_client)
    public = settings.public_url
    options: dict[str, Any] = {"url": f"{public}/voice", "method": "POST"}
    if amd:
        options.update(machine_detection="DetectMessageEnd", async_amd="true",
                       async_amd_status_callback=f"{public}/amd",
                       async_amd_status_callback_method="POST")
    call = client.calls.create(to=to, from_=from_, **options)
    return str(call.sid)
