"""The tool tracker: results wait for the backend, one answer per turn, a backstop. Pure."""

from __future__ import annotations

import json

from mediasrv.callctl.tracker import TIMEOUT_GRACE_S, ToolTracker
from mediasrv.protocol.toolcalls import ToolCall

A = ToolCall("call_a", "look_up_order", '{"order": 1}')
B = ToolCall("call_b", "check_stock", "{}")


def test_a_result_waits_until_delivered_and_then_the_answer_is_asked_for() -> None:
    t = ToolTracker(timeout_s=8.0)
    t.started(A, now=0.0)
    assert t.deliver() is None and t.wait_reason(1.0) == "tool look_up_order running for 1.0 s"
    assert t.finished("call_a", '{"ok":true}', "ok") is not None
    assert t.wait_reason(2.0) == ""  # the tool is done: the caller waits on nothing now
    delivery = t.deliver()
    assert delivery is not None and delivery.ask
    assert [(r.call_id, r.output) for r in delivery.results] == [("call_a", '{"ok":true}')]
    assert t.deliver() is None and not t.waiting()


def test_one_turns_answer_waits_for_its_slowest_call() -> None:
    t = ToolTracker(timeout_s=8.0)
    t.started(A, 0.0)
    t.started(B, 0.0)
    t.finished("call_b", "{}", "ok")
    first = t.deliver()
    assert first is not None and not first.ask and t.running() == ("look_up_order",)
    t.finished("call_a", "{}", "ok")
    second = t.deliver()
    assert second is not None and second.ask


def test_a_result_nobody_waits_for_is_refused() -> None:
    t = ToolTracker(timeout_s=8.0)
    assert t.finished("call_x", "{}", "ok") is None
    t.started(A, 0.0)
    t.finished("call_a", "{}", "ok")
    assert t.finished("call_a", "{}", "ok") is None  # a second result for the same call


def test_a_call_whose_runner_never_reports_is_given_up_after_the_timeout() -> None:
    t = ToolTracker(timeout_s=8.0)
    t.started(A, now=10.0)
    assert t.next_deadline() == 10.0 + 8.0 + TIMEOUT_GRACE_S
    assert t.tick(10.0 + 8.0) == []
    [result] = t.tick(10.0 + 8.0 + TIMEOUT_GRACE_S)
    assert result.outcome == "timeout" and json.loads(result.output)["ok"] is False
    assert t.next_deadline() is None and t.deliver() is not None


def test_clear_forgets_the_calls_of_a_lost_session() -> None:
    t = ToolTracker(timeout_s=8.0)
    t.started(A, 0.0)
    t.clear()
    assert t.finished("call_a", "{}", "ok") is None and not t.waiting()
