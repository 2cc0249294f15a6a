"""End to end, call control: the real app, the local backend (its tool plan), the Twilio
emulator as the media party of the Twilio REST stand-in, real sockets, signed requests;
and the tools and keypad again with AGENT_BACKEND=cascade and its three stand-ins
(mediasrv.testing.cascade_callctl), whose chat model calls the tool the caller names.

The calls of this module run at once, each in its own offline Twilio world (the module
fixture `calls`), so the module takes as long as its longest call; each test then
judges one behaviour of one call from the outside: what the emulated phone heard and
was sent, what the REST stand-in was asked, what the backend received, the server's
log lines. Times are bounds on order, not speed.
"""

from __future__ import annotations

import json
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cascade_e2e import words_heard

from mediasrv.callctl.tools import END_CALL_ACCEPTED
from mediasrv.localbackend.prompts import PROMPT_TEXTS
from mediasrv.testing.callctl import SALES, Done, call_jobs, run_calls
from mediasrv.testing.cascade_callctl import cascade_jobs, line_of
from mediasrv.testing.harness import BackendPool, LogCapture
from mediasrv.testing.world import TwilioWorld
from mediasrv.web.settings import DEFAULT_VOICEMAIL, Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import call as call_script  # noqa: E402  (scripts/call.py: outbound calls as a user places them)


@pytest.fixture(scope="module")
def calls(backends: BackendPool, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, Done]]:
    folder = tmp_path_factory.mktemp("recordings")
    with LogCapture() as logs:
        yield run_calls({**call_jobs(backends, folder, place_with_script),
                         **cascade_jobs(backends)}, logs)


def place_with_script(settings: Settings, to: str, from_: str, amd: bool) -> str:
    """Place the outbound calls as a user does: scripts/call.py with its arguments."""
    args = [to, "--from", from_] + (["--amd"] if amd else [])
    return str(call_script.place(call_script.parse_args(args), settings))


# --- 1. pre-warm ------------------------------------------------------------------------


def test_the_session_opened_at_voice_is_the_one_the_stream_uses(calls: dict[str, Done]) -> None:
    done = calls["prewarm"]
    assert done.log("[PREWARM] backend session opening"), done.why()
    assert done.log("[PREWARM] claimed the session opened at /voice"), done.why()
    assert done.result.summary()["greeting"] is not None, done.why()
    assert len(done.log("realtime session.created")) == 1, done.why()  # dialled once


# --- 2. tools ---------------------------------------------------------------------------


def test_end_call_says_goodbye_then_the_server_hangs_up_and_completes_the_call(
        calls: dict[str, Done]) -> None:
    done = calls["end_call"]
    why = done.why()
    assert done.record is not None and [c[2] for c in done.record.tool_calls] == ["end_call"]
    assert done.end_reason.startswith("end_call (the caller is done): goodbye heard"), why
    bursts = done.result.bursts()
    assert len(bursts) == 2, why  # the greeting and the goodbye (the tool call is silent)
    # the server ends the call: its socket close, or Twilio's stop after its REST
    # `completed` (whichever the emulator sees first), never the caller
    assert done.result.hangup_by in ("server", "twilio"), why
    assert bursts[-1].heard_bytes / 8 >= 2000, why  # goodbye.ulaw (2.17 s) heard in full
    completes = [r for r in done.requests if r["operation"] == "calls.update"
                 and r["form"].get("Status") == ["completed"]]
    assert len(completes) == 1 and done.twilio["status"] == "completed", why


def test_a_transfer_updates_the_call_with_dial_and_its_stop_is_no_hang_up(
        calls: dict[str, Done]) -> None:
    done = calls["transfer"]
    why = done.why()
    assert done.log("[TRANSCRIPT] ai: " + PROMPT_TEXTS["one_moment"]), why  # handover line
    assert ("stop", "the call's TwiML was updated") in done.party, why
    assert ("dial", SALES.number) in done.party and done.twilio["dialed"] == [SALES.number]
    assert done.end_reason == "transferred to sales (+15551230001)", why
    assert done.result.hangup_by == "twilio", why
    assert not any(r["form"].get("Status") for r in done.requests), why  # no completed


def test_a_webhook_tools_result_reaches_the_model_with_the_call_sid_sent(
        calls: dict[str, Done]) -> None:
    done = calls["webhook"]
    assert done.record is not None, done.why()
    [(_, call_id, output)] = done.record.tool_outputs
    [(_, made_id, name, _)] = done.record.tool_calls
    assert (call_id, name, output) == (made_id, "look_up_order", '{"status":"shipped"}')
    [body] = done.extra["bodies"]
    assert body == {"call_sid": done.result.call_sid, "call_id": call_id,
                    "tool": "look_up_order", "arguments": {"order": 1234}}
    assert done.log("response") and done.log("created (after_tool)"), done.why()


def test_a_slow_tool_gets_one_moment_after_two_seconds_of_silence(
        calls: dict[str, Done]) -> None:
    done = calls["webhook"]
    assert done.log("[DEAD_AIR]") and "tool look_up_order running" in done.log(
        "[DEAD_AIR]")[0], done.why()
    assert done.log("[AI_TALK] local prompt one_moment"), done.why()


# --- 3. the keypad ----------------------------------------------------------------------


def test_keys_reach_the_model_as_one_caller_message_and_are_answered(
        calls: dict[str, Done]) -> None:
    done = calls["keypad"]
    assert done.record is not None, done.why()
    assert [text for _, text in done.record.texts] == ["The caller pressed 1 2 3 4 #"]
    assert done.log("[KEYPAD] The caller pressed 1 2 3 4 # (terminator)"), done.why()
    assert len(done.log("created (answer)")) == 1, done.why()


def test_with_dtmf_barge_in_a_key_during_the_greeting_stops_it(calls: dict[str, Done]) -> None:
    done = calls["dtmf_barge_in"]
    summary = done.result.summary()
    assert len(summary["clears"]) == 1 and summary["greeting"]["interrupted"], done.why()
    assert done.log("[BARGE-IN] trigger=dtmf"), done.why()
    assert summary["clears"][0]["heard_after_ms"] == 0.0, done.why()


# --- 4. recording -----------------------------------------------------------------------


def test_record_calls_writes_a_stereo_wav_caller_left_ai_right(calls: dict[str, Done]) -> None:
    done = calls["end_call"]
    path = done.extra["folder"] / f"{done.result.call_sid}.wav"
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    assert len(pcm) / 8000 >= 10.0

    def rms(channel: int, a: float, b: float) -> float:
        x = pcm[int(a * 8000): int(b * 8000), channel].astype(np.float64)
        return float(np.sqrt(np.mean(x * x)))

    greeting = (1.0, 5.0)  # the AI talks, the caller is silent
    caller = (7.5, 9.5)  # the caller talks, the AI is silent
    assert rms(1, *greeting) > 10 * max(rms(0, *greeting), 1.0)
    assert rms(0, *caller) > 10 * max(rms(1, *caller), 1.0)


def test_record_calls_writes_a_transcript_with_turns_tools_and_the_end(
        calls: dict[str, Done]) -> None:
    done = calls["end_call"]
    doc = json.loads((done.extra["folder"] / f"{done.result.call_sid}.json").read_text())
    assert doc["call_sid"] == done.result.call_sid and doc["end_reason"] == done.end_reason
    who = [t["who"] for t in doc["turns"]]
    assert who[:2] == ["ai", "caller"] and who[-1] == "ai", doc
    [tool] = [e for e in doc["events"] if e["kind"] == "tool"]
    assert (tool["name"], tool["result"]) == ("end_call", END_CALL_ACCEPTED), doc


def test_twilio_recording_dual_starts_twilios_own_recording(calls: dict[str, Done]) -> None:
    done = calls["end_call"]
    [create] = [r for r in done.requests if r["operation"] == "recordings.create"]
    assert create["form"]["RecordingChannels"] == ["dual"] and done.twilio["recordings"]


# --- 5. outbound calls ------------------------------------------------------------------


def test_an_outbound_call_answered_by_a_person_gets_the_agent(calls: dict[str, Done]) -> None:
    done = calls["outbound_human"]
    assert done.log("[AMD]") and "answered by human: the agent goes on" in done.log(
        "[AMD]")[0], done.why()
    assert done.result.summary()["greeting"] is not None, done.why()  # the callee heard it
    assert ("stop", "the call's TwiML was updated") not in done.party, done.why()
    assert done.result.hangup_by == "caller", done.why()


def test_an_outbound_call_answered_by_a_machine_gets_the_voicemail_then_a_hang_up(
        calls: dict[str, Done]) -> None:
    done = calls["outbound_machine"]
    why = done.why()
    assert "voicemail after the beep" in done.log("[AMD]")[0], why
    assert ("stop", "the call's TwiML was updated") in done.party, why
    assert done.twilio["said"] == [DEFAULT_VOICEMAIL] and done.twilio["status"] == "completed"
    assert done.end_reason == "voicemail left", why
    assert done.result.hangup_by == "twilio", why


# --- the same through the cascade (AGENT_BACKEND=cascade, its three stand-ins) ---------


def heard_in_full(done: Done, starts: str) -> bool:
    """Tell whether every word of the line starting `starts` was heard."""
    item, renderings = line_of(done, starts)
    heard_ms = done.result.summary()["heard_ms_per_item"].get(item, 0.0)
    every, heard = words_heard(renderings, heard_ms)
    return bool(every) and heard == every


def test_cascade_end_call_speaks_the_answer_to_its_result_then_hangs_up_once_heard(
        calls: dict[str, Done]) -> None:
    done = calls["cascade_end_call"]
    why = done.why()
    first, after = done.extra["chat"]
    assert "end_call" in [t["function"]["name"] for t in first["tools"]], why
    [call] = after["messages"][-2]["tool_calls"]
    assert after["messages"][-1] == {"role": "tool", "tool_call_id": call["id"],
                                     "content": END_CALL_ACCEPTED}, why
    assert heard_in_full(done, "The tool end_call returned"), why
    assert done.end_reason.startswith("end_call (no reason given): goodbye heard"), why
    assert done.result.hangup_by in ("server", "twilio"), why
    assert [r["form"] for r in done.requests] == [{"Status": ["completed"]}], why


def test_cascade_transfer_says_its_line_then_dials_and_its_stop_is_no_hang_up(
        calls: dict[str, Done]) -> None:
    done = calls["cascade_transfer"]
    why = done.why()
    [call] = done.extra["chat"][-1]["messages"][-2]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"to": "sales"}, why
    assert heard_in_full(done, "The tool transfer_call returned"), why
    [update] = done.requests
    [twiml] = update["form"]["Twiml"]
    assert "<Dial" in twiml and f"<Number>{SALES.number}</Number>" in twiml, why
    assert ("stop", "the call's TwiML was updated") in done.party, why
    assert done.end_reason == "transferred to sales (+15551230001)", why
    assert done.result.hangup_by == "twilio", why


def test_cascade_webhook_result_reaches_the_chat_model_and_its_answer_is_heard(
        calls: dict[str, Done]) -> None:
    done = calls["cascade_webhook"]
    why = done.why()
    [body] = done.extra["bodies"]
    assert (body["call_sid"], body["tool"]) == (done.result.call_sid, "look_up_order"), why
    assert done.extra["chat"][-1]["messages"][-1] == {
        "role": "tool", "tool_call_id": body["call_id"], "content": '{"status":"shipped"}'}
    assert heard_in_full(done, "The tool look_up_order returned"), why
    assert done.log("[AI_TALK] local prompt one_moment"), why  # the 3 s tool's filler


def test_cascade_keys_reach_the_chat_model_as_a_user_message_and_are_answered(
        calls: dict[str, Done]) -> None:
    done = calls["cascade_keypad"]
    why = done.why()
    [request] = done.extra["chat"]
    assert request["messages"][-1] == {"role": "user",
                                       "content": "The caller pressed 1 2 3 4 #"}, why
    assert heard_in_full(done, "You said:"), why


# --- 6. the offline Twilio itself -------------------------------------------------------


def test_amd_callbacks_without_a_valid_signature_are_refused(backends: BackendPool) -> None:
    with TwilioWorld(backends.url_with()) as world:
        client = world.server.app.test_client()
        answer = client.post("/amd", data={"CallSid": "CA1", "AnsweredBy": "machine_end_beep"})
    assert answer.status_code == 403
