"""Observability: /metrics series move, JSON log lines carry the call sid, the per-call
summary line, transcripts per turn with AI text cut off by a barge-in marked."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import SHARED_AUDIO
from fakes import (
    WAIT,
    FakeRealtime,
    FakeTwilio,
    Harness,
    RecordingObserver,
    call_deps,
    call_settings,
    root_logging_restored,
    start_msg,
)
from hardening_live import backend, connector, wait_for
from prometheus_client.parser import text_string_to_metric_families

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE, pcm16_to_ulaw, to_pcm16
from mediasrv.call import Call
from mediasrv.clock import ManualClock
from mediasrv.emulator.script import load_8k
from mediasrv.web.app import create_app
from mediasrv.web.logs import configure_logging
from mediasrv.web.metrics import Metrics
from mediasrv.web.settings import load_settings


@contextmanager
def metered_call(**overrides: Any) -> Iterator[tuple[Harness, Metrics, dict[str, Any]]]:
    s = call_settings(**overrides)
    order: list[tuple[str, str]] = []
    clock, metrics = ManualClock(), Metrics()
    twilio, rt = FakeTwilio(order), FakeRealtime(order)
    call = Call(twilio, call_deps(s, clock, rt, metrics))
    rx = threading.Thread(target=call.run, name="mediasrv-test-rx")
    rx.start()
    twilio.push({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    twilio.push(start_msg())
    try:
        session = rt.expect("session.update")
        unused = RecordingObserver()  # the harness's drain queue; drains are counted in metrics
        yield Harness(call, twilio, rt, clock, unused, order), metrics, session
    finally:
        twilio.hang_up()
        rx.join(timeout=WAIT)
        metrics.call_finished(call)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_move_with_the_call() -> None:
    with metered_call() as (h, m, _):
        h.respond("resp_1", "item_1", ms=1000, done=False)
        h.twilio.expect("media")
        h.tick(5)
        m.set_active([h.call])
        live = samples(m)
        assert live[("mediasrv_active_calls", ())] == 1
        assert live[("mediasrv_queue_frames", (("queue", "tx"),))] > 0
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
        h.twilio.expect("clear")
        h.rt.emit({"type": "error", "error": {"code": "conversation_already_has_active_response"}})
        h.respond("resp_2", "item_2", ms=100)
        h.rt.sync()
        h.play(5)  # each tick taken before the next: the tx loop keeps no backlog to catch up
        for _ in range(5):
            h.clock.advance(0.02)
        wait_for(lambda: m.drains.labels(outcome="empty")._value.get() == 1, "drain counted")
        h.rt.close()  # the backend drops: one reconnect
        wait_for(lambda: m.reconnects._value.get() == 1, "reconnect counted")
        h.rt.expect("session.update")
    m.set_active([])
    after = samples(m)
    assert after[("mediasrv_active_calls", ())] == 0
    assert after[("mediasrv_calls_ended_total", (("reason", "twilio socket closed"),))] == 1
    assert after[("mediasrv_barge_ins_total", ())] == 1
    assert after[("mediasrv_barge_in_trigger_to_clear_ms_count", ())] == 1
    assert after[("mediasrv_drains_total", (("outcome", "empty"),))] >= 1
    code = (("code", "conversation_already_has_active_response"),)
    assert after[("mediasrv_backend_errors_total", code)] == 1
    assert after[("mediasrv_realtime_reconnects_total", ())] == 1
    assert ("mediasrv_tx_late_frames_ended_total", ()) in after
    assert ("mediasrv_tx_late_frames", ()) in after


def test_metrics_endpoint_serves_prometheus_text() -> None:
    with backend() as b:
        s = load_settings({}, greeting="")
        client = create_app(s, connect_realtime=connector(b)).test_client()
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    assert {"mediasrv_active_calls", "mediasrv_calls_ended", "mediasrv_barge_ins",
            "mediasrv_barge_in_trigger_to_clear_ms", "mediasrv_drains",
            "mediasrv_tx_late_frames", "mediasrv_queue_frames", "mediasrv_backend_errors",
            "mediasrv_realtime_reconnects"} <= names


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    with root_logging_restored():
        configure_logging("INFO", "json", stream=buf)
        yield buf


def test_json_logs_are_one_object_per_line_with_the_call_sid_and_a_summary() -> None:
    with json_logs() as buf:
        with metered_call() as (h, _, _):
            h.respond("resp_1", "item_1", ms=300, done=False)
            h.twilio.expect("media")
            h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u1"})
            h.twilio.expect("clear")
            h.rt.emit({"type": "response.done", "response": {"id": "resp_1",
                                                             "status": "cancelled"}})
            h.rt.sync()
            assert h.call.request_response("answer")
            h.twilio.push({"event": "stop", "stop": {"callSid": "CA00000001"}})
            assert h.call.closing.wait(WAIT)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines and all(isinstance(d, dict) for d in lines)
    calls = [d for d in lines if d["logger"] == "mediasrv.call"]
    assert calls and all(d["call_sid"] == "CA00000001" for d in calls)
    [summary] = [d["msg"] for d in calls if "call ended:" in d["msg"]]
    assert "reason=caller hung up (stop)" in summary
    assert "turns=1" in summary and "barge_ins=1" in summary and "duration=" in summary


def test_transcripts_are_logged_per_turn_and_cut_off_ai_text_is_marked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv.call")
    with metered_call() as (h, _, session):
        h.rt.emit({"type": "conversation.item.input_audio_transcription.completed",
                   "item_id": "u1", "transcript": "what time is it"})
        h.respond("resp_1", "item_1", ms=200)
        h.rt.emit({"type": "response.output_audio_transcript.done", "response_id": "resp_1",
                   "item_id": "item_1", "transcript": "It is noon."})
        h.respond("resp_2", "item_2", ms=1000, done=False)
        h.rt.sync()
        h.rt.emit({"type": "input_audio_buffer.speech_started", "item_id": "u2"})
        h.twilio.expect("clear")
        h.rt.emit({"type": "response.output_audio_transcript.done", "response_id": "resp_2",
                   "item_id": "item_2", "transcript": "Let me tell you a long story"})
        h.rt.sync()
    text = caplog.text
    assert "[TRANSCRIPT] caller: what time is it" in text
    assert "[TRANSCRIPT] ai: It is noon." in text
    assert "[TRANSCRIPT] ai (cut off by barge-in): Let me tell you a long story" in text
    transcription = session["session"]["audio"]["input"]["transcription"]
    assert transcription == {"model": "gpt-4o-mini-transcribe"}  # enabled in the session


def test_metrics_page_has_no_created_samples() -> None:
    m = Metrics()
    m.call_ended("caller hung up")
    m.barge_in(12.0)
    body = m.render()[0].decode()
    assert "mediasrv_calls_ended_total" in body and "mediasrv_barge_ins_total" in body
    assert "_created" not in body


def media(n: int, payload: bytes) -> dict[str, Any]:
    return {"event": "media", "sequenceNumber": str(n + 2), "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": str(n), "timestamp": str(20 * n),
                      "payload": base64.b64encode(payload).decode()}}


def test_turn_lines_carry_the_call_sid_in_text_and_json() -> None:
    speech = (SHARED_AUDIO / "speech" / "en_espeak_caller.wav")
    audio = pcm16_to_ulaw(to_pcm16(load_8k(speech))) + bytes([ULAW_SILENCE]) * 8000
    with json_logs() as buf:
        with metered_call(turn_detection="local") as (h, _, _):
            for n, at in enumerate(range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES)):
                h.twilio.push(media(n, audio[at : at + FRAME_BYTES]))
            wait_for(lambda: "END OF UTTERANCE" in buf.getvalue(), "the turn ended")
    [turn] = [d for d in map(json.loads, buf.getvalue().splitlines())
              if "END OF UTTERANCE" in d["msg"]]
    assert turn["call_sid"] == "CA00000001"
    assert turn["msg"].startswith("[CA00000001] END OF UTTERANCE: ")  # the text line's prefix
