"""The spoken exits: end-call and transfer state machines. Pure: `now` moves in the test."""

from __future__ import annotations

import json

from mediasrv.callctl.exits import (
    SPEAK_MAX_S,
    STOP_WAIT_S,
    CloseStream,
    EndCallExit,
    ExitState,
    HangUp,
    Resume,
    SendTransfer,
    TransferExit,
)
from mediasrv.callctl.tools_file import TransferTarget

SALES = TransferTarget("+15551230001", "sales")


def transfer_sent(now: float = 0.0) -> TransferExit:
    exit_ = TransferExit(SALES, now)
    assert isinstance(exit_.line_heard(now + 2.0), SendTransfer)
    return exit_


def test_end_call_hangs_up_only_once_the_goodbye_was_heard() -> None:
    exit_ = EndCallExit("caller said bye", now=0.0)
    assert exit_.state is ExitState.SPEAKING
    assert exit_.tick(5.0) is None
    action = exit_.line_heard(3.0)
    assert isinstance(action, HangUp) and "goodbye heard" in action.reason
    assert exit_.state is ExitState.HANGING_UP


def test_end_call_hangs_up_when_the_goodbye_is_never_confirmed_heard() -> None:
    exit_ = EndCallExit("", now=10.0)
    assert exit_.next_deadline() == 10.0 + SPEAK_MAX_S
    action = exit_.tick(10.0 + SPEAK_MAX_S)
    assert isinstance(action, HangUp) and "not confirmed heard" in action.reason


def test_a_second_heard_signal_does_not_hang_up_twice() -> None:
    exit_ = EndCallExit("", now=0.0)
    exit_.line_heard(1.0)
    assert exit_.line_heard(2.0) is None


def test_transfer_sends_the_update_once_the_handover_line_was_heard() -> None:
    exit_ = TransferExit(SALES, now=0.0)
    assert exit_.tick(1.0) is None
    assert exit_.line_heard(2.0) == SendTransfer(SALES)
    assert exit_.state is ExitState.UPDATING


def test_stop_after_a_successful_update_is_a_transfer_not_a_hang_up() -> None:
    exit_ = transfer_sent()
    assert exit_.update_done(True, "", now=2.5) is None
    assert exit_.state is ExitState.AWAITING_STOP
    assert exit_.stream_stopped() == "transferred to sales (+15551230001)"
    assert exit_.transferred


def test_stop_arriving_before_the_update_returns_is_a_transfer_too() -> None:
    exit_ = transfer_sent()
    assert exit_.stream_stopped().startswith("transferred")
    assert exit_.update_done(True, "", now=3.0) is None
    assert exit_.transferred


def test_a_failed_update_resumes_the_call_and_tells_the_model() -> None:
    exit_ = transfer_sent()
    action = exit_.update_done(False, "HTTP 503", now=3.0)
    assert isinstance(action, Resume) and "HTTP 503" in action.reason
    assert json.loads(action.output)["ok"] is False
    assert exit_.state is ExitState.FAILED


def test_stop_during_the_handover_line_is_the_caller_hanging_up() -> None:
    exit_ = TransferExit(SALES, now=0.0)
    assert exit_.stream_stopped() == "caller hung up before the transfer"
    assert not exit_.transferred


def test_no_stop_after_the_update_closes_our_end_without_a_rest_hang_up() -> None:
    exit_ = transfer_sent()
    exit_.update_done(True, "", now=3.0)
    assert exit_.tick(3.0 + STOP_WAIT_S - 0.01) is None
    action = exit_.tick(3.0 + STOP_WAIT_S)
    assert isinstance(action, CloseStream) and "no stop" in action.reason
    assert exit_.transferred


def test_a_handover_line_never_confirmed_heard_still_transfers_with_a_note() -> None:
    exit_ = TransferExit(SALES, now=0.0)
    action = exit_.tick(SPEAK_MAX_S)
    assert isinstance(action, SendTransfer) and "not confirmed heard" in action.note


def test_the_line_counts_as_heard_only_once_asked_for_and_the_ai_is_idle() -> None:
    exit_ = EndCallExit("", now=0.0)
    assert exit_.observe(1.0, ai_busy=False) is None  # not asked for yet: nothing said
    exit_.line_requested()
    assert exit_.observe(1.5, ai_busy=True) is None
    action = exit_.observe(4.0, ai_busy=False)
    assert isinstance(action, HangUp) and "goodbye heard" in action.reason
