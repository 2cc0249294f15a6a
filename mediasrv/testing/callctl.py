"""Call-control calls through a whole offline Twilio, for the e2e tests and the demo.

Layer: testing.

    with BackendPool() as backends, LogCapture() as logs:
        done = run_calls(call_jobs(backends, folder, place), logs, ["transfer"])["transfer"]
        done.end_reason, done.party, done.twilio, done.record.tool_calls

Each job places one call in its own `TwilioWorld` (the REST stand-in, the emulator as
its media party, the real server with the REST API on) against a recording local
backend whose tool plan makes the model call what the job is about, and returns a
`Done`: what the phone heard and was sent, what the stand-in was asked and knows of the
call, what the backend session received, the server's lines for the call. Jobs run at
once (`run_calls`), so a set of them takes as long as its longest call.
tests/test_e2e_callctl.py judges them; scripts/callctl_demo.py prints them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediasrv.callctl.tools_file import TransferTarget, parse_tools
from mediasrv.emulator.metrics import CallResult
from mediasrv.emulator.scenarios import AUDIO_DIR
from mediasrv.emulator.script import CallerScript, Placement
from mediasrv.localbackend.options import SessionRecord
from mediasrv.localservices.httpserve import HttpRequest, HttpResponse, LoopbackHttpServer
from mediasrv.localservices.twilio_rest_records import Callee
from mediasrv.testing.harness import BackendPool, LogCapture, LogLine
from mediasrv.testing.world import SERVER_NUMBER, TwilioWorld, silent_callee
from mediasrv.web.settings import Settings

# Places an outbound call: (settings, to, from, amd) -> call sid (scripts/call.py's way).
Place = Callable[[Settings, str, str, bool], str]
Job = Callable[[LogCapture], "Done"]

CALLER = AUDIO_DIR / "speech" / "en_espeak_caller.wav"  # 2.8 s, said after the 5.5 s greeting
SALES = TransferTarget("+15551230001", "sales")
HUMAN, MACHINE = "+15550000001", "+15550000002"
CALL_S = 40.0  # bound on one call of this module
WEBHOOK_DELAY_S = 3.0  # the slow tool: longer than the 2 s of silence before the filler


@dataclass
class Done:
    """One finished call, as seen from outside the server."""

    result: CallResult
    lines: list[LogLine]
    twilio: dict[str, Any]  # what the REST stand-in knows of the call
    requests: list[dict[str, Any]]  # REST requests the server made, about this call
    record: SessionRecord | None  # what the backend session of the call received
    party: list[tuple[str, str]]  # what the stand-in asked the media party: (what, detail)
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self, text: str) -> list[str]:
        return [x.message for x in self.lines if text in x.message]

    @property
    def end_reason(self) -> str:
        [line] = self.log("call ended: reason=")
        return line.split("reason=", 1)[1].split(" duration=")[0]

    def why(self) -> str:
        return "\n".join([str(self.result.summary()["hangup"]), *self.log("")[-40:]])


def speech(at: float = 7.0, duration: float = 25.0, **kw: Any) -> CallerScript:
    return CallerScript.build([Placement(CALLER, at)], duration=duration, **kw)


def finish(world: TwilioWorld, backends: BackendPool, logs: LogCapture, sid: str,
           result: CallResult, **extra: Any) -> Done:
    assert logs.wait_call_ended(sid, 10.0), f"{sid}: the server never logged the call's end"
    items = [m.name.split(":")[1] for m in result.server_marks if m.name.count(":") >= 2]
    requests = [r for r in world.rest.stats()["records"].get("requests", [])
                if r["sid"] == sid]
    return Done(result, logs.for_call(sid), world.rest.call(sid), requests,
                backends.record_for(items),
                [(w, d) for s, w, d in world.party.events if s == sid], extra)


def inbound(backends: BackendPool, logs: LogCapture, script: CallerScript,
            backend: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
            **settings: Any) -> Done:
    """Place one call in to the server of its own world; return it once it has ended."""
    with TwilioWorld(backends.url_with(**(backend or {})), silence_timeout_s=60.0,
                     **settings) as world:
        call = world.inbound(script, **(options or {}))
        return finish(world, backends, logs, call.call_sid, call.run(CALL_S))


def outbound(backends: BackendPool, logs: LogCapture, callee: Callee, place: Place) -> Done:
    """Place one call out through the REST API (AMD on); return it once it has ended."""
    numbers = {HUMAN: callee, MACHINE: callee}
    with TwilioWorld(backends.url_with(), numbers=numbers,
                     callee=silent_callee(15.0), silence_timeout_s=60.0) as world:
        to = HUMAN if callee.answered_by == "human" else MACHINE
        sid = place(world.settings, to, SERVER_NUMBER, True)
        call = world.party.call(sid, CALL_S)
        assert call is not None, f"{sid}: no stream was opened"
        assert call.wait(CALL_S)
        return finish(world, backends, logs, sid, call.result())


class SlowWebhook:
    """A user's tool: answers the order lookup after WEBHOOK_DELAY_S."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.server = LoopbackHttpServer("test-webhook", self._handle).start()

    def _handle(self, request: HttpRequest) -> HttpResponse:
        self.bodies.append(json.loads(request.body))
        self._stop.wait(WEBHOOK_DELAY_S)
        return HttpResponse(200, b'{"status": "shipped"}')

    def tools(self, order_type: str = "integer") -> Any:
        """Return the TOOLS_FILE tools; `order_type` "string" for a model that quotes the
        caller's words (the chat stand-in fills string arguments only)."""
        return parse_tools(json.dumps({"tools": [{
            "name": "look_up_order", "description": "Find an order by its number.",
            "parameters": {"type": "object", "properties": {"order": {"type": order_type}},
                           "required": ["order"]},
            "url": f"{self.server.url}/order"}]}))

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()


def webhook_call(backends: BackendPool, logs: LogCapture) -> Done:
    hook = SlowWebhook()
    try:
        done = inbound(backends, logs, speech(),
                       {"tool_plan": ((1, "look_up_order", '{"order": 1234}'),)},
                       tools_file=hook.tools())
    finally:
        hook.stop()
    done.extra["bodies"] = hook.bodies
    return done


def recorded_call(backends: BackendPool, logs: LogCapture, folder: Path) -> Done:
    done = inbound(backends, logs, speech(),
                   {"tool_plan": ((1, "end_call", '{"reason": "the caller is done"}'),)},
                   record_calls=True, recordings_dir=str(folder), twilio_recording="dual")
    done.extra["folder"] = folder
    return done


def keypad_script() -> CallerScript:
    """Return a caller who keys 1 2 3 4 # after the greeting and says nothing."""
    return CallerScript.build([], duration=14.0, keys=[(7.0, "1"), (7.3, "2"), (7.6, "3"),
                                                       (7.9, "4"), (8.2, "#")])


def call_jobs(backends: BackendPool, folder: Path, place: Place) -> dict[str, Job]:
    """Return the calls of call control by name; `folder` takes the recordings."""
    return {
        "transfer": lambda logs: inbound(
            backends, logs, speech(), {"tool_plan": ((1, "transfer_call", '{"to": "sales"}'),)},
            transfer_numbers=(SALES,)),
        "end_call": lambda logs: recorded_call(backends, logs, folder),
        "webhook": lambda logs: webhook_call(backends, logs),
        "keypad": lambda logs: inbound(backends, logs, keypad_script()),
        "dtmf_barge_in": lambda logs: inbound(backends, logs, CallerScript.build(
            [], duration=8.0, keys=[(2.0, "5")]), dtmf_barge_in=True),
        "prewarm": lambda logs: inbound(
            backends, logs, CallerScript.build([], duration=4.0),
            {"handshake_delay_s": 1.0}, {"stream_delay_s": 1.5}),
        "outbound_human": lambda logs: outbound(
            backends, logs, Callee("human", ring_s=0.2, amd_s=1.0), place),
        "outbound_machine": lambda logs: outbound(
            backends, logs, Callee("machine_end_beep", ring_s=0.2, amd_s=2.0), place),
    }


def run_calls(jobs: dict[str, Job], logs: LogCapture,
              names: Sequence[str] | None = None) -> dict[str, Done]:
    """Run the named jobs (all by default) at once; return their calls by name."""
    chosen = {n: jobs[n] for n in (names or list(jobs))}
    with ThreadPoolExecutor(len(chosen)) as pool:
        futures = {name: pool.submit(job, logs) for name, job in chosen.items()}
        return {name: future.result() for name, future in futures.items()}
