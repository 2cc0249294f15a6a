"""The cascade's tool turns and keypad text (issue 13), in its pure core: what the chat
model is offered, what the call is told, what the next request's history holds. The chat
stream comes in as the SSE lines a server sends (chat_wire parses them). Pure: `now`
moves by hand."""

from __future__ import annotations

import json
from typing import Any

from test_cascade_pipeline import asked, audio, chats, events, ready, tts

from mediasrv.backends import base
from mediasrv.backends.cascade import chat_wire, tts_wire
from mediasrv.backends.cascade.actions import Action, CascadeConfig, StopChat
from mediasrv.backends.cascade.history import PENDING
from mediasrv.backends.cascade.pipeline import Pipeline
from mediasrv.protocol.toolcalls import ToolCall

LOOKUP = base.ToolSpec("look_up_order", "Find an order.",
                       {"type": "object", "properties": {"order": {"type": "string"}},
                        "required": ["order"]})
END = base.ToolSpec("end_call", "End the call.", {"type": "object", "properties": {}})
CONFIG = CascadeConfig(chat_model="small-model", instructions="be brief",
                       greeting="Hello there!", tools=(LOOKUP, END))


def sse(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n".encode()


def fragment(index: int, arguments: str, call_id: str = "", name: str = "") -> dict[str, Any]:
    head = {"id": call_id, "type": "function"} if call_id else {}
    function = {"arguments": arguments, **({"name": name} if name else {})}
    return {"index": index, **head, "function": function}


def stream(p: Pipeline, job: int, lines: list[bytes], now: float = 11.0) -> list[Action]:
    out: list[Action] = []
    for line in lines:
        ev = chat_wire.parse_line(line)
        assert ev is not None
        out += p.on_chat(job, ev, now)
    return out


def tool_events(actions: list[Action]) -> list[base.BackendEvent]:
    return [e for e in events(actions) if isinstance(e, base.ToolCallsReady | base.ResponseDone)]


def test_the_chat_request_offers_the_servers_tools_as_functions() -> None:
    body = json.loads(asked(ready(CONFIG), "hi").body)
    assert body["tools"] == [
        {"type": "function", "function": {"name": "look_up_order",
                                          "description": "Find an order.",
                                          "parameters": LOOKUP.parameters}},
        {"type": "function", "function": {"name": "end_call", "description": "End the call.",
                                          "parameters": END.parameters}}]
    assert "tools" not in json.loads(asked(ready(), "hi").body)  # none to offer: no key


def test_arguments_split_across_chunks_make_one_call_reported_before_response_done() -> None:
    p = ready(CONFIG)
    job = asked(p, "where is order 12").job
    actions = stream(p, job, [
        sse({"role": "assistant", "content": None,
             "tool_calls": [fragment(0, "", "call_a", "look_up_order")]}),
        sse({"tool_calls": [fragment(0, '{"ord')]}),
        sse({"tool_calls": [fragment(0, 'er": "12"}')]}),
        sse({}, "tool_calls"), b"data: [DONE]\n"])
    assert tool_events(actions) == [
        base.ToolCallsReady("cascade_resp_1",
                            (ToolCall("call_a", "look_up_order", '{"order": "12"}'),)),
        base.ResponseDone("cascade_resp_1", "completed", "")]
    assert tts(actions) == []  # nothing to say: no voice context opened


def test_two_calls_in_one_turn_are_reported_in_the_models_order() -> None:
    p = ready(CONFIG)
    job = asked(p, "check 7 and hang up").job
    actions = stream(p, job, [
        sse({"tool_calls": [fragment(1, "{}", "call_b", "end_call"),
                            fragment(0, '{"order": ', "call_a", "look_up_order")]}),
        sse({"tool_calls": [fragment(0, '"7"}')]}),
        sse({}, "tool_calls"), b"data: [DONE]\n"])
    [ready_ev, _] = tool_events(actions)
    assert isinstance(ready_ev, base.ToolCallsReady)
    assert [(c.call_id, c.arguments, c.complete) for c in ready_ev.calls] == [
        ("call_a", '{"order": "7"}', True), ("call_b", "{}", True)]


def test_a_barge_in_mid_arguments_reports_the_call_cut_off_with_arguments_kept_valid() -> None:
    p = ready(CONFIG)
    job = asked(p, "where is order 12").job
    stream(p, job, [sse({"tool_calls": [fragment(0, '{"order": "1', "call_a",
                                                 "look_up_order")]})])
    actions = p.cancel("cascade_resp_1")
    assert StopChat(job) in actions
    assert tool_events(actions) == [
        base.ToolCallsReady("cascade_resp_1",
                            (ToolCall("call_a", "look_up_order", "{}", complete=False),)),
        base.ResponseDone("cascade_resp_1", "cancelled", "barge-in")]


def test_text_said_with_a_call_is_spoken_and_only_its_heard_part_kept_with_the_call() -> None:
    p = ready(CONFIG)
    job = asked(p, "where is order 12").job
    actions = stream(p, job, [
        sse({"content": "Let me check that. "}),
        sse({"tool_calls": [fragment(0, '{"order": "12"}', "call_a", "look_up_order")]}),
        sse({}, "tool_calls"), b"data: [DONE]\n"])
    assert {"text": "Let me check that. ", "context_id": "ctx_1", "flush": True} in tts(actions)
    p.on_tts(1, audio("ctx_1", 1000, "Let me check that. "), 11.5)
    end = p.on_tts(1, tts_wire.Final("ctx_1"), 11.6)
    assert [type(e) for e in events(end)] == [base.AudioDone, base.AgentTranscript,
                                              base.ToolCallsReady, base.ResponseDone]
    p.truncate("cascade_item_1", 300)  # "Let me " had started (~53 ms a char)
    assert p.history.request()[-2:] == [
        {"role": "assistant", "content": "Let me",
         "tool_calls": [{"id": "call_a", "type": "function",
                         "function": {"name": "look_up_order",
                                      "arguments": '{"order": "12"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": PENDING}]


def test_results_go_into_the_history_in_call_order_and_after_tool_asks_again_at_once() -> None:
    p = ready(CONFIG)
    job = asked(p, "check 7 and hang up").job
    stream(p, job, [
        sse({"tool_calls": [fragment(0, '{"order": "7"}', "call_a", "look_up_order"),
                            fragment(1, "{}", "call_b", "end_call")]}),
        sse({}, "tool_calls"), b"data: [DONE]\n"])
    assert p.tool_result("call_b", '{"ok": true}') == []
    assert p.tool_result("call_a", '{"status": "shipped"}') == []
    actions = p.request("req_2", "after_tool", "", 12.0)
    assert [type(e) for e in events(actions)] == [base.ResponseCreated]  # no transcript
    [again] = chats(actions)
    messages = json.loads(again.body)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": '{"status": "shipped"}'},
        {"role": "tool", "tool_call_id": "call_b", "content": '{"ok": true}'}]


def test_a_result_for_an_unknown_call_is_dropped_not_put_in_the_history() -> None:
    p = ready(CONFIG)
    p.tool_result("call_nobody_made", "{}")
    assert [m["role"] for m in p.history.request()] == ["system"]


def test_a_turn_spoken_while_a_tool_runs_is_answered_and_the_late_result_comes_last() -> None:
    p = ready(CONFIG)
    job = asked(p, "where is order 12").job
    stream(p, job, [
        sse({"content": "Checking. "}),
        sse({"tool_calls": [fragment(0, '{"order": "12"}', "call_a", "look_up_order")]}),
        sse({}, "tool_calls"), b"data: [DONE]\n"])
    p.on_tts(1, audio("ctx_1", 500, "Checking. "), 11.5)
    p.on_tts(1, tts_wire.Final("ctx_1"), 11.6)
    second = json.loads(asked(p, "are you there", now=20.0).body)["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "user"]
    assert second[3]["content"] == PENDING  # a valid request while the tool still runs
    p.on_chat(2, chat_wire.Delta("Yes. "), 21.0)
    p.on_chat(2, chat_wire.Done(), 21.0)
    p.on_tts(1, audio("ctx_2", 300, "Yes. "), 21.2)
    p.on_tts(1, tts_wire.Final("ctx_2"), 21.3)
    p.tool_result("call_a", '{"status": "shipped"}')
    [after] = chats(p.request("req_3", "after_tool", "", 22.0))
    messages = json.loads(after.body)["messages"]
    assert [(m["role"], m.get("content")) for m in messages[2:]] == [
        ("assistant", "Checking."), ("user", "are you there"), ("assistant", "Yes."),
        ("assistant", None), ("tool", '{"status": "shipped"}')]


def test_keypad_text_is_a_user_message_and_its_answer_needs_no_spoken_words() -> None:
    p = ready(CONFIG)
    assert p.caller_text("The caller pressed 1 2 3 4 #") == []  # no answer asked by itself
    actions = p.request("req_1", "answer", "", 5.0)
    assert [type(e) for e in events(actions)] == [base.ResponseCreated]
    [job] = chats(actions)
    assert json.loads(job.body)["messages"][-1] == {
        "role": "user", "content": "The caller pressed 1 2 3 4 #"}


def test_keypad_text_during_an_answer_follows_that_answer_in_the_history() -> None:
    p = ready(CONFIG)
    job = asked(p, "hi").job
    p.on_chat(job, chat_wire.Delta("Hello there. "), 11.0)
    p.caller_text("The caller pressed 5")
    p.on_chat(job, chat_wire.Done(), 11.1)
    p.on_tts(1, audio("ctx_1", 500, "Hello there. "), 11.2)
    p.on_tts(1, tts_wire.Final("ctx_1"), 11.3)
    assert p.history.request()[-2:] == [{"role": "assistant", "content": "Hello there."},
                                        {"role": "user", "content": "The caller pressed 5"}]


def test_a_chunk_with_text_tool_calls_and_finish_reason_together_loses_none_of_them() -> None:
    ev = chat_wire.parse_line(sse({"content": "Ok.", "tool_calls": [fragment(0, "{}")]},
                                  "tool_calls"))
    assert ev == chat_wire.Delta("Ok.", (fragment(0, "{}"),), "tool_calls")
