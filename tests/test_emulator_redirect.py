"""The emulator's side of <Redirect>: which TwiML redirects, and where it posts next."""

from __future__ import annotations

import pytest

from mediasrv.emulator import wire


def test_a_redirect_document_yields_its_url() -> None:
    doc = '<Response><Redirect method="POST">https://x.test/voice?handoff=1</Redirect></Response>'
    assert wire.parse_redirect(doc) == "https://x.test/voice?handoff=1"


def test_a_stream_or_reject_document_is_not_a_redirect() -> None:
    assert wire.parse_redirect('<Response><Connect><Stream url="wss://x/media"/></Connect>'
                               '</Response>') is None
    assert wire.parse_redirect('<Response><Reject reason="busy"/></Response>') is None


def test_a_get_redirect_is_refused_as_not_emulated() -> None:
    with pytest.raises(wire.CallSetupError, match="not emulated"):
        wire.parse_redirect('<Response><Redirect method="GET">/voice</Redirect></Response>')


def test_the_public_webhook_url_maps_onto_the_reachable_server_with_its_query() -> None:
    assert wire.local_http_url("https://bridge.test/voice?handoff=2",
                               "http://127.0.0.1:8080") == "http://127.0.0.1:8080/voice?handoff=2"
