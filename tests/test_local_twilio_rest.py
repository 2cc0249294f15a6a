"""The Twilio REST stand-in over real sockets, driven by the twilio 9.13.0 library itself.

This is the proof that TWILIO_API_BASE_URL works: `rest_client(..., base_url=)` (a
`RebasedHttpClient` inside twilio's own `Client`) reaches the stand-in for calls create,
update and recordings, with the library's auth, form encoding and error parsing."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from mediasrv.callctl.rest import dial_twiml, rest_client
from mediasrv.callctl.tools_file import TransferTarget
from mediasrv.localservices.httpserve import HttpRequest, HttpResponse, LoopbackHttpServer
from mediasrv.localservices.twilio_rest import (
    LocalTwilioRest,
    RestFault,
    TwilioRestOptions,
)
from mediasrv.localservices.twilio_rest_records import Callee

WAIT_S = 3.0
INBOUND = "CA" + "e" * 32
HUMAN, MACHINE = "+15550000001", "+15550000002"
STREAM = '<Response><Connect><Stream url="wss://app.example.com/media"/></Connect></Response>'


class FakeMedia:
    """The media party: records what the stand-in asks of the calls' streams."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, str, str]] = queue.Queue()

    def run_twiml(self, call_sid: str, twiml: str) -> None:
        self.events.put(("run", call_sid, twiml))

    def stop_stream(self, call_sid: str, reason: str) -> None:
        self.events.put(("stop", call_sid, reason))


class App:
    """Our side of Twilio's webhooks: records every signed request, answers TwiML."""

    def __init__(self) -> None:
        self.requests: queue.Queue[HttpRequest] = queue.Queue()
        self.twiml = STREAM
        self.server = LoopbackHttpServer("test-app", self._handle).start()

    def _handle(self, request: HttpRequest) -> HttpResponse:
        self.requests.put(request)
        if request.path == "/voice":
            return HttpResponse(200, self.twiml.encode(), "text/xml")
        return HttpResponse(204)

    def url(self, path: str) -> str:
        return self.server.url + path

    def next(self, path: str) -> tuple[HttpRequest, dict[str, str]]:
        while True:
            request = self.requests.get(timeout=WAIT_S)
            if request.path == path:
                form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
                return request, form


@pytest.fixture
def world() -> Iterator[tuple[LocalTwilioRest, Client, App, FakeMedia]]:
    media, app = FakeMedia(), App()
    numbers = {HUMAN: Callee("human", ring_s=0.01, amd_s=0.01),
               MACHINE: Callee("machine_end_beep", ring_s=0.01, amd_s=0.01)}
    rest = LocalTwilioRest(TwilioRestOptions(numbers=numbers), media=media).start()
    client = rest_client(rest.account_sid, rest.auth_token, base_url=rest.base_url,
                         timeout_s=WAIT_S)
    yield rest, client, app, media
    rest.stop()
    app.server.stop()


def signed(rest: LocalTwilioRest, app: App, path: str, request: HttpRequest,
           form: dict[str, str]) -> bool:
    return bool(RequestValidator(rest.auth_token).validate(
        app.url(path), form, request.headers.get("x-twilio-signature", "")))


def test_the_librarys_hang_up_reaches_the_stand_in(world: Any) -> None:
    rest, client, _, media = world
    rest.inbound_call(INBOUND, "+15557770000", "+15559990000")
    call = client.calls(INBOUND).update(status="completed")
    assert call.status == "completed"
    (request,) = rest.stats()["records"]["requests"]
    assert request == {"operation": "calls.update", "sid": INBOUND,
                       "form": {"Status": ["completed"]}}
    assert media.events.get(timeout=WAIT_S)[0] == "stop"  # the call's stream ends too


def test_the_librarys_create_places_a_call_that_fetches_its_url_signed(world: Any) -> None:
    rest, client, app, media = world
    call = client.calls.create(to=HUMAN, from_="+15559990000", url=app.url("/voice"))
    assert call.sid.startswith("CA") and call.status == "queued"
    request, form = app.next("/voice")
    assert form["CallSid"] == call.sid and form["CallStatus"] == "in-progress"
    assert signed(rest, app, "/voice", request, form)
    assert media.events.get(timeout=WAIT_S) == ("run", call.sid, STREAM)
    assert rest.call(call.sid)["stream_live"]


def test_a_wrong_auth_token_is_401_authenticate(world: Any) -> None:
    rest, _, _, _ = world
    bad = rest_client(rest.account_sid, "wrong", base_url=rest.base_url, timeout_s=WAIT_S)
    with pytest.raises(TwilioRestException) as err:
        bad.calls(INBOUND).update(status="completed")
    assert (err.value.status, err.value.code) == (401, 20003)


def test_an_unknown_call_is_404_with_twilios_code(world: Any) -> None:
    _, client, _, _ = world
    with pytest.raises(TwilioRestException) as err:
        client.calls("CA" + "1" * 32).update(status="completed")
    assert (err.value.status, err.value.code) == (404, 20404)


def test_a_dial_transfer_stops_the_stream_and_bridges_the_call(world: Any) -> None:
    rest, client, _, media = world
    rest.inbound_call(INBOUND, "+15557770000", "+15559990000")
    twiml = dial_twiml(TransferTarget("+15551230001", "sales"))
    client.calls(INBOUND).update(twiml=twiml)
    assert media.events.get(timeout=WAIT_S) == ("stop", INBOUND,
                                                "the call's TwiML was updated")
    assert media.events.get(timeout=WAIT_S) == ("run", INBOUND, twiml)
    state = rest.call(INBOUND)
    assert (state["status"], state["dialed"]) == ("in-progress", ["+15551230001"])


def test_status_callbacks_are_posted_signed_with_the_events_asked_for(world: Any) -> None:
    rest, client, app, _ = world
    call = client.calls.create(to=HUMAN, from_="+15559990000", url=app.url("/voice"),
                               status_callback=app.url("/status"),
                               status_callback_event=["ringing", "answered", "completed"])
    seen = [app.next("/status") for _ in range(2)]
    assert [form["CallStatus"] for _, form in seen] == ["ringing", "in-progress"]
    assert all(signed(rest, app, "/status", r, f) for r, f in seen)
    client.calls(call.sid).update(status="completed")
    _, form = app.next("/status")
    assert form["CallStatus"] == "completed" and "CallDuration" in form


def test_async_amd_reports_the_numbers_machine_to_the_amd_callback(world: Any) -> None:
    _, client, app, _ = world
    call = client.calls.create(to=MACHINE, from_="+15559990000", url=app.url("/voice"),
                               machine_detection="DetectMessageEnd", async_amd="true",
                               async_amd_status_callback=app.url("/amd"))
    _, form = app.next("/amd")
    assert (form["CallSid"], form["AnsweredBy"]) == (call.sid, "machine_end_beep")


def test_a_dual_recording_through_the_library_reports_in_progress(world: Any) -> None:
    rest, client, app, _ = world
    rest.inbound_call(INBOUND, "+15557770000", "+15559990000")
    recording = client.calls(INBOUND).recordings.create(
        recording_channels="dual", recording_status_callback=app.url("/rec"),
        recording_status_callback_event=["in-progress", "completed"])
    assert recording.sid.startswith("RE") and recording.channels == 2
    (request,) = [r for r in rest.stats()["records"]["requests"]
                  if r["operation"] == "recordings.create"]
    assert request["form"]["RecordingStatusCallbackEvent"] == ["in-progress", "completed"]
    _, form = app.next("/rec")
    assert form["RecordingStatus"] == "in-progress"
    updated = client.calls(INBOUND).recordings(recording.sid).update(status="stopped")
    assert updated.status == "completed"


def test_an_injected_503_reaches_the_library_as_a_rest_exception(world: Any) -> None:
    rest, client, _, _ = world
    rest.inbound_call(INBOUND, "+15557770000", "+15559990000")
    rest.set_fault(RestFault("status", 503, operations=frozenset({"calls.update"}),
                             count=1))
    with pytest.raises(TwilioRestException) as err:
        client.calls(INBOUND).update(status="completed")
    assert err.value.status == 503
    assert client.calls(INBOUND).update(status="completed").status == "completed"


def test_a_dropped_connection_fails_the_librarys_request(world: Any) -> None:
    rest, client, _, _ = world
    rest.set_fault(RestFault("drop"))
    with pytest.raises(requests.exceptions.ConnectionError):
        client.calls(INBOUND).update(status="completed")


def test_a_slow_answer_still_arrives(world: Any) -> None:
    rest, client, _, _ = world
    rest.inbound_call(INBOUND, "+15557770000", "+15559990000")
    rest.set_fault(RestFault("slow", delay_s=0.05))
    assert client.calls(INBOUND).update(status="completed").status == "completed"
    assert rest.stats()["counts"]["fault_slow"] == 1


def test_a_stalled_request_is_released_when_the_stand_in_stops(world: Any) -> None:
    rest, client, _, _ = world
    rest.set_fault(RestFault("stall"))
    failed = threading.Event()

    def hang_up() -> None:
        try:
            client.calls(INBOUND).update(status="completed")
        except (requests.exceptions.RequestException, TwilioRestException):
            failed.set()

    thread = threading.Thread(target=hang_up, name="test-stalled-client")
    thread.start()
    assert rest.wait_for("fault_stall")
    rest.stop()
    thread.join(WAIT_S)
    assert failed.is_set()
