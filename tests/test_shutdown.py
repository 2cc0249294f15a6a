"""SIGTERM or Ctrl-C under gunicorn: no new calls, active calls finish, then goodbye and
hang-up; a second Ctrl-C ends them at once. Every line says what really happens, once.

A real `gunicorn -c gunicorn.conf.py` subprocess (local backend) and emulated Twilio calls.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soak import server  # noqa: E402

from mediasrv.clock import FakeClock  # noqa: E402
from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.script import CallerScript  # noqa: E402
from mediasrv.web.shutdown import Shutdown  # noqa: E402


def silence(seconds: float) -> CallerScript:
    return CallerScript(bytes([0xFF]) * int(seconds * 8000))


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse the server's output: with LOG_FORMAT=json every line, gunicorn's too, is JSON."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ctrl_c(srv: Any) -> None:
    """Do what a terminal does on Ctrl-C: SIGINT to the master and to its worker."""
    worker = srv.worker()
    os.kill(srv.proc.pid, signal.SIGINT)
    if worker is not None:
        os.kill(worker.pid, signal.SIGINT)


def wait_logged(srv: Any, text: str, bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while text not in srv.log():
        assert time.monotonic() < deadline, f"never logged: {text}"
        time.sleep(0.05)


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
        # The worker must have taken the signal before a call can be refused for it
        # (placed at once, under load the call raced the signal handler and got in).
        wait_logged(srv, "shutdown: no new calls")
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
    assert any("shutdown: no new calls; waiting up to 8 s for 2 active call(s)" in ln["msg"]
               for ln in lines)
    assert not any("call cut" in ln["msg"] for ln in lines)


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
    cuts = [m for m in msgs if "call cut" in m]
    assert len(cuts) == 1 and "goodbye not finished in the grace period" in cuts[0]
    [ended] = [m for m in msgs if "call ended:" in m]
    assert "reason=server shutdown (grace period over)" in ended


def test_first_ctrl_c_waits_for_calls_and_says_so_the_second_ends_them_at_once() -> None:
    with server(ENV) as srv:
        call = Background(srv.base, 30.0)
        wait_active(srv, 1)
        ctrl_c(srv)
        wait_logged(srv, "Ctrl-C again")
        ctrl_c(srv)
        assert srv.proc is not None
        assert srv.proc.wait(10.0) == 0
        summary = call.result()
        lines = json_lines(srv.log())
    assert summary["hangup"]["by"] == "server"
    msgs = [ln["msg"] for ln in lines]
    said = msgs.index(next(m for m in msgs if "Ctrl-C again" in m))
    assert "waiting up to 30 s for 1 active call(s) (goodbye in 20 s)" in msgs[said]
    mine = [(i, m) for i, m in enumerate(msgs) if call.call.call_sid in m]
    cuts = [m for _, m in mine if "call cut" in m]
    assert len(cuts) == 1 and "forced shutdown" in cuts[0]  # once, not per hook
    [(ended_at, ended)] = [(i, m) for i, m in mine if "call ended:" in m]
    assert ended_at > said  # the first Ctrl-C let it go on
    assert "reason=server stopped: forced shutdown" in ended
    assert any(ln["logger"] == "gunicorn.error" for ln in lines)  # gunicorn's lines, as JSON


def test_one_ctrl_c_lets_the_call_finish_then_exits() -> None:
    with server(ENV) as srv:
        call = Background(srv.base, 3.0)
        wait_active(srv, 1)
        ctrl_c(srv)
        summary = call.result()
        assert srv.proc is not None
        assert srv.proc.wait(10.0) == 0
        lines = json_lines(srv.log())
    assert summary["hangup"]["by"] == "caller"
    msgs = [ln["msg"] for ln in lines]
    assert any("waiting up to 30 s for 1 active call(s)" in m for m in msgs)
    assert any("reason=caller hung up (stop)" in m for m in msgs)
    assert not any("call cut" in m or "immediate exit" in m for m in msgs)


class FakeCall:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended: list[str] = []
        self.log = self

    def error(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    def end(self, reason: str) -> None:
        self.ended.append(reason)


class FakeRegistry:
    def __init__(self, calls: list[FakeCall]) -> None:
        self.draining = threading.Event()
        self.calls = calls

    def active(self) -> list[Any]:
        return list(self.calls)


def test_a_forced_stop_ends_every_call_with_one_line_whatever_hook_reports_after() -> None:
    calls = [FakeCall(), FakeCall()]
    registry = FakeRegistry(calls)
    shutdown = Shutdown(registry, FakeClock(), grace_s=30.0, goodbye_s=10.0)
    shutdown.force()
    shutdown.force()  # the master's SIGQUIT after the terminal's SIGINT
    shutdown.report_exit("worker interrupted (SIGINT/SIGQUIT): immediate exit")  # worker_int
    shutdown.report_exit("worker exiting at the end of the grace period")  # worker_exit
    assert registry.draining.is_set()
    for call in calls:
        assert call.lines == ["call cut: forced shutdown (second Ctrl-C or SIGQUIT)"]
        assert call.ended == ["server stopped: forced shutdown (second Ctrl-C or SIGQUIT)"]
