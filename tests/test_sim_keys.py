"""The emulator's keypad and its part for the REST stand-in: `dtmf` at the pressed time,
Twilio's own `stop`, a call run from TwiML. Pure parts with `now` as a local variable."""

from __future__ import annotations

import json

import numpy as np

from mediasrv.emulator import wire
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.party import EmulatorParty
from mediasrv.emulator.phone import Phone
from mediasrv.emulator.script import CallerScript
from mediasrv.web.amd import AmdAction, amd_action


def test_a_key_leaves_at_its_stream_time_and_arrives_after_the_uplink_transit() -> None:
    script = CallerScript.from_samples(np.zeros(8000), keys=[(0.5, "7"), (0.25, "1")])
    p = Phone(script, NetworkTiming(30.0, 40.0), media_t0=0.0)
    out = [(t, o) for t, o in p.run_until(1.1) if o.kind == "dtmf"]
    assert [(round(t, 3), o.name, round(o.made_at, 3)) for t, o in out] == [
        (0.29, "1", 0.25), (0.54, "7", 0.5)]
    assert p.finished()


def test_the_dtmf_message_is_shaped_like_twilios() -> None:
    assert json.loads(wire.dtmf_msg(7, "MZ1", "#")) == {
        "event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "7",
        "dtmf": {"track": "inbound_track", "digit": "#"}}


def test_twiml_without_a_stream_is_recorded_not_streamed() -> None:
    party = EmulatorParty(lambda sid: CallerScript())
    party.run_twiml("CA1", '<Response><Dial answerOnBridge="true"><Number>+15551230001'
                           '</Number></Dial></Response>')
    party.run_twiml("CA1", "<Response><Say>Bye</Say><Hangup/></Response>")
    assert party.events == [("CA1", "dial", "+15551230001"), ("CA1", "say", "Bye"),
                            ("CA1", "hangup", "")]
    assert party.calls == {}


def test_a_stop_for_a_call_without_a_stream_is_only_recorded() -> None:
    party = EmulatorParty(lambda sid: CallerScript())
    party.stop_stream("CA9", "the call ended (completed)")
    assert party.events == [("CA9", "stop", "the call ended (completed)")]


def test_amd_keeps_the_agent_for_people_and_unknowns_voicemail_for_machines() -> None:
    assert amd_action("human") is AmdAction.AGENT
    assert amd_action("unknown") is AmdAction.AGENT  # rather than hang up on a person
    assert amd_action("machine_end_beep") is AmdAction.VOICEMAIL
    assert amd_action("machine_start") is AmdAction.VOICEMAIL
    assert amd_action("fax") is AmdAction.HANG_UP
