"""Call control inside a call, on fakes: tools, the spoken exits, the keypad.

Thread-level: fake Twilio and Realtime sockets, a manual clock, a fake tool runner and
fake REST actions through CallDeps. Every "nothing was sent" is asserted after a barrier.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fakes import WAIT, Harness, running_call

from mediasrv.callctl.tools import END_CALL_ACCEPTED, TRANSFER_ACCEPTED, RunWebhook, ToolRegistry
from mediasrv.callctl.tools_file import TransferTarget, parse_tools
from mediasrv.callctl.webhook import ToolResult

SID = "CA00000001"
SALES = TransferTarget("+15551230001", "sales")
ORDER = parse_tools(json.dumps({"tools": [{
    "name": "look_up_order", "description": "Find an order by its number.",
    "parameters": {"type": "object", "properties": {"order": {"type": "integer"}},
                   "required": ["order"]},
    "url": "https://tools.example.com/order"}]}))
PROMPTS = {"one_moment": b"\xff" * 800}  # 100 ms: the filler
SPEECH_STARTED = {"type": "input_audio_buffer.speech_started", "item_id": "u1",
                  "audio_start_ms": 5000}


class FakeRunner:
    """Records the webhooks the call starts; the test decides when each one answers."""

    def __init__(self, call_sid: str, timeout_s: float,
                 on_result: Callable[[ToolResult], None]) -> None:
        self.on_result = on_result
        self.runs: queue.Queue[RunWebhook] = queue.Queue()

    def run(self, decision: RunWebhook) -> None:
        self.runs.put(decision)

    def close(self, timeout: float = 2.0) -> None:
        pass

    def answer(self, decision: RunWebhook, output: str) -> None:
        self.on_result(ToolResult(decision.call_id, decision.tool.name, output, "ok", 0.5))


class Runners:
    def __init__(self) -> None:
        self.made: queue.Queue[FakeRunner] = queue.Queue()

    def __call__(self, call_sid: str, timeout_s: float,
                 on_result: Callable[[ToolResult], None]) -> FakeRunner:
        runner = FakeRunner(call_sid, timeout_s, on_result)
        self.made.put(runner)
        return runner


def call_tool(h: Harness, name: str, arguments: str, rid: str = "resp_t",
              call_id: str = "call_1") -> None:
    """Play the backend's side of a model turn that only calls `name`."""
    item = {"id": f"item_{call_id}", "type": "function_call", "call_id": call_id,
            "name": name, "arguments": arguments, "status": "completed"}
    h.rt.emit({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
    h.rt.emit({"type": "response.output_item.done", "response_id": rid, "item": item})
    h.rt.emit({"type": "response.done", "response": {"id": rid, "status": "completed",
                                                     "output": [item]}})


@contextmanager
def order_looked_up(**deps: Any) -> Iterator[tuple[Harness, FakeRunner, RunWebhook]]:
    """A call whose model has just called the webhook tool look_up_order(1234)."""
    runners = Runners()
    with running_call({"tools": ToolRegistry(webhooks=ORDER), "tool_runner": runners,
                       **deps}) as h:
        runner = runners.made.get(timeout=WAIT)
        call_tool(h, "look_up_order", '{"order": 1234}')
        yield h, runner, runner.runs.get(timeout=WAIT)


def tool_output(h: Harness) -> dict[str, Any]:
    item: dict[str, Any] = h.rt.expect("conversation.item.create")["item"]
    assert item["type"] == "function_call_output"
    return item


def purpose(h: Harness) -> str:
    return str(h.rt.expect("response.create")["response"]["metadata"]["purpose"])


def echo_marks_until_end(h: Harness) -> None:
    """Echo every mark sent (round-trip probes too) up to an item's end mark: heard."""
    while True:
        name = h.twilio.expect("mark")["mark"]["name"]
        h.echo_mark(name)
        if name.endswith(":end"):
            return


def play_heard(h: Harness, rid: str, item: str, ms: int) -> None:
    """The backend says `ms` of a response; the tx loop plays it; Twilio echoes its marks."""
    h.respond(rid, item, ms=ms)
    h.twilio.expect("media")
    h.tick(ms // 20 - 1)
    echo_marks_until_end(h)


def dtmf(h: Harness, digit: str) -> None:
    """The caller presses a key; returns once the call has taken it (at the clock's now)."""
    h.twilio.push({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "9",
                   "dtmf": {"track": "inbound_track", "digit": digit}})
    h.twilio.sync()


def test_end_call_says_goodbye_and_hangs_up_only_once_it_was_heard() -> None:
    hung_up: list[str] = []
    with running_call({"tools": ToolRegistry(), "hang_up": hung_up.append}) as h:
        call_tool(h, "end_call", '{"reason":"the caller is done"}')
        assert tool_output(h) == {"type": "function_call_output", "call_id": "call_1",
                                  "output": END_CALL_ACCEPTED}
        assert purpose(h) == "after_tool"
        h.respond("resp_bye", "item_bye", ms=100)
        h.twilio.expect("media")
        h.tick(4)
        h.sync()
        assert not h.call.closing.is_set()  # played, but no mark says it was heard
        echo_marks_until_end(h)
        assert h.call.closing.wait(WAIT)
    assert hung_up == [SID]  # the REST hang-up after the socket close
    assert h.call.end_reason.startswith("end_call (the caller is done): goodbye heard")


def test_a_transfer_is_sent_after_the_handover_line_and_its_stop_is_no_hang_up() -> None:
    hung_up: list[str] = []
    transfers: queue.Queue[tuple[str, TransferTarget]] = queue.Queue()
    deps = {"tools": ToolRegistry((SALES,)), "hang_up": hung_up.append,
            "transfer": lambda sid, target: transfers.put((sid, target))}
    with running_call(deps) as h:
        call_tool(h, "transfer_call", '{"to": "sales"}')
        assert tool_output(h)["output"] == TRANSFER_ACCEPTED
        assert purpose(h) == "after_tool"
        h.sync()
        assert transfers.empty()  # not before the handover line was heard
        play_heard(h, "resp_line", "item_line", 100)
        assert transfers.get(timeout=WAIT) == (SID, SALES)
        h.twilio.push({"event": "stop", "streamSid": "MZ1", "sequenceNumber": "20",
                       "stop": {"accountSid": "AC1", "callSid": SID}})
        assert h.call.closing.wait(WAIT)
    assert h.call.end_reason == "transferred to sales (+15551230001)"
    assert hung_up == []  # Twilio's stop after a transfer is never answered with completed


def test_a_failed_transfer_update_lets_the_model_tell_the_caller() -> None:
    def refuse(sid: str, target: TransferTarget) -> None:
        raise OSError("connection refused")

    with running_call({"tools": ToolRegistry((SALES,)), "transfer": refuse}) as h:
        call_tool(h, "transfer_call", '{"to": "sales"}')
        tool_output(h)
        assert purpose(h) == "after_tool"
        play_heard(h, "resp_line", "item_line", 100)
        request = h.rt.expect("response.create")["response"]
        assert request["metadata"]["purpose"] == "transfer_failed"
        assert "could not transfer" in request["instructions"]
        h.sync()
        assert not h.call.closing.is_set()


def test_a_number_off_the_allow_list_is_refused_with_a_reason_the_model_hears() -> None:
    transfers: list[Any] = []
    deps = {"tools": ToolRegistry((SALES,)), "transfer": lambda s, t: transfers.append(t)}
    with running_call(deps) as h:
        call_tool(h, "transfer_call", '{"to": "+15559999999"}')
        error = json.loads(tool_output(h)["output"])["error"]
        assert "not an allowed transfer destination" in error and "sales" in error
        assert purpose(h) == "after_tool"
    assert transfers == []


def test_a_tool_result_waits_through_a_barge_in_and_is_given_with_one_answer() -> None:
    with order_looked_up() as (h, runner, webhook):
        assert webhook.arguments == {"order": 1234}
        h.call.request_response("answer")  # the caller spoke meanwhile: a new answer
        assert purpose(h) == "answer"
        h.respond("resp_2", "item_2", ms=1000, done=False)
        h.twilio.expect("media")
        runner.answer(webhook, '{"status":"shipped"}')  # the result comes mid-answer
        h.sync()
        assert h.rt.sent_types() == []  # held: a response is in flight
        h.rt.emit(SPEECH_STARTED)  # the caller barges in on the answer
        h.twilio.expect("clear")
        h.rt.expect("response.cancel")
        h.rt.emit({"type": "response.done", "response": {"id": "resp_2",
                                                         "status": "cancelled"}})
        assert tool_output(h)["output"] == '{"status":"shipped"}'
        assert purpose(h) == "after_tool"


def test_a_silent_wait_on_a_tool_gets_a_filler_after_two_seconds() -> None:
    with order_looked_up(prompts=PROMPTS) as (h, _, _):
        h.clock.advance(1.9)
        h.sync()
        assert "media" not in h.twilio.events_since(0)
        h.clock.advance(0.2)
        h.twilio.expect("media")  # "one moment please", in the bridge's own voice


def test_keys_are_grouped_into_one_caller_message_and_answered() -> None:
    with running_call() as h:
        for digit in "12#":
            dtmf(h, digit)
        item = h.rt.expect("conversation.item.create")["item"]
        assert item["content"] == [{"type": "input_text", "text": "The caller pressed 1 2 #"}]
        assert purpose(h) == "answer"


def test_an_entry_without_hash_ends_after_the_inter_digit_timeout() -> None:
    with running_call(dtmf_inter_digit_ms=2000) as h:
        dtmf(h, "7")
        h.clock.advance(1.9)
        h.sync()
        assert h.rt.sent_types() == []
        h.clock.advance(0.2)
        item = h.rt.expect("conversation.item.create")["item"]
        assert item["content"][0]["text"] == "The caller pressed 7"


def test_with_dtmf_barge_in_a_key_stops_the_ai() -> None:
    with running_call(dtmf_barge_in=True) as h:
        h.respond(ms=1000, done=False)
        h.twilio.expect("media")
        dtmf(h, "5")
        h.twilio.expect("clear")
        h.rt.expect("response.cancel")


def test_without_dtmf_barge_in_a_key_lets_the_ai_finish() -> None:
    with running_call() as h:
        h.respond(ms=1000, done=False)
        h.twilio.expect("media")
        dtmf(h, "5")
        h.sync()
        assert "clear" not in h.twilio.events_since(0)


def test_results_of_a_lost_session_are_dropped() -> None:
    with order_looked_up() as (h, runner, webhook):
        h.rt.close()  # the session is gone; the retry dials the same fake again
        h.rt.expect("session.update")  # the new session's
        runner.answer(webhook, '{"status":"late"}')
        h.sync()
        assert "conversation.item.create" not in h.rt.sent_types()
