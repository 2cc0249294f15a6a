"""A backend that never answers: the caller hears "one moment" after 2 s of dead air, while
the connection is retried, then the apology, then the server hangs up once it is heard.

The real app on loopback, the built-in backend with an injected fault, the Twilio emulator.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hardening_live import backend, connector, live_server, settings

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.script import CallerScript

CONNECT_S = 4.0  # 2 s above the dead-air limit: "one moment" must come before it fails


def silent_call(base: str, seconds: float = 30.0) -> dict[str, Any]:
    script = CallerScript(bytes([0xFF]) * int(seconds * 8000))
    call = EmulatedCall(base, script, CallOptions(close_grace=1.0))
    return call.run(timeout=seconds + 10.0).summary()  # type: ignore[no-any-return]


def prompts_heard(summary: dict[str, Any]) -> list[str]:
    """Return the local prompts the caller heard, in order, by name."""
    return [rid.removeprefix("local_").rsplit("_", 1)[0] for rid in summary["response_ids"]]


def first_index(messages: list[str], text: str) -> int:
    return next(i for i, m in enumerate(messages) if text in m)


def test_handshake_never_answered_one_moment_then_apology_then_hang_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="no_handshake") as mute:
        s = settings(greeting="Hello", openai_connect_timeout_s=CONNECT_S)
        with live_server(s, connector(mute, CONNECT_S)) as live:
            summary = silent_call(live.base)
    assert summary["hangup"]["by"] == "server"
    assert prompts_heard(summary) == ["one_moment", "apology"]
    assert max(summary["heard_ms_per_item"].values()) >= 5000  # the whole apology
    messages = [r.getMessage() for r in caplog.records]
    dead_air = first_index(messages, "[DEAD_AIR]")
    held = first_index(messages, "local prompt one_moment")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
              and "cannot connect" in r.getMessage()]
    assert len(errors) == 1  # host, reason and hint once, not once per attempt
    assert f"no answer within {CONNECT_S:g} s (OPENAI_CONNECT_TIMEOUT_S" in errors[0]
    assert dead_air < held < messages.index(errors[0])  # heard while the connect still ran
    assert any("[BACKEND] hang_up (backend unavailable)" in m for m in messages)
    assert not any("[SILENCE]" in m for m in messages)


def test_response_never_answered_one_moment_then_apology_then_hang_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediasrv")
    with backend(fault="stall_mid_response", fault_after_deltas=0) as mute:
        s = settings(greeting="Hello", openai_stall_timeout_s=CONNECT_S)
        with live_server(s, connector(mute)) as live:
            summary = silent_call(live.base)
        assert mute.stats()["sessions_opened"] == 2  # one retry, the greeting asked again
    assert summary["hangup"]["by"] == "server"
    assert prompts_heard(summary) == ["one_moment", "apology"]
    messages = [r.getMessage() for r in caplog.records]
    held = first_index(messages, "local prompt one_moment")
    assert first_index(messages, "[DEAD_AIR]") < held
    assert held < first_index(messages, "[BACKEND] connection lost: stalled")
    assert any("call ended: reason=backend unavailable" in m for m in messages)
