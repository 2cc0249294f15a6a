"""Who may connect: Twilio signatures on /voice and on the /media upgrade, the per-call
token, the start-up warning without a token, no secret in any log line, REST hang-up."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import websocket
from fakes import root_logging_restored
from hardening_live import RawTwilio, backend, connector, live_server, settings, wait_for
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.script import CallerScript
from mediasrv.web.app import create_app, stream_token
from mediasrv.web.logs import configure_logging

TOKEN = "twilio-auth-token-0123456789abcdef"
API_KEY = "sk-test-SECRET-api-key-0123456789"
ACCOUNT = "AC" + "a" * 32
PUBLIC = "https://bridge.example.com"
STREAM = "wss://bridge.example.com/media"
SID = "CA" + "5" * 32


def signed(**overrides: Any) -> Any:
    return settings(twilio_auth_token=TOKEN, public_url=PUBLIC, **overrides)


def sign(url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, params))


class FakeTwilioHttp(HttpClient):
    """The REST API's HTTP seam: records requests, answers 200 (no network here)."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, uri: str, params: Any = None, data: Any = None,
                headers: Any = None, auth: Any = None, timeout: Any = None,
                allow_redirects: bool = False) -> TwilioResponse:
        self.requests.append((method, uri, dict(data or {})))
        return TwilioResponse(200, json.dumps({"sid": uri.rsplit("/", 1)[-1][:-5],
                                               "status": "completed"}))


def silence(seconds: float) -> CallerScript:
    return CallerScript(bytes([0xFF]) * int(seconds * 8000))


# --- /voice ------------------------------------------------------------------------------


def test_voice_without_or_with_a_bad_signature_is_forbidden() -> None:
    with backend() as b:
        client = create_app(signed(), connect_realtime=connector(b)).test_client()
        form = {"CallSid": SID, "AccountSid": ACCOUNT}
        assert client.post("/voice", data=form).status_code == 403
        bad = {"X-Twilio-Signature": sign(PUBLIC + "/voice", {**form, "From": "+1"})}
        assert client.post("/voice", data=form, headers=bad).status_code == 403
        https_of_other_host = {"X-Twilio-Signature": sign("https://evil.example/voice", form)}
        assert client.post("/voice", data=form, headers=https_of_other_host).status_code == 403


def test_signed_voice_answers_the_stream_with_the_per_call_token() -> None:
    with backend() as b:
        client = create_app(signed(), connect_realtime=connector(b)).test_client()
        form = {"CallSid": SID, "AccountSid": ACCOUNT}
        resp = client.post("/voice", data=form,
                           headers={"X-Twilio-Signature": sign(PUBLIC + "/voice", form)})
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert f'url="{STREAM}"' in body
    assert f'<Parameter name="token" value="{stream_token(TOKEN, SID)}" />' in body


# --- /media --------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["", "not-a-signature", sign(PUBLIC + "/media", {})])
def test_media_upgrade_without_the_wss_signature_is_refused(signature: str) -> None:
    with backend() as b, live_server(signed(), connector(b)) as live:
        headers = [f"X-Twilio-Signature: {signature}"] if signature else []
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            RawTwilio(live.ws_url, headers=headers)
        assert err.value.status_code == 403
        assert b.stats()["sessions_opened"] == 0


@pytest.mark.parametrize("token", [None, "", "0" * 32, stream_token(TOKEN, "CA-other-call")])
def test_signed_upgrade_with_a_wrong_per_call_token_is_refused(
    token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv")
    with backend() as b, live_server(signed(), connector(b)) as live:
        tw = RawTwilio(live.ws_url, SID, headers=[f"X-Twilio-Signature: {sign(STREAM, {})}"])
        tw.start(None if token is None else {"token": token})
        tw.wait_closed()
        tw.close()
        live.wait_active(0)
        assert b.stats()["sessions_opened"] == 0  # nothing was bridged
    assert "call refused: per-call token missing or wrong" in caplog.text


def test_signed_call_with_its_token_is_bridged() -> None:
    with backend() as b, live_server(signed(), connector(b)) as live:
        opts = CallOptions(auth_token=TOKEN, public_url=PUBLIC, close_grace=1.0)
        result = EmulatedCall(live.base, silence(0.5), opts).run(timeout=10.0)
        assert b.stats()["sessions_opened"] == 1
    assert result.connected and result.error is None
    assert result.summary()["hangup"]["by"] == "caller"


# --- warnings and secrets ---------------------------------------------------------------


def test_a_loud_warning_at_start_up_without_a_token_and_none_with_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv")
    with backend() as b:
        create_app(settings(), connect_realtime=connector(b))
        assert "!!! TWILIO_AUTH_TOKEN and PUBLIC_URL are not both set" in caplog.text
        caplog.clear()
        create_app(signed(), connect_realtime=connector(b))
        assert "NOT checked" not in caplog.text
        caplog.clear()
        create_app(settings(twilio_auth_token=TOKEN), connect_realtime=connector(b))
        assert "NOT checked" in caplog.text  # a token without PUBLIC_URL checks nothing


def test_no_secret_appears_in_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    http = FakeTwilioHttp()
    with backend() as b:
        s = signed(twilio_account_sid=ACCOUNT, openai_api_key=API_KEY,
                   openai_realtime_url=b.url, log_level="DEBUG")
        # No connector given: the app dials OPENAI_REALTIME_URL with the key, as in production.
        with live_server(s, None, twilio_http_client=http) as live:
            client = live.app.test_client()
            client.post("/voice", data={"CallSid": SID}, headers={"X-Twilio-Signature": "x"})
            opts = CallOptions(auth_token=TOKEN, public_url=PUBLIC, close_grace=1.0)
            call = EmulatedCall(live.base, silence(10.0), opts)
            assert call.start()
            live.hang_up_the_call()
            assert call.wait(10.0)
            live.wait_active(0)
    assert http.requests  # the REST hang-up ran (and was logged by twilio's client)
    text = caplog.text
    for secret in (TOKEN, API_KEY, stream_token(TOKEN, call.call_sid)):
        assert secret not in text
    assert "call completed through the Twilio REST API" in text


def test_log_lines_are_scrubbed_of_configured_secrets_whoever_logs_them() -> None:
    buf = io.StringIO()
    with root_logging_restored():
        for fmt in ("text", "json"):
            configure_logging("INFO", fmt, secrets=[TOKEN, API_KEY], stream=buf)
            logging.getLogger("somelibrary").info("headers: Bearer %s token=%s", API_KEY, TOKEN)
    out = buf.getvalue()
    assert TOKEN not in out and API_KEY not in out
    assert out.count("Bearer *** token=***") == 2


# --- REST hang-up --------------------------------------------------------------------------


def test_server_ended_call_is_completed_through_rest_and_a_caller_hang_up_is_not() -> None:
    http = FakeTwilioHttp()
    with backend() as b, live_server(signed(twilio_account_sid=ACCOUNT), connector(b),
                                     twilio_http_client=http) as live:
        opts = CallOptions(auth_token=TOKEN, public_url=PUBLIC, close_grace=1.0)
        by_caller = EmulatedCall(live.base, silence(0.5), opts).run(timeout=10.0)
        assert by_caller.summary()["hangup"]["by"] == "caller"
        live.wait_active(0)
        assert http.requests == []
        call = EmulatedCall(live.base, silence(10.0), opts)
        assert call.start()
        live.hang_up_the_call()
        assert call.wait(10.0)
        wait_for(lambda: len(http.requests) == 1, "one REST request")
        assert live.metrics.rest_hangups.labels(outcome="ok")._value.get() == 1
    method, uri, data = http.requests[0]
    assert method == "POST"
    assert uri == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{call.call_sid}.json"
    assert data == {"Status": "completed"}
    assert call.result().summary()["hangup"]["by"] == "server"
