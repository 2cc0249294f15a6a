"""TWILIO_API_BASE_URL for the twilio library, and the TwiML mediasrv sends. No sockets:
a recording HttpClient stands behind the rebasing one."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from twilio.http import HttpClient
from twilio.http.response import Response

from mediasrv.callctl.rest import (
    RebasedHttpClient,
    check_base_url,
    dial_twiml,
    rest_client,
    say_and_hang_up_twiml,
)
from mediasrv.callctl.tools_file import TransferTarget
from mediasrv.errors import ConfigError

SID = "CA" + "1" * 32


class Recorder(HttpClient):
    def __init__(self) -> None:
        super().__init__(logger=logging.getLogger("test"), is_async=False)
        self.urls: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self.urls.append(url)
        return Response(200, json.dumps({"sid": SID, "status": "completed"}))


def test_the_api_origin_is_replaced_and_path_and_query_are_kept() -> None:
    client = RebasedHttpClient("http://127.0.0.1:8123/", Recorder())
    assert client.rebase("https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json?a=1") == \
        "http://127.0.0.1:8123/2010-04-01/Accounts/AC1/Calls.json?a=1"


def test_regional_api_hosts_are_replaced_too() -> None:
    client = RebasedHttpClient("http://127.0.0.1:8123", Recorder())
    assert client.rebase("https://api.dublin.ie1.twilio.com/2010-04-01/x.json") == \
        "http://127.0.0.1:8123/2010-04-01/x.json"


def test_other_hosts_are_left_alone() -> None:
    client = RebasedHttpClient("http://127.0.0.1:8123", Recorder())
    assert client.rebase("https://lookups.twilio.com/v2/x") == "https://lookups.twilio.com/v2/x"


def test_the_client_sends_a_hang_up_to_the_base_url() -> None:
    recorder = Recorder()
    client = rest_client("AC" + "0" * 32, "token", base_url="http://127.0.0.1:9",
                         http_client=recorder)
    client.calls(SID).update(status="completed")
    assert recorder.urls == [f"http://127.0.0.1:9/2010-04-01/Accounts/AC{'0' * 32}"
                             f"/Calls/{SID}.json"]


def test_without_a_base_url_the_client_talks_to_twilio() -> None:
    recorder = Recorder()
    rest_client("AC" + "0" * 32, "token", http_client=recorder).calls(SID).update(
        status="completed")
    assert recorder.urls[0].startswith("https://api.twilio.com/2010-04-01/")


@pytest.mark.parametrize("url", ["127.0.0.1:8123", "ws://127.0.0.1", "http://x?y=1"])
def test_an_unusable_base_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigError, match="TWILIO_API_BASE_URL"):
        check_base_url(url)


def test_the_transfer_twiml_dials_the_number_and_nothing_after() -> None:
    twiml = dial_twiml(TransferTarget("+15551230001", "sales"), caller_id="+15559990000")
    assert twiml == ('<?xml version="1.0" encoding="UTF-8"?><Response><Dial '
                     'answerOnBridge="true" callerId="+15559990000" timeout="20">'
                     "<Number>+15551230001</Number></Dial></Response>")


def test_the_voicemail_twiml_says_the_message_then_hangs_up() -> None:
    assert say_and_hang_up_twiml("Call us back & soon") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Call us back &amp; soon'
        "</Say><Hangup /></Response>")
