"""Call control through the cascade, for the e2e tests: the offline Twilio of
testing/callctl.py (the REST stand-in, the emulator as its media party, signed requests)
around a server with AGENT_BACKEND=cascade and its own three stand-ins.

Layer: testing.

The chat stand-in calls a tool when the caller's words name it (each job's canned
transcript does) and answers a tool's result by quoting it, so each job is about one
tool, or the keypad. A job's `Done.extra` holds what the stand-ins saw: "chat" (every
chat request, its history), "spoken" (every text the voice rendered, by context). The
jobs run at once with the other call-control calls (`run_calls`).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from mediasrv.emulator.script import CallerScript
from mediasrv.testing.callctl import (
    SALES,
    Done,
    Job,
    SlowWebhook,
    inbound,
    keypad_script,
    speech,
)
from mediasrv.testing.cascade import StandIns, start_standins
from mediasrv.testing.harness import BackendPool, LogCapture

END_CALL_WORDS = "please end call now"
TRANSFER_WORDS = "transfer call to sales please"
ORDER_WORDS = "look up order one two"


def cascade_call(backends: BackendPool, logs: LogCapture, script: CallerScript,
                 transcript: str, **settings: Any) -> Done:
    """Place one call in to a cascade server whose recogniser hears `transcript`."""
    with ExitStack() as stack:
        env, chat, tts = start_standins(stack, StandIns(transcripts=(transcript,)))
        done = inbound(backends, logs, script, env=env, **settings)
        done.extra["chat"] = chat.stats()["records"].get("requests", [])
        done.extra["spoken"] = tts.stats()["records"].get("generated", [])
    return done


def webhook_call(backends: BackendPool, logs: LogCapture) -> Done:
    hook = SlowWebhook()
    try:
        done = cascade_call(backends, logs, speech(), ORDER_WORDS,
                            tools_file=hook.tools(order_type="string"))
    finally:
        hook.stop()
    done.extra["bodies"] = hook.bodies
    return done


def cascade_jobs(backends: BackendPool) -> dict[str, Job]:
    """Return the cascade's call-control calls by name."""
    return {
        "cascade_end_call": lambda logs: cascade_call(backends, logs, speech(),
                                                      END_CALL_WORDS),
        "cascade_transfer": lambda logs: cascade_call(backends, logs, speech(),
                                                      TRANSFER_WORDS, transfer_numbers=(SALES,)),
        "cascade_webhook": lambda logs: webhook_call(backends, logs),
        "cascade_keypad": lambda logs: cascade_call(backends, logs, keypad_script(), "unused"),
    }


def line_of(done: Done, starts: str) -> tuple[str, list[str]]:
    """Return the item whose spoken text starts with `starts`, and its renderings."""
    spoken: list[dict[str, str]] = done.extra["spoken"]
    [context] = {g["context"] for g in spoken if g["text"].strip().startswith(starts)}
    return (context.replace("ctx_", "cascade_item_"),
            [g["text"] for g in spoken if g["context"] == context])
