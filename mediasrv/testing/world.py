"""A whole offline Twilio around the real server: the REST stand-in, the emulator, signing.

Layer: testing.

    with TwilioWorld(backends.url_with(tool_plan=...), transfer_numbers=...) as world:
        call = world.inbound(script)       # a call coming in, known to the stand-in
        call.run(timeout=30)
        world.rest.call(call.call_sid)     # what the stand-in knows: status, dialled numbers
        sid = world.outbound("+15550000001", amd=True)   # placed through the REST API
        world.party.wait_for(sid, "stop", 10)            # what the stand-in asked the media party

The server is the real app with the REST API on (TWILIO_ACCOUNT_SID, the stand-in's
auth token and base URL, PUBLIC_URL its own loopback origin), so every webhook, stream
upgrade and callback is signed and checked as with Twilio. The emulator is the stand-in's
media party (mediasrv.emulator.party): Twilio's `stop` after a TwiML update reaches the
stream, an answered outbound call opens its stream from the TwiML /voice gave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.party import EmulatorParty
from mediasrv.emulator.script import CallerScript
from mediasrv.localservices.twilio_rest import LocalTwilioRest, TwilioRestOptions
from mediasrv.localservices.twilio_rest_records import Callee
from mediasrv.testing.harness import LocalServer
from mediasrv.web.rest import place_call
from mediasrv.web.settings import Settings, load_settings

SERVER_NUMBER = "+15005550001"  # the number the emulated callers dial, and outbound's From


def silent_callee(seconds: float = 30.0) -> Callable[[str], CallerScript]:
    """Return callee scripts of silence (an answering machine that only listens)."""
    return lambda call_sid: CallerScript(bytes([0xFF]) * int(seconds * 8000))


class TwilioWorld:
    """See the module docstring."""

    def __init__(self, backend_url: str, *, numbers: Mapping[str, Callee] | None = None,
                 callee: Callable[[str], CallerScript] | None = None,
                 env: Mapping[str, str] | None = None, **overrides: Any) -> None:
        self.party = EmulatorParty(callee or silent_callee())
        self.rest = LocalTwilioRest(TwilioRestOptions(numbers=dict(numbers or {})),
                                    media=self.party).start()
        try:
            self.server = LocalServer(lambda base: self._settings(base, backend_url, env,
                                                                  overrides)).start()
        except BaseException:
            self.rest.stop()
            raise
        self.options = CallOptions(auth_token=self.rest.auth_token,
                                   public_url=self.server.base_url,
                                   account_sid=self.rest.account_sid,
                                   to_number=SERVER_NUMBER, close_grace=1.0)
        self.party.attach(self.rest, self.server.base_url, self.options)

    def _settings(self, base_url: str, backend_url: str, env: Mapping[str, str] | None,
                  overrides: Mapping[str, Any]) -> Settings:
        return load_settings(dict(env or {}), **{
            "openai_realtime_url": backend_url, "public_url": base_url,
            "twilio_account_sid": self.rest.account_sid,
            "twilio_auth_token": self.rest.auth_token,
            "twilio_api_base_url": self.rest.base_url, **overrides})

    @property
    def settings(self) -> Settings:
        return self.server.settings

    def inbound(self, script: CallerScript, **options: Any) -> EmulatedCall:
        """Return a call coming in to the server (start it), registered with the stand-in;
        `options` override CallOptions fields for it."""
        return self.party.inbound(script, **options)

    def outbound(self, to: str, *, amd: bool = False) -> str:
        """Place a call through the REST API (scripts/call.py does the same); return its
        sid."""
        return place_call(self.settings, to, SERVER_NUMBER, amd=amd)

    def stop(self) -> None:
        self.server.stop()
        self.rest.stop()

    def __enter__(self) -> TwilioWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
