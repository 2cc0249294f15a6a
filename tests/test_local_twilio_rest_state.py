"""The Twilio REST stand-in's account: validation, the call timeline, TwiML, recordings.

Pure: the test moves `now` and reads the replies and effects."""

from __future__ import annotations

from itertools import count

import pytest

from mediasrv.localservices.twilio_rest_records import (
    Callee,
    Effect,
    RunTwiml,
    StopStream,
    Webhook,
)
from mediasrv.localservices.twilio_rest_state import TwilioAccount
from mediasrv.localservices.twilio_rest_wire import Params, TwilioError

AC = "AC" + "0" * 32
CB = "https://app.example.com/status"
STREAM = '<Response><Connect><Stream url="wss://app.example.com/media"/></Connect></Response>'
DIAL = "<Response><Dial><Number>+15551230001</Number></Dial></Response>"
NUMBERS = {"+15550000001": Callee("human", ring_s=2.0, amd_s=3.0),
           "+15550000002": Callee("machine_end_beep", ring_s=2.0, amd_s=3.0),
           "+15550000003": Callee(outcome="busy", ring_s=1.0)}


def account() -> TwilioAccount:
    numbers = count(1)
    return TwilioAccount(AC, NUMBERS, new_sid=lambda p: f"{p}{next(numbers):032d}")


def form(**fields: str | list[str]) -> Params:
    return Params({k: v if isinstance(v, list) else [v] for k, v in fields.items()})


def create(acc: TwilioAccount, now: float = 0.0, **fields: str | list[str]) -> str:
    base: dict[str, str | list[str]] = {"To": "+15550000001", "From": "+15559990000",
                                        "Url": "https://app.example.com/voice"}
    reply, _ = acc.create_call(form(**{**base, **fields}), now)
    assert reply.status == 201
    return str(reply.body["sid"])


def run_until(acc: TwilioAccount, end: float) -> list[Effect]:
    effects: list[Effect] = []
    while (deadline := acc.next_deadline()) is not None and deadline <= end:
        effects += acc.tick(deadline)
    return effects


def hooks(effects: list[Effect] | tuple[Effect, ...], kind: str) -> list[dict[str, str]]:
    return [dict(e.params) for e in effects if isinstance(e, Webhook) and e.kind == kind]


def in_progress_inbound(acc: TwilioAccount, sid: str = "CA" + "f" * 32) -> str:
    acc.inbound_call(sid, "+15557770000", "+15559990000", now=0.0)
    return sid


# -- create: validation -------------------------------------------------------------------


@pytest.mark.parametrize("fields, code", [
    ({"To": ""}, 21201), ({"To": "555-1234"}, 21211), ({"From": ""}, 21213),
    ({"Url": ""}, 21205), ({"Twiml": STREAM}, 32019), ({"Url": "ftp://x"}, 21205),
    ({"Colour": "blue"}, 20001), ({"To": ["+15550000001", "+15550000002"]}, 20001),
    ({"MachineDetection": "Sometimes"}, 20001), ({"AsyncAmd": "true"}, 20001),
    ({"StatusCallbackEvent": "exploded"}, 20001)])
def test_a_bad_create_is_refused_with_a_twilio_code(fields: dict[str, str],
                                                    code: int) -> None:
    with pytest.raises(TwilioError) as err:
        create(account(), **fields)
    assert (err.value.status, err.value.code) == (400, code)


def test_a_created_call_is_queued_and_shaped_like_twilios() -> None:
    reply, _ = account().create_call(form(To="+15550000001", From="+15559990000",
                                          Url="https://app.example.com/voice"), 0.0)
    assert reply.body["status"] == "queued" and reply.body["direction"] == "outbound-api"
    assert reply.body["uri"] == f"/2010-04-01/Accounts/{AC}/Calls/{reply.body['sid']}.json"
    assert reply.body["sid"].startswith("CA")


# -- the outbound timeline ----------------------------------------------------------------


def test_an_answered_call_fetches_its_url_with_the_call_fields() -> None:
    acc = account()
    sid = create(acc, StatusCallback=CB, StatusCallbackEvent=["initiated", "ringing",
                                                              "answered", "completed"])
    effects = run_until(acc, 1.9)
    assert [h["CallStatus"] for h in hooks(effects, "status")] == ["ringing"]
    effects = run_until(acc, 2.0)
    assert [h["CallStatus"] for h in hooks(effects, "status")] == ["in-progress"]
    (voice,) = hooks(effects, "voice")
    assert (voice["CallSid"], voice["Direction"], voice["To"]) == \
        (sid, "outbound-api", "+15550000001")


def test_only_the_status_callback_events_asked_for_are_sent() -> None:
    acc = account()
    _, first = acc.create_call(form(To="+15550000003", From="+15559990000",
                                    Url="https://app.example.com/voice",
                                    StatusCallback=CB), 0.0)
    effects = list(first) + run_until(acc, 10.0)
    assert [h["CallStatus"] for h in hooks(effects, "status")] == ["busy"]


def test_async_amd_posts_the_numbers_answer_to_the_amd_callback() -> None:
    acc = account()
    sid = create(acc, To="+15550000002", MachineDetection="DetectMessageEnd",
                 AsyncAmd="true", AsyncAmdStatusCallback="https://app.example.com/amd")
    effects = run_until(acc, 2.0)
    assert hooks(effects, "voice") and not hooks(effects, "amd")  # TwiML runs at once
    (amd,) = hooks(run_until(acc, 5.0), "amd")
    assert amd == {"AccountSid": AC, "CallSid": sid, "AnsweredBy": "machine_end_beep",
                   "MachineDetectionDuration": "3000"}


def test_synchronous_amd_holds_the_fetch_and_sends_answered_by_with_it() -> None:
    acc = account()
    create(acc, MachineDetection="Enable")
    assert not hooks(run_until(acc, 4.9), "voice")
    (voice,) = hooks(run_until(acc, 5.0), "voice")
    assert voice["AnsweredBy"] == "human"


def test_a_call_canceled_while_ringing_is_never_answered() -> None:
    acc = account()
    sid = create(acc)
    run_until(acc, 0.5)
    reply, _ = acc.update_call(sid, form(Status="canceled"), 0.5)
    assert reply.body["status"] == "canceled"
    assert run_until(acc, 10.0) == []


def test_inline_twiml_with_a_stream_runs_and_marks_the_stream_live() -> None:
    acc = account()
    sid = create(acc, Url="", Twiml=STREAM)
    effects = run_until(acc, 2.0)
    assert RunTwiml(sid, STREAM) in effects
    assert acc.calls[sid].stream_live and acc.calls[sid].status == "in-progress"


# -- updating a live call ------------------------------------------------------------------


def test_a_dial_update_stops_the_stream_first_and_bridges_the_call() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    reply, effects = acc.update_call(sid, form(Twiml=DIAL), 5.0)
    assert reply.status == 200
    assert effects == (StopStream(sid, "the call's TwiML was updated"), RunTwiml(sid, DIAL))
    call = acc.calls[sid]
    assert (call.status, call.dialed, call.stream_live) == ("in-progress",
                                                            ["+15551230001"], False)


def test_a_url_update_stops_the_stream_and_fetches_the_new_twiml() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    _, effects = acc.update_call(sid, form(Url="https://app.example.com/vm"), 5.0)
    assert isinstance(effects[0], StopStream)
    assert isinstance(effects[1], Webhook) and effects[1].url == "https://app.example.com/vm"


def test_completing_a_call_stops_its_stream_and_reports_completed() -> None:
    acc = account()
    sid = create(acc, StatusCallback=CB, Url="", Twiml=STREAM)
    run_until(acc, 2.0)
    reply, effects = acc.update_call(sid, form(Status="completed"), 12.0)
    assert reply.body["status"] == "completed" and reply.body["duration"] == "10"
    assert isinstance(effects[0], StopStream)
    (status,) = hooks(effects, "status")
    assert (status["CallStatus"], status["CallDuration"]) == ("completed", "10")


def test_canceled_does_not_affect_an_in_progress_call() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    reply, effects = acc.update_call(sid, form(Status="canceled"), 1.0)
    assert reply.body["status"] == "in-progress" and effects == ()


@pytest.mark.parametrize("fields, code", [
    ({"Twiml": DIAL, "Url": "https://x.example.com/"}, 32019),
    ({"Status": "completed", "Twiml": DIAL}, 20001), ({}, 20001),
    ({"Twiml": "<Response><Dial>"}, 12100), ({"Twiml": "<Say>hi</Say>"}, 12100),
    ({"Twiml": "<Response>" + "<Pause/>" * 500 + "</Response>"}, 32018)])
def test_a_bad_update_is_refused(fields: dict[str, str], code: int) -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    with pytest.raises(TwilioError) as err:
        acc.update_call(sid, form(**fields), 1.0)
    assert err.value.code == code


def test_updating_an_unknown_call_is_404() -> None:
    with pytest.raises(TwilioError) as err:
        account().update_call("CA" + "9" * 32, form(Status="completed"), 0.0)
    assert (err.value.status, err.value.code) == (404, 20404)


def test_updating_a_completed_call_is_21220() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    acc.caller_hung_up(sid, 3.0)
    with pytest.raises(TwilioError) as err:
        acc.update_call(sid, form(Twiml=DIAL), 4.0)
    assert (err.value.status, err.value.code) == (400, 21220)


def test_when_the_server_closes_the_stream_the_verbs_after_connect_run() -> None:
    acc = account()
    doc = ('<Response><Connect><Stream url="wss://a.example.com/m"/></Connect>'
           "<Say>Goodbye</Say></Response>")
    sid = create(acc, Url="", Twiml=doc, StatusCallback=CB)
    run_until(acc, 2.0)
    effects = acc.stream_ended(sid, 6.0)
    assert acc.calls[sid].said == ["Goodbye"] and acc.calls[sid].status == "completed"
    assert [h["CallStatus"] for h in hooks(effects, "status")] == ["completed"]


def test_a_voice_url_answering_garbage_ends_the_call_with_an_application_error() -> None:
    acc = account()
    sid = create(acc)
    run_until(acc, 2.0)
    acc.voice_answered(sid, 200, "not xml", 2.1)
    assert acc.calls[sid].status == "completed"
    assert "application error" in acc.calls[sid].said[0]


# -- recordings ---------------------------------------------------------------------------


def test_a_dual_recording_starts_reports_in_progress_and_completes_with_the_call() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    reply, effects = acc.create_recording(sid, form(
        RecordingChannels="dual", RecordingStatusCallback="https://app.example.com/rec",
        RecordingStatusCallbackEvent=["in-progress", "completed"]), 1.0)
    assert reply.status == 201 and reply.body["channels"] == 2
    assert reply.body["source"] == "StartCallRecordingAPI"
    assert [h["RecordingStatus"] for h in hooks(effects, "recording")] == ["in-progress"]
    done = acc.caller_hung_up(sid, 31.0)
    (rec,) = hooks(done, "recording")
    assert (rec["RecordingStatus"], rec["RecordingDuration"]) == ("completed", "30")


def test_stopping_a_recording_completes_it_and_it_cannot_change_again() -> None:
    acc = account()
    sid = in_progress_inbound(acc)
    reply, _ = acc.create_recording(sid, form(), 1.0)
    rec_sid = str(reply.body["sid"])
    reply, _ = acc.update_recording(sid, rec_sid, form(Status="stopped"), 2.0)
    assert reply.body["status"] == "completed"
    with pytest.raises(TwilioError):
        acc.update_recording(sid, rec_sid, form(Status="paused"), 3.0)


def test_a_recording_of_a_call_not_in_progress_is_refused() -> None:
    acc = account()
    sid = create(acc)
    with pytest.raises(TwilioError) as err:
        acc.create_recording(sid, form(), 0.1)
    assert err.value.code == 21220


def test_record_true_on_create_starts_a_recording_when_answered() -> None:
    acc = account()
    sid = create(acc, Record="true", RecordingChannels="dual")
    run_until(acc, 2.0)
    (rec_sid,) = acc.calls[sid].recordings
    assert acc.recordings[rec_sid].source == "OutboundAPI"
    assert acc.recordings[rec_sid].channels == 2
