"""Issue 9's table counts the answers the caller heard, not only the ones created: pure,
on hand-made call rows (mediasrv.testing.targets)."""

from __future__ import annotations

from typing import Any

from mediasrv.testing.targets import answers_heard_after, barge_in_cell


def caller(answers_after: int, heard_after: int) -> dict[str, Any]:
    speech = {"clear_latency_ms": 180.0, "early_clears": 0, "answers_after": answers_after,
              "answers_heard_after": heard_after, "backend_judged": False}
    return {"speech": [speech]}


def test_a_false_start_cut_by_the_continuation_is_created_but_not_heard() -> None:
    cell = barge_in_cell([caller(2, 1), caller(1, 1)])
    assert "answered once 1/2 (heard once 2/2)" in cell


def test_two_answers_heard_are_not_heard_once() -> None:
    assert "(heard once 0/1)" in barge_in_cell([caller(2, 2)])


def test_an_answer_cut_within_a_syllable_or_two_is_a_false_start() -> None:
    answers = [(1.0, 4000.0), (2.6, 230.0), (3.5, 3200.0)]  # (created at, heard ms)
    assert answers_heard_after(answers, onset=1.8) == 1  # the 230 ms one is a false start
    assert answers_heard_after(answers, onset=0.5) == 2
