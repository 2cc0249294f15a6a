import json

import pytest

from mediasrv.errors import RealtimeProtocolError
from mediasrv.protocol import realtime as rp


def test_ga_audio_delta_is_parsed():
    ev = rp.parse_realtime(json.dumps({
        "type": "response.output_audio.delta", "event_id": "e", "response_id": "resp_1",
        "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "AQI=",
    }))
    assert ev == rp.AudioDelta("resp_1", "item_1", 0, b"\x01\x02")


def test_beta_names_are_accepted_as_aliases():
    ev = rp.parse_realtime(json.dumps({
        "type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "AA==",
    }))
    assert isinstance(ev, rp.AudioDelta)
    done = rp.parse_realtime('{"type":"response.audio.done","response_id":"r","item_id":"i"}')
    assert done == rp.AudioDone("r", "i")


def test_response_done_carries_status_and_reason():
    ev = rp.parse_realtime(json.dumps({"type": "response.done", "response": {
        "id": "resp_1", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "client_cancelled"}}}))
    assert ev == rp.ResponseDone("resp_1", "cancelled", "client_cancelled")


def test_error_event_keeps_code_message_and_event_id():
    ev = rp.parse_realtime(json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "code": "response_cancel_not_active",
        "message": "Cancellation failed: no active response found", "event_id": "x"}}))
    assert ev == rp.ErrorEvent(
        "response_cancel_not_active", "Cancellation failed: no active response found", "x"
    )


def test_unknown_types_are_ignored_not_errors():
    assert rp.parse_realtime('{"type":"rate_limits.updated"}') == rp.Ignored("rate_limits.updated")


@pytest.mark.parametrize("raw", [
    "nope", "[]", '{"x":1}',
    '{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"**"}',
    '{"type":"response.output_audio.delta","item_id":"i","delta":"AA=="}',
    '{"type":"response.created","response":{}}',
    '{"type":"response.done","response":"x"}',
])
def test_malformed_events_raise_protocol_error(raw):
    with pytest.raises(RealtimeProtocolError):
        rp.parse_realtime(raw)


def test_session_update_is_ga_shaped_with_pcmu_both_ways():
    doc = json.loads(rp.session_update(
        model="gpt-realtime-2.1", instructions="hi", voice="marin",
        turn_detection=rp.server_vad(0.6, 500), transcription_model="m"))
    session = doc["session"]
    assert doc["type"] == "session.update" and session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["voice"] == "marin"
    td = session["audio"]["input"]["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300,
                  "silence_duration_ms": 500, "create_response": False,
                  "interrupt_response": False}
    for beta_key in ("modalities", "voice", "input_audio_format", "turn_detection"):
        assert beta_key not in session


def test_truncate_sends_integer_ms():
    doc = json.loads(rp.truncate("item_1", 0, 1234.9))  # type: ignore[arg-type]
    assert doc == {"type": "conversation.item.truncate", "item_id": "item_1",
                   "content_index": 0, "audio_end_ms": 1234}


def test_function_call_items_are_parsed_and_assistant_messages_ignored():
    call = {"id": "item_1", "type": "function_call", "call_id": "call_1", "name": "end_call",
            "arguments": "", "status": "in_progress"}
    ev = rp.parse_realtime(json.dumps({"type": "response.output_item.added",
                                       "response_id": "resp_1", "item": call}))
    assert ev == rp.FunctionCallItem("resp_1", call)
    msg = {"id": "item_2", "type": "message", "role": "assistant", "content": []}
    ignored = rp.parse_realtime(json.dumps({"type": "response.output_item.added",
                                            "response_id": "resp_1", "item": msg}))
    assert isinstance(ignored, rp.Ignored)


def test_arguments_done_becomes_the_item_fields_it_carries():
    ev = rp.parse_realtime(json.dumps({
        "type": "response.function_call_arguments.done", "response_id": "resp_1",
        "item_id": "item_1", "output_index": 0, "call_id": "call_1", "name": "lookup",
        "arguments": '{"q":1}'}))
    assert ev == rp.FunctionCallItem("resp_1", {"id": "item_1", "call_id": "call_1",
                                                 "name": "lookup", "arguments": '{"q":1}'})


def test_response_done_keeps_only_the_function_calls_of_its_output():
    call = {"id": "item_1", "type": "function_call", "call_id": "call_1", "name": "x"}
    ev = rp.parse_realtime(json.dumps({"type": "response.done", "response": {
        "id": "resp_1", "status": "completed",
        "output": [{"id": "item_0", "type": "message"}, call]}}))
    assert isinstance(ev, rp.ResponseDone) and ev.function_calls == (call,)


def test_session_update_offers_tools_only_when_there_are_some():
    tool = rp.function_tool("end_call", "End the call.", {"type": "object", "properties": {}})
    with_tools = json.loads(rp.session_update(model="m", instructions="i", voice="v",
                                              turn_detection=None, tools=[tool]))["session"]
    assert with_tools["tools"] == [{"type": "function", "name": "end_call",
                                    "description": "End the call.",
                                    "parameters": {"type": "object", "properties": {}}}]
    assert with_tools["tool_choice"] == "auto"
    plain = json.loads(rp.session_update(model="m", instructions="i", voice="v",
                                         turn_detection=None))["session"]
    assert "tools" not in plain and "tool_choice" not in plain


def test_a_tool_result_and_a_caller_text_are_conversation_items():
    assert json.loads(rp.function_call_output("call_1", '{"ok":true}')) == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"ok":true}'}}
    assert json.loads(rp.user_text("The caller pressed 1 #")) == {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "The caller pressed 1 #"}]}}
