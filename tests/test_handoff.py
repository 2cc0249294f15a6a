"""What /voice answers (pure): the stream here, a bounded handoff, or busy."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mediasrv.web.handoff import Outcome, handoffs_so_far, refuse, stream

PUBLIC = "https://bridge.example.com"


def test_the_stream_points_at_the_given_url_with_its_parameters() -> None:
    answer = stream("wss://bridge.example.com/i/a/media", {"token": "t"})
    root = ET.fromstring(answer.twiml)
    node = root.find("./Connect/Stream")
    assert answer.outcome is Outcome.STREAM and node is not None
    assert node.get("url") == "wss://bridge.example.com/i/a/media"
    assert [(p.get("name"), p.get("value")) for p in node] == [("token", "t")]
    assert len(root) == 1  # nothing after </Connect>: closing the stream hangs up


def test_a_full_instance_redirects_to_the_proxy_with_the_counter_raised() -> None:
    answer = refuse("at capacity", handoffs=1, max_handoffs=2, public_url=PUBLIC)
    node = ET.fromstring(answer.twiml).find("./Redirect")
    assert answer.outcome is Outcome.HANDOFF and node is not None
    assert node.text == f"{PUBLIC}/voice?handoff=2" and node.get("method") == "POST"


def test_without_public_url_the_redirect_is_relative_to_the_webhook() -> None:
    answer = refuse("at capacity", handoffs=0, max_handoffs=2, public_url="")
    node = ET.fromstring(answer.twiml).find("./Redirect")
    assert node is not None and node.text == "/voice?handoff=1"


def test_busy_once_the_handoffs_are_spent() -> None:
    answer = refuse("at capacity", handoffs=2, max_handoffs=2, public_url=PUBLIC)
    node = ET.fromstring(answer.twiml).find("./Reject")
    assert answer.outcome is Outcome.BUSY and node is not None and node.get("reason") == "busy"
    assert answer.detail == "at capacity; tried 3 instances"


def test_no_handoffs_allowed_means_busy_at_once() -> None:
    answer = refuse("draining: no new calls", handoffs=0, max_handoffs=0, public_url=PUBLIC)
    assert answer.outcome is Outcome.BUSY and answer.detail == "draining: no new calls"


def test_a_malformed_counter_is_answered_busy_never_looped() -> None:
    for raw in ("-1", "x", "1e3", "99999", ""):
        assert handoffs_so_far(raw) is None, raw
    answer = refuse("at capacity", handoffs=None, max_handoffs=5, public_url=PUBLIC)
    assert answer.outcome is Outcome.BUSY and "malformed" in answer.detail


def test_the_first_webhook_has_no_counter() -> None:
    assert handoffs_so_far(None) == 0
    assert handoffs_so_far("3") == 3
