"""SIGTERM under gunicorn: no new calls, active calls finish, then goodbye and hang-up.

A real `gunicorn -c gunicorn.conf.py` subprocess (local backend) and emulated Twilio calls.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soak import server  # noqa: E402

from mediasrv.sim.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.sim.script import CallerScript  # noqa: E402


def silence(seconds: float) -> CallerScript:
    return CallerScript(bytes([0xFF]) * int(seconds * 8000))


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse the server's output: with LOG_FORMAT=json every line, gunicorn's too, is JSON."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_active(srv: Any, n: int, bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while srv.get("/healthz")["active_calls"] != n:
        assert time.monotonic() < deadline, f"never {n} active calls"
        time.sleep(0.05)


class Background:
    """Run an emulated call on a plain thread; `result()` waits with a bound."""

    def __init__(self, base: str, seconds: float) -> None:
        self.call = EmulatedCall(base, silence(seconds), CallOptions(close_grace=1.0))
        self.thread = threading.Thread(target=self.call.run, args=(seconds + 15.0,),
                                       name="test-call")
        self.thread.start()

    def result(self, bound: float = 20.0) -> dict[str, Any]:
        self.thread.join(bound)
        assert not self.thread.is_alive()
        return self.call.result().summary()  # type: ignore[no-any-return]


ENV = {"GREETING": "", "SILENCE_TIMEOUT_S": "3600", "LOG_FORMAT": "json"}


def test_sigterm_lets_calls_finish_then_says_goodbye_and_hangs_up() -> None:
    env = {**ENV, "GRACEFUL_TIMEOUT_S": "8", "SHUTDOWN_GOODBYE_S": "5"}
    with server(env) as srv:
        long_call = Background(srv.base, 30.0)
        short_call = Background(srv.base, 1.5)  # hangs up by itself during the grace
        wait_active(srv, 2)
        srv.sigterm()
        late = EmulatedCall(srv.base, silence(1.0), CallOptions(connect_timeout=2.0))
        assert late.start() is False  # refused: busy, or nobody accepts any more
        short = short_call.result()
        long = long_call.result()
        assert srv.proc is not None
        assert srv.proc.wait(10.0) == 0
        lines = json_lines(srv.log())
    assert short["hangup"]["by"] == "caller"
    assert long["hangup"]["by"] == "server"
    heard_ms = sum(long["heard_ms_per_item"].values())
    assert heard_ms > 1500  # the goodbye prompt (2.2 s) was played before the hang-up
    by_call = [ln for ln in lines if ln["call_sid"] == long_call.call.call_sid]
    msgs = [ln["msg"] for ln in by_call]
    assert any("shutdown: saying goodbye" in m for m in msgs)
    [ended] = [m for m in msgs if "call ended:" in m]
    assert "reason=server shutting down" in ended
    short_ended = [ln["msg"] for ln in lines
                   if ln["call_sid"] == short_call.call.call_sid and "call ended:" in ln["msg"]]
    assert short_ended and "reason=caller hung up (stop)" in short_ended[0]
    assert any("shutdown: draining" in ln["msg"] for ln in lines)
    assert not any("call cut" in ln["msg"] for ln in lines)
    assert any(ln["logger"] == "gunicorn.error" for ln in lines)  # gunicorn's own, as JSON


def test_call_whose_goodbye_cannot_finish_is_ended_with_a_log_line() -> None:
    env = {**ENV, "GRACEFUL_TIMEOUT_S": "3", "SHUTDOWN_GOODBYE_S": "1.5"}
    with server(env) as srv:
        call = Background(srv.base, 30.0)
        wait_active(srv, 1)
        srv.sigterm()
        summary = call.result()
        assert srv.proc is not None
        assert srv.proc.wait(10.0) == 0
        lines = json_lines(srv.log())
    assert summary["hangup"]["by"] == "server"
    msgs = [ln["msg"] for ln in lines if ln["call_sid"] == call.call.call_sid]
    assert any("goodbye not finished in the grace period" in m for m in msgs)
    [ended] = [m for m in msgs if "call ended:" in m]
    assert "reason=server shutdown (grace period over)" in ended
