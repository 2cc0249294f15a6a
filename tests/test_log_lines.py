"""Operator-facing log wording: a failed connect names the host, the reason and what to check."""

from __future__ import annotations

import socket

import pytest
import websocket

from mediasrv.backends.realtime.client import connect_failure

URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"


@pytest.mark.parametrize(("exc", "words"), [
    (websocket.WebSocketAddressException(socket.gaierror(-2, "Name or service not known")),
     "api.openai.com: the name does not resolve"),
    (ConnectionRefusedError(111, "Connection refused"), "api.openai.com: connection refused"),
    (websocket.WebSocketTimeoutException("timed out"),
     "api.openai.com: no answer within 3 s (OPENAI_CONNECT_TIMEOUT_S"),
    (websocket.WebSocketBadStatusException("Handshake status %d %s", 401, "Unauthorized"),
     "api.openai.com: HTTP 401 on the upgrade (check OPENAI_API_KEY)"),
    (websocket.WebSocketBadStatusException("Handshake status %d %s", 404, "Not Found"),
     "HTTP 404 on the upgrade (check OPENAI_REALTIME_URL / OPENAI_REALTIME_MODEL)"),
])
def test_connect_failure_names_the_host_the_reason_and_a_hint(
    exc: BaseException, words: str
) -> None:
    text = connect_failure(URL, exc, 3.0)
    assert text.startswith("cannot connect to the backend at api.openai.com")
    assert words in text


def test_connect_failure_names_a_port_when_the_url_has_one() -> None:
    text = connect_failure("ws://127.0.0.1:9/v1/realtime", ConnectionRefusedError(), 3.0)
    assert text.startswith("cannot connect to the backend at 127.0.0.1:9: connection refused")
