"""Tool calls off the wire: Chat Completions deltas by index, Realtime GA events. Pure."""

from __future__ import annotations

from typing import Any

from mediasrv.protocol.toolcalls import (
    ChatToolCallAssembler,
    RealtimeToolCalls,
    ToolCall,
    assistant_message,
    tool_message,
)


def chunk(*fragments: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"tool_calls": list(fragments)} if fragments else {}
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def frag(index: int | None, args: str = "", call_id: str | None = None,
         name: str | None = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        fragment["index"] = index
    if call_id:
        fragment["id"], fragment["type"] = call_id, "function"
    if name:
        fragment["function"]["name"] = name
    return fragment


def test_argument_pieces_of_one_call_are_concatenated_and_ready_at_finish_reason() -> None:
    asm = ChatToolCallAssembler()
    assert asm.feed_chunk(chunk(frag(0, "", "call_1", "look_up_order"))) is None
    assert asm.feed_chunk(chunk(frag(0, '{"order'))) is None
    assert asm.feed_chunk(chunk(frag(0, '": 42}'))) is None
    done = asm.feed_chunk(chunk(finish="tool_calls"))
    assert done is not None and done.calls == (ToolCall("call_1", "look_up_order",
                                                        '{"order": 42}'),)
    assert done.status == "tool_calls"


def test_interleaved_calls_are_kept_apart_by_index_and_returned_in_index_order() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk(chunk(frag(1, "", "call_b", "second"), frag(0, "", "call_a", "first")))
    asm.feed_chunk(chunk(frag(1, '{"b":'), frag(0, '{"a":')))
    asm.feed_chunk(chunk(frag(0, "1}"), frag(1, "2}")))
    done = asm.feed_chunk(chunk(finish="tool_calls"))
    assert done is not None
    assert [(c.call_id, c.name, c.arguments) for c in done.calls] == \
        [("call_a", "first", '{"a":1}'), ("call_b", "second", '{"b":2}')]


def test_a_call_starting_at_index_one_is_assembled() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk(chunk(frag(1, "{}", "call_x", "end_call")))
    done = asm.feed_chunk(chunk(finish="tool_calls"))
    assert done is not None and [c.name for c in done.calls] == ["end_call"]


def test_a_repeated_id_and_name_on_later_fragments_are_not_appended() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk(chunk(frag(0, '{"q":', "call_1", "lookup")))
    asm.feed_chunk(chunk(frag(0, '"x"}', "call_1", "lookup")))
    done = asm.finish()
    assert done is not None and done.calls == (ToolCall("call_1", "lookup", '{"q":"x"}'),)
    assert done.problems == ()


def test_a_fragment_without_index_is_keyed_by_its_position_and_reported() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk(chunk(frag(None, "{}", "call_1", "end_call")))
    done = asm.finish()
    assert done is not None and done.calls[0].name == "end_call"
    assert any("without an integer index" in p for p in done.problems)


def test_a_call_without_a_name_is_dropped_with_a_reason() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk(chunk(frag(0, "{}", "call_1")))
    done = asm.finish()
    assert done is not None and done.calls == ()
    assert any("no name" in p for p in done.problems)


def test_the_usage_chunk_without_choices_is_ignored() -> None:
    asm = ChatToolCallAssembler()
    assert asm.feed_chunk({"choices": [], "usage": {"total_tokens": 3}}) is None
    assert asm.finish() is None


def test_a_text_answer_finishes_with_no_tool_calls() -> None:
    asm = ChatToolCallAssembler()
    asm.feed_chunk({"choices": [{"index": 0, "delta": {"content": "Hi"},
                                 "finish_reason": None}]})
    assert asm.feed_chunk(chunk(finish="stop")) is None
    assert asm.finish_reason == "stop"


def test_history_entries_for_a_tool_turn_pair_ids() -> None:
    call = ToolCall("call_1", "lookup", '{"q":"x"}')
    assert assistant_message(None, (call,)) == {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]}
    assert tool_message("call_1", '{"ok":true}') == \
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok":true}'}


# -- Realtime GA ---------------------------------------------------------------------------


def item_added(response_id: str, item_id: str, call_id: str, name: str) -> dict[str, Any]:
    return {"type": "response.output_item.added", "response_id": response_id,
            "output_index": 0, "item": {"id": item_id, "type": "function_call",
                                        "call_id": call_id, "name": name, "arguments": ""}}


def args_done(response_id: str, item_id: str, call_id: str, arguments: str,
              name: str | None = None) -> dict[str, Any]:
    event = {"type": "response.function_call_arguments.done", "response_id": response_id,
             "item_id": item_id, "output_index": 0, "call_id": call_id,
             "arguments": arguments}
    if name:
        event["name"] = name
    return event


def response_done(response_id: str, status: str = "completed",
                  output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": response_id, "status": status,
                                                  "output": output or []}}


def test_a_realtime_call_is_reported_when_its_response_is_done() -> None:
    rt = RealtimeToolCalls()
    assert rt.feed(item_added("resp_1", "item_1", "call_1", "end_call")) is None
    assert rt.feed(args_done("resp_1", "item_1", "call_1", '{"reason":"bye"}')) is None
    done = rt.feed(response_done("resp_1"))
    assert done is not None and done.response_id == "resp_1"
    assert done.calls == (ToolCall("call_1", "end_call", '{"reason":"bye"}'),)


def test_several_realtime_calls_in_one_response_come_together_in_order() -> None:
    rt = RealtimeToolCalls()
    rt.feed(item_added("resp_1", "item_1", "call_1", "first"))
    rt.feed(item_added("resp_1", "item_2", "call_2", "second"))
    rt.feed(args_done("resp_1", "item_2", "call_2", "{}"))
    rt.feed(args_done("resp_1", "item_1", "call_1", "{}"))
    done = rt.feed(response_done("resp_1"))
    assert done is not None and [c.name for c in done.calls] == ["first", "second"]


def test_calls_listed_only_in_response_done_output_are_found() -> None:
    rt = RealtimeToolCalls()
    done = rt.feed(response_done("resp_1", output=[
        {"id": "item_1", "type": "function_call", "call_id": "call_1", "name": "lookup",
         "arguments": '{"q":1}'},
        {"id": "item_2", "type": "message", "role": "assistant", "content": []}]))
    assert done is not None and done.calls == (ToolCall("call_1", "lookup", '{"q":1}'),)


def test_calls_of_a_cancelled_response_are_marked_incomplete() -> None:
    rt = RealtimeToolCalls()
    rt.feed(item_added("resp_1", "item_1", "call_1", "lookup"))
    rt.feed(args_done("resp_1", "item_1", "call_1", '{"q":'))
    done = rt.feed(response_done("resp_1", status="cancelled"))
    assert done is not None and done.status == "cancelled"
    assert [c.complete for c in done.calls] == [False]


def test_a_response_without_function_calls_reports_nothing() -> None:
    rt = RealtimeToolCalls()
    assert rt.feed({"type": "response.output_audio.delta", "response_id": "resp_1"}) is None
    assert rt.feed(response_done("resp_1")) is None


def test_calls_of_one_response_are_not_reported_with_another() -> None:
    rt = RealtimeToolCalls()
    rt.feed(item_added("resp_1", "item_1", "call_1", "lookup"))
    rt.feed(args_done("resp_1", "item_1", "call_1", "{}"))
    assert rt.feed(response_done("resp_2")) is None
    done = rt.feed(response_done("resp_1"))
    assert done is not None and len(done.calls) == 1


def test_a_call_completed_before_its_response_was_cancelled_stays_complete() -> None:
    rt = RealtimeToolCalls()
    rt.feed(item_added("resp_1", "item_1", "call_1", "lookup"))
    rt.feed({"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0,
             "item": {"id": "item_1", "type": "function_call", "call_id": "call_1",
                      "name": "lookup", "arguments": '{"q":1}', "status": "completed"}})
    done = rt.feed(response_done("resp_1", status="cancelled"))
    assert done is not None and done.calls == (ToolCall("call_1", "lookup", '{"q":1}'),)


def test_an_item_marked_incomplete_is_incomplete_even_in_a_completed_response() -> None:
    rt = RealtimeToolCalls()
    done = rt.feed(response_done("resp_1", output=[
        {"id": "item_1", "type": "function_call", "call_id": "call_1", "name": "lookup",
         "arguments": '{"q":', "status": "incomplete"}]))
    assert done is not None and [c.complete for c in done.calls] == [False]
