"""The local backend's tools and keypad text: its tool plan, created items, the answer
after a result, and the handshake delay. The session is pure: `now` moves in the test."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websocket

from mediasrv.errors import ConfigError
from mediasrv.localbackend import BackendOptions, BackendStats, LocalBackend
from mediasrv.localbackend.options import PROMPTS_DIR
from mediasrv.localbackend.prompts import PROMPT_TEXTS, PromptBank
from mediasrv.localbackend.session import RealtimeSession

BANK = PromptBank.load(PROMPTS_DIR)


def session(**options: Any) -> tuple[RealtimeSession, BackendStats]:
    stats = BackendStats()
    return RealtimeSession(BackendOptions(record_sessions=True, **options), BANK, stats,
                           "m"), stats


def send(s: RealtimeSession, now: float = 0.0, **msg: Any) -> list[dict[str, Any]]:
    return list(s.handle(json.dumps(msg), now).events)


def answer(s: RealtimeSession, purpose: str = "answer") -> list[dict[str, Any]]:
    return send(s, type="response.create", response={"metadata": {"purpose": purpose}})


def test_the_planned_answer_is_a_function_call_in_the_real_apis_order() -> None:
    s, stats = session(tool_plan=((2, "end_call", '{"reason":"bye"}'),))
    assert "response.output_audio.delta" in [e["type"] for e in answer(s)]
    s.tick(100.0)  # the first answer (speech) plays out
    events = answer(s)
    assert [e["type"] for e in events] == [
        "response.created", "response.output_item.added", "conversation.item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "conversation.item.done", "response.done"]
    done = events[-1]["response"]
    [call] = done["output"]
    assert (done["status"], call["type"], call["name"], call["arguments"]) == (
        "completed", "function_call", "end_call", '{"reason":"bye"}')
    assert events[4]["call_id"] == call["call_id"]
    assert [c[2:] for c in stats.records[s.id].tool_calls] == [("end_call", '{"reason":"bye"}')]


def test_a_tool_result_is_recorded_and_the_answer_after_it_follows_the_tool() -> None:
    s, stats = session(tool_plan=((1, "end_call", "{}"),))
    call_id = answer(s)[-1]["response"]["output"][0]["call_id"]
    events = send(s, type="conversation.item.create",
                  item={"type": "function_call_output", "call_id": call_id, "output": "{}"})
    assert [e["type"] for e in events] == ["conversation.item.added", "conversation.item.done"]
    assert [o[1:] for o in stats.records[s.id].tool_outputs] == [(call_id, "{}")]
    answer(s, "after_tool")
    done = s.tick(100.0).events[-1]
    transcript = done["response"]["output"][0]["content"][0]["transcript"]
    assert transcript == PROMPT_TEXTS["goodbye"]


def test_a_result_for_a_call_never_made_is_refused() -> None:
    s, _ = session()
    [error] = send(s, type="conversation.item.create",
                   item={"type": "function_call_output", "call_id": "call_x", "output": "{}"})
    assert error["type"] == "error" and error["error"]["param"] == "item.call_id"


def test_a_caller_text_is_recorded_and_answered_without_old_caller_audio() -> None:
    s, stats = session()
    text = {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "The caller pressed 1 2 #"}]}
    assert [e["type"] for e in send(s, type="conversation.item.create", item=text)] == [
        "conversation.item.added", "conversation.item.done"]
    assert [t for _, t in stats.records[s.id].texts] == ["The caller pressed 1 2 #"]
    answer(s)
    done = s.tick(100.0).events[-1]
    assert done["response"]["output"][0]["content"][0]["transcript"] == \
        PROMPT_TEXTS["long_answer"]


def test_items_of_other_kinds_are_refused_and_the_session_goes_on() -> None:
    s, _ = session()
    [error] = send(s, type="conversation.item.create",
                   item={"type": "message", "role": "assistant", "content": []})
    assert error["error"]["param"] == "item.type"
    assert answer(s)[0]["type"] == "response.created"


def test_the_tool_plan_is_checked() -> None:
    with pytest.raises(ConfigError, match="tool_plan"):
        BackendOptions(tool_plan=((0, "end_call", "{}"),))


def test_the_handshake_is_answered_only_after_the_delay() -> None:
    backend = LocalBackend(BackendOptions(handshake_delay_s=0.5)).start()
    try:
        # a connect timeout well under the delay: the upgrade has not been answered yet
        with pytest.raises(websocket.WebSocketTimeoutException):
            websocket.create_connection(backend.url, timeout=0.1)
        ws = websocket.create_connection(backend.url, timeout=5.0)
        assert json.loads(ws.recv())["type"] == "session.created"
        ws.close()
    finally:
        backend.stop()
