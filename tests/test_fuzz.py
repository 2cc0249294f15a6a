"""Property tests (hypothesis): the parsers raise nothing but mediasrv's own errors, and
a call survives any stream of hostile messages on either socket."""

from __future__ import annotations

import json
import logging
import threading
from base64 import b64encode
from typing import Any

import pytest
from fakes import running_call, start_msg
from hardening_live import wait_logged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediasrv.errors import MediasrvError
from mediasrv.protocol.realtime import BETA_ALIASES, parse_realtime
from mediasrv.protocol.twilio import parse_twilio

FUZZ = settings(max_examples=300, deadline=None, database=None)
CALL_FUZZ = settings(max_examples=120, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20) | st.sampled_from(["", "1", "-5", "1e999", "NaN", "/w==", "MZ1"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)
payloads = (st.binary(max_size=480).map(lambda b: b64encode(b).decode()) | json_values)

TWILIO_EVENTS = ["connected", "start", "media", "mark", "dtmf", "stop", "clear", "bogus"]
REALTIME_TYPES = [
    "session.created", "session.updated", "response.created", "response.output_audio.delta",
    "response.output_audio.done", "response.done", "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "conversation.item.truncated", "error",
    "conversation.item.input_audio_transcription.completed",
    "response.output_audio_transcript.done", "rate_limits.updated", *BETA_ALIASES,
]


def twilio_shaped(events: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Messages that look like Twilio's, with any field missing, mistyped or hostile."""
    body = st.fixed_dictionaries({}, optional={
        "payload": payloads, "timestamp": json_values, "name": json_values,
        "digit": json_values, "callSid": json_values, "streamSid": json_values,
        "track": json_values, "customParameters": json_values, "mediaFormat": json_values,
    })
    return st.builds(
        lambda event, sub, extra: {"event": event, event: sub, **extra},
        st.sampled_from(events),
        body | json_values,
        st.dictionaries(st.sampled_from(["streamSid", "sequenceNumber", "start", "media"]),
                        json_values, max_size=2),
    )


def realtime_shaped() -> st.SearchStrategy[dict[str, Any]]:
    ids = st.sampled_from(["resp_1", "resp_2", "item_1", ""]) | json_values
    response = st.fixed_dictionaries({}, optional={
        "id": ids, "status": json_values, "status_details": json_values})
    return st.fixed_dictionaries(
        {"type": st.sampled_from(REALTIME_TYPES)},
        optional={
            "response": response | json_values, "response_id": ids, "item_id": ids,
            "content_index": json_values, "delta": payloads, "audio_end_ms": json_values,
            "audio_start_ms": json_values, "transcript": json_values,
            "error": st.fixed_dictionaries({}, optional={"code": json_values,
                                                         "message": json_values,
                                                         "event_id": json_values}) | json_values,
        },
    )


def raw_messages(shaped: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str | bytes]:
    return (shaped.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=200)
            | st.binary(max_size=200))


@FUZZ
@given(raw_messages(twilio_shaped(TWILIO_EVENTS)))
def test_parse_twilio_raises_only_mediasrv_errors(raw: str | bytes) -> None:
    try:
        parse_twilio(raw, 65536)
    except MediasrvError:
        pass


@FUZZ
@given(raw_messages(realtime_shaped()))
def test_parse_realtime_raises_only_mediasrv_errors(raw: str | bytes) -> None:
    try:
        parse_realtime(raw)
    except MediasrvError:
        pass


def test_call_survives_any_twilio_messages_and_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    # `stop` ends a call by design; everything else must leave it running.
    shaped = twilio_shaped([e for e in TWILIO_EVENTS if e != "stop"])
    with running_call() as h:

        @CALL_FUZZ
        @given(st.lists(raw_messages(shaped) | shaped.map(json.dumps), max_size=5))
        def feed(messages: list[str | bytes]) -> None:
            for raw in messages:
                if isinstance(raw, str) and '"event": "stop"' in raw:
                    continue
                h.twilio.inbound.put(raw)

        feed()
        h.twilio.push(start_msg("CA-second"))  # still dropped, not acted on
        h.twilio.push({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "7"}})
        wait_logged(caplog, "dtmf digit 7", 5.0)
        assert not h.call.closing.is_set()
    assert "handler failed" not in caplog.text


def test_call_survives_any_realtime_events_and_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with running_call() as h:

        @CALL_FUZZ
        @given(st.lists(raw_messages(realtime_shaped()) | realtime_shaped().map(json.dumps),
                        max_size=6))
        def feed(events: list[str | bytes]) -> None:
            for raw in events:
                h.rt.to_client.put(raw)

        feed()
        h.rt.emit({"type": "conversation.item.input_audio_transcription.completed",
                   "item_id": "u9", "transcript": "still here after the fuzz"})
        h.rt.sync()
        wait_logged(caplog, "still here after the fuzz", 5.0)
        assert any(t.name.startswith("mediasrv-rt-") for t in threading.enumerate())
        assert not h.call.closing.is_set()
    assert "handler failed" not in caplog.text
