"""The end-of-turn worker thread (mediasrv.call.turn_checks) with hand-written fake models.

Every wait is bounded; "did not happen" is proven by a later check that did (the worker
takes checks in order), never by waiting out a quiet window.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from timing import bound

from mediasrv.call.turn_checks import THREAD_NAME, TurnChecks
from mediasrv.clock import FakeClock
from mediasrv.policy.endturn import Floats

AUDIO = np.zeros(1600, np.float32)


class GatedModel:
    """Answers `answer` once `gate` is set; `started` tells that a check is running."""

    def __init__(self, answer: float = 0.7) -> None:
        self.answer = answer
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail_next = False

    def probability(self, audio_8k: Floats) -> float:
        self.started.set()
        assert self.gate.wait(bound(2.0)), "the test never opened the gate"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        return self.answer


class Replies:
    """Collects (label, probability, thread name) from the worker's callbacks."""

    def __init__(self) -> None:
        self.got: queue.Queue[tuple[str, float | None, str]] = queue.Queue()

    def to(self, label: str):  # type: ignore[no-untyped-def]
        def reply(probability: float | None) -> None:
            self.got.put((label, probability, threading.current_thread().name))
        return reply

    def next(self) -> tuple[str, float | None, str]:
        return self.got.get(timeout=bound(2.0))


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
def worker(model: GatedModel) -> Iterator[TurnChecks]:
    checks = TurnChecks(lambda: model, max_waiting=2, name=f"{THREAD_NAME}-test")
    yield checks
    model.gate.set()
    assert checks.stop(timeout=bound(2.0))


def test_a_check_is_answered_on_the_named_worker_thread(
    worker: TurnChecks, model: GatedModel
) -> None:
    replies = Replies()
    model.gate.set()
    assert worker.submit(AUDIO, replies.to("a"))
    assert replies.next() == ("a", 0.7, f"{THREAD_NAME}-test")


def test_a_check_beyond_the_bounded_queue_is_refused_at_once(
    worker: TurnChecks, model: GatedModel
) -> None:
    replies = Replies()
    assert worker.submit(AUDIO, replies.to("running"))
    assert model.started.wait(bound(2.0))
    assert worker.submit(AUDIO, replies.to("waits 1"))
    assert worker.submit(AUDIO, replies.to("waits 2"))
    assert not worker.submit(AUDIO, replies.to("refused"))
    assert worker.refused == 1
    model.gate.set()
    assert [replies.next()[0] for _ in range(3)] == ["running", "waits 1", "waits 2"]


def test_a_failing_check_is_answered_none_and_the_worker_goes_on(
    worker: TurnChecks, model: GatedModel, caplog: pytest.LogCaptureFixture
) -> None:
    replies = Replies()
    model.fail_next = True
    model.gate.set()
    worker.submit(AUDIO, replies.to("fails"))
    worker.submit(AUDIO, replies.to("works"))
    assert [replies.next()[:2] for _ in range(2)] == [("fails", None), ("works", 0.7)]
    assert worker.failed == 1
    assert "[TURN] end-of-turn check failed" in caplog.text


def test_a_check_of_a_call_that_ended_while_it_waited_is_not_run(
    worker: TurnChecks, model: GatedModel
) -> None:
    replies = Replies()
    ended = threading.Event()
    worker.submit(AUDIO, replies.to("running"))
    assert model.started.wait(bound(2.0))
    worker.submit(AUDIO, replies.to("of the ended call"), skip=ended)
    worker.submit(AUDIO, replies.to("later"))
    ended.set()
    model.gate.set()
    # in order: had the ended call's check been answered, it would come before "later"
    assert [replies.next()[0] for _ in range(2)] == ["running", "later"]


def test_a_check_that_waited_longer_than_its_limit_is_answered_none_unrun() -> None:
    model, clock = GatedModel(), FakeClock()
    checks = TurnChecks(lambda: model, name=f"{THREAD_NAME}-test", clock=clock)
    try:
        replies = Replies()
        checks.submit(AUDIO, replies.to("running"))
        assert model.started.wait(bound(2.0))
        checks.submit(AUDIO, replies.to("late"), max_wait_s=0.3)
        checks.submit(AUDIO, replies.to("patient"), max_wait_s=1.0)
        clock.advance(0.5)  # the model took 500 ms on the first check
        model.started.clear()
        model.gate.set()
        got = [replies.next()[:2] for _ in range(3)]
        assert got == [("running", 0.7), ("late", None), ("patient", 0.7)]
        assert checks.late == 1
    finally:
        model.gate.set()
        assert checks.stop(timeout=bound(2.0))


def test_a_bad_reply_callback_does_not_end_the_worker(
    worker: TurnChecks, model: GatedModel
) -> None:
    def explode(probability: float | None) -> None:
        raise RuntimeError("the call's callback is broken")

    replies = Replies()
    model.gate.set()
    worker.submit(AUDIO, explode)
    worker.submit(AUDIO, replies.to("after"))
    assert replies.next()[0] == "after"


def test_stop_ends_the_thread_and_later_checks_are_refused(
    worker: TurnChecks, model: GatedModel
) -> None:
    model.gate.set()
    worker.start()
    assert worker.alive
    assert worker.stop(timeout=bound(2.0))
    assert not worker.alive
    assert not worker.submit(AUDIO, Replies().to("too late"))


def test_the_model_is_built_on_the_worker_at_the_first_check() -> None:
    built: list[str] = []
    model = GatedModel()
    model.gate.set()

    def build() -> GatedModel:
        built.append(threading.current_thread().name)
        return model

    checks = TurnChecks(build, name=f"{THREAD_NAME}-test")
    try:
        assert built == []
        replies = Replies()
        checks.submit(AUDIO, replies.to("a"))
        checks.submit(AUDIO, replies.to("b"))
        assert [replies.next()[0] for _ in range(2)] == ["a", "b"]
        assert built == [f"{THREAD_NAME}-test"]  # once
    finally:
        assert checks.stop(timeout=bound(2.0))
