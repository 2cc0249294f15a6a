"""The cascade's wire formats: Deepgram results, SSE chat chunks, ElevenLabs messages in
both of their live spellings; anything unusable is a ProtocolError naming why. Pure."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediasrv.backends.cascade import chat_wire, stt_wire, tts_wire
from mediasrv.errors import ProtocolError


def results(**over: object) -> str:
    msg = {"type": "Results", "start": 1.5, "duration": 2.0, "is_final": True,
           "speech_final": True, "from_finalize": False,
           "channel": {"alternatives": [{"transcript": " Hello there. ", "confidence": 0.9,
                                         "words": [{"word": "hello", "start": 1.6, "end": 1.9},
                                                   {"word": "there", "start": 2.0, "end": 2.4}]}]}}
    msg.update(over)
    return json.dumps(msg)


def test_a_final_result_gives_its_text_and_the_span_of_its_words() -> None:
    msg = stt_wire.parse(results())
    assert msg == stt_wire.Results("Hello there.", 1.5, 2.0, True, True, False, 1.6, 2.4)
    assert msg.end == 3.5


def test_speech_started_and_utterance_end_carry_their_times() -> None:
    assert stt_wire.parse('{"type":"SpeechStarted","channel":[0,1],"timestamp":0.8}') == \
        stt_wire.SpeechStarted(0.8)
    assert stt_wire.parse('{"type":"UtteranceEnd","last_word_end":2.395}') == \
        stt_wire.UtteranceEnd(2.395)
    assert stt_wire.parse('{"type":"Metadata","duration":3}') == stt_wire.OtherMessage("Metadata")


@pytest.mark.parametrize("bad", [
    "not json", "[]", '{"no": "type"}', results(start=-1), results(start="1"),
    results(is_final="yes"), results(channel={"alternatives": []}),
    '{"type":"SpeechStarted","timestamp":NaN}',
])
def test_unusable_deepgram_messages_are_protocol_errors(bad: str) -> None:
    with pytest.raises(ProtocolError, match="deepgram"):
        stt_wire.parse(bad)


def test_the_listen_url_asks_for_mulaw_interims_and_the_2_s_utterance_end() -> None:
    url = stt_wire.listen_url("wss://dg.example/v1/listen", model="nova-3", endpointing_ms=300)
    assert url.startswith("wss://dg.example/v1/listen?model=nova-3&")
    for part in ("encoding=mulaw", "sample_rate=8000", "interim_results=true",
                 "utterance_end_ms=2000", "vad_events=true", "endpointing=300"):
        assert part in url


def test_sse_lines_give_text_the_finish_and_done_and_skip_the_rest() -> None:
    def chunk(choices: object) -> bytes:
        return b"data: " + json.dumps({"id": "c", "choices": choices}).encode() + b"\n"

    assert chat_wire.parse_line(chunk([{"index": 0, "delta": {"content": "Hel"}}])) == \
        chat_wire.Delta("Hel")
    assert chat_wire.parse_line(chunk([{"index": 0, "delta": {"role": "assistant"}}])) is None
    assert chat_wire.parse_line(chunk([])) is None  # the usage chunk
    assert chat_wire.parse_line(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])) \
        == chat_wire.Finish("stop")
    assert chat_wire.parse_line(b"data: [DONE]\n") == chat_wire.Done()
    assert chat_wire.parse_line(b"\n") is None and chat_wire.parse_line(b": ping\n") is None


def test_an_error_object_mid_stream_is_a_failure_with_its_message() -> None:
    line = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n'
    assert chat_wire.parse_line(line) == chat_wire.Failure("server_error: overloaded")


@pytest.mark.parametrize("bad", [b"garbage\n", b"data: {not json\n", b"data: [1]\n",
                                 b'data: {"choices": 3}\n', b"data: \xff\xfe\n"])
def test_unusable_sse_lines_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises((ProtocolError, UnicodeDecodeError)):
        chat_wire.parse_line(bad)


def test_the_chat_request_streams_and_bounds_the_answer() -> None:
    body = json.loads(chat_wire.request_body("m", [{"role": "user", "content": "hi"}]))
    assert body["stream"] is True and body["model"] == "m"
    assert body["max_completion_tokens"] == chat_wire.MAX_COMPLETION_TOKENS


def audio_message(**over: object) -> str:
    msg: dict[str, object] = {
        "audio": base64.b64encode(b"\x7f" * 80).decode(), "isFinal": None,
        "alignment": {"chars": ["x"], "charStartTimesMs": [5], "charDurationsMs": [5]},
        "normalizedAlignment": {"chars": ["H", "i"], "charStartTimesMs": [0, 4],
                                "charDurationsMs": [4, 6]},
        "contextId": "ctx_1"}
    msg.update(over)
    return json.dumps(msg)


def test_audio_prefers_the_normalized_alignment() -> None:
    msg = tts_wire.parse(audio_message())
    assert msg == tts_wire.Audio("ctx_1", b"\x7f" * 80,
                                 tts_wire.Alignment(("H", "i"), (0.0, 4.0)))


def test_both_spellings_of_the_context_id_and_the_durations_are_accepted() -> None:
    msg = tts_wire.parse(audio_message(
        contextId=None, context_id="ctx_9", normalizedAlignment=None,
        alignment={"chars": ["a"], "charStartTimesMs": [1], "charsDurationsMs": [2]}))
    assert msg == tts_wire.Audio("ctx_9", b"\x7f" * 80, tts_wire.Alignment(("a",), (1.0,)))


def test_final_error_and_other_messages_are_told_apart() -> None:
    assert tts_wire.parse('{"isFinal": true, "contextId": "c"}') == tts_wire.Final("c")
    assert tts_wire.parse('{"message": "timeout", "error": "input_timeout_exceeded", '
                          '"code": 1008}') == tts_wire.ServiceError("input_timeout_exceeded",
                                                                    "timeout")
    assert tts_wire.parse('{"type": "flush_done", "context_id": "c", "flush_done": true}') == \
        tts_wire.OtherMessage("c")


@pytest.mark.parametrize("bad", [
    "{", "[]", '{"audio": "AAAA"}', audio_message(audio="not base64!"),
    audio_message(normalizedAlignment={"chars": ["a", "b"], "charStartTimesMs": [0]}),
    audio_message(normalizedAlignment={"chars": ["a"], "charStartTimesMs": [-3]}),
])
def test_unusable_elevenlabs_messages_are_protocol_errors(bad: str) -> None:
    with pytest.raises(ProtocolError, match="elevenlabs"):
        tts_wire.parse(bad)


def test_the_key_never_goes_into_a_message_and_voice_settings_repeat_unchanged() -> None:
    first, second = json.loads(tts_wire.open_context("a")), json.loads(tts_wire.open_context("b"))
    assert first["text"] == " " and first["voice_settings"] == second["voice_settings"]
    for text in (tts_wire.open_context("a"), tts_wire.text("a", "hi ", flush=True),
                 tts_wire.flush("a"), tts_wire.close_context("a"), tts_wire.CLOSE_SOCKET):
        assert "xi" not in text and "key" not in text
    url = tts_wire.stream_url("wss://x", voice_id="v", model="eleven_flash_v2_5")
    assert "output_format=ulaw_8000" in url and "sync_alignment=true" in url


@given(st.binary(max_size=200))
def test_no_bytes_from_a_service_raise_anything_but_a_protocol_error(data: bytes) -> None:
    for parse in (stt_wire.parse, tts_wire.parse, chat_wire.parse_line):
        try:
            parse(data)
        except (ProtocolError, UnicodeDecodeError):
            pass
