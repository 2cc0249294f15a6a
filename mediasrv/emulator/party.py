"""The emulator as the Twilio REST stand-in's media party: the calls' streams, by call sid.

Layer: emulator.

The REST stand-in (mediasrv.localservices.twilio_rest) plays Twilio's call control:
it decides what happens to a call and asks whoever holds the calls' media streams --
its `MediaParty`, this class -- to act. Structurally typed: the emulator does not
import the stand-in.

- `stop_stream(sid, reason)`: Twilio ends the call's `<Connect><Stream>` (its TwiML
  was replaced by a transfer or a voicemail, or the call ended): the emulated call
  sends `stop` and closes (`EmulatedCall.twilio_stop`);
- `run_twiml(sid, twiml)`: the call now runs a TwiML document. A `<Connect><Stream>`
  (an outbound call answered, its TwiML fetched from the server's /voice) opens a
  stream to the server with the callee's script; a `<Dial>` or `<Say>` is recorded;
- `inbound(script)` places a call coming in to the server, registered with the
  stand-in first, so its transfers and hang-ups reach the right stream;
- a call that ends by itself is reported back: the caller hung up (`caller_hung_up`),
  or the server closed the stream (`stream_ended`: Twilio goes on after </Connect>).

`events` records what the stand-in asked, for tests to wait on (`wait_for`).
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.script import CallerScript

log = logging.getLogger(__name__)


class TwilioSide(Protocol):
    """What the stand-in is told about the calls (LocalTwilioRest has these)."""

    def inbound_call(self, call_sid: str, from_: str, to: str) -> None: ...

    def caller_hung_up(self, call_sid: str) -> None: ...

    def stream_ended(self, call_sid: str) -> None: ...


class EmulatorParty:
    """See the module docstring."""

    def __init__(self, callee: Callable[[str], CallerScript]) -> None:
        self._callee = callee  # the script of the far end of an outbound call, by sid
        self._base_url = ""
        self._options = CallOptions()
        self._twilio: TwilioSide | None = None
        self._changed = threading.Condition()  # guards calls and events; notified on each
        self.calls: dict[str, EmulatedCall] = {}
        self.events: list[tuple[str, str, str]] = []  # (call sid, what, detail)

    def attach(self, twilio: TwilioSide, base_url: str, options: CallOptions) -> None:
        """Say where calls' ends go (the stand-in, made after this party), which server
        the streams reach and how (signing, network, timeouts of every stream)."""
        self._twilio, self._base_url, self._options = twilio, base_url, options

    def inbound(self, script: CallerScript, **options: Any) -> EmulatedCall:
        """Return a call to the server (not started), known to the stand-in; `options`
        override CallOptions fields for this call (e.g. stream_delay_s)."""
        call = EmulatedCall(self._base_url, script,
                            replace(self._options, on_end=self._ended, **options))
        if self._twilio is not None:
            o = self._options
            self._twilio.inbound_call(call.call_sid, o.from_number, o.to_number)
        self._add(call, "inbound", "")
        return call

    # --- the MediaParty of the stand-in -------------------------------------------------

    def run_twiml(self, call_sid: str, twiml: str) -> None:
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError:
            self._note(call_sid, "twiml", "not xml")
            return
        if root.find("./Connect/Stream") is not None:
            options = replace(self._options, call_sid=call_sid, twiml=twiml, post_voice=False,
                              on_end=self._ended)
            call = EmulatedCall(self._base_url, self._callee(call_sid), options)
            self._add(call, "stream", "opening")
            if not call.start():
                self._note(call_sid, "stream", f"failed: {call.result().error}")
            return
        for verb in root:
            detail = (verb.findtext("Number") or verb.text or "").strip()
            self._note(call_sid, verb.tag.lower(), detail)

    def stop_stream(self, call_sid: str, reason: str) -> None:
        with self._changed:
            call = self.calls.get(call_sid)
        self._note(call_sid, "stop", reason)
        if call is not None:
            call.twilio_stop(reason)

    # --- waiting -------------------------------------------------------------------------

    def wait_for(self, call_sid: str, what: str, timeout: float) -> str | None:
        """Wait for an event of `what` for the call; return its detail (None: timeout)."""
        def found() -> str | None:
            return next((d for s, w, d in self.events if s == call_sid and w == what), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout)
            return found()

    def call(self, call_sid: str, timeout: float) -> EmulatedCall | None:
        """Wait until a stream of the call exists; return it."""
        with self._changed:
            self._changed.wait_for(lambda: call_sid in self.calls, timeout)
            return self.calls.get(call_sid)

    # --- internals -----------------------------------------------------------------------

    def _add(self, call: EmulatedCall, what: str, detail: str) -> None:
        with self._changed:
            self.calls[call.call_sid] = call
        self._note(call.call_sid, what, detail)

    def _note(self, call_sid: str, what: str, detail: str) -> None:
        log.info("media party: %s %s %s", call_sid, what, detail)
        with self._changed:
            self.events.append((call_sid, what, detail))
            self._changed.notify_all()

    def _ended(self, call: EmulatedCall) -> None:
        result = call.result()
        self._note(call.call_sid, "ended", str(result.hangup_by))
        if self._twilio is None or not result.connected:
            return
        if result.hangup_by == "caller":
            self._twilio.caller_hung_up(call.call_sid)
        elif result.hangup_by == "server":
            self._twilio.stream_ended(call.call_sid)
