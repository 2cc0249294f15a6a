"""The cascade behind the seam, on real sockets against the local stand-ins: a turn
answered, a barge-in closing the chat stream, refused handshakes named and given up,
garbage dropped, every thread ended by close(). Bounded waits, no sleeps."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

import pytest

from mediasrv.audio import pcm16_to_ulaw, to_pcm16
from mediasrv.backends import base
from mediasrv.backends.cascade.actions import CascadeConfig
from mediasrv.backends.cascade.backend import CascadeBackend, Services
from mediasrv.clock import RealClock
from mediasrv.emulator.script import load_8k
from mediasrv.localservices import (
    ChatOptions,
    DeepgramOptions,
    ElevenLabsOptions,
    Fault,
    LocalChat,
    LocalDeepgram,
    LocalElevenLabs,
)
from mediasrv.localservices.chat_stream import Pace
from mediasrv.localservices.deepgram_session import SessionConfig

WAIT = 10.0
CONFIG = CascadeConfig(chat_model="local-chat", instructions="be brief", greeting="Hello!")
CALLER = "tests/audio/speech/en_espeak_caller.wav"


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue[base.BackendEvent] = queue.Queue()

    def __call__(self, ev: base.BackendEvent) -> None:
        self.q.put(ev)

    def until(self, kind: type) -> base.BackendEvent:
        """Return the next event of `kind`, skipping others (audio); fail after WAIT."""
        while True:
            ev = self.q.get(timeout=WAIT)
            if isinstance(ev, kind):
                return ev


@dataclass
class Rig:
    backend: CascadeBackend
    events: Events
    dg: LocalDeepgram
    chat: LocalChat
    tts: LocalElevenLabs


@contextmanager
def rig(dg: DeepgramOptions | None = None, chat: ChatOptions | None = None,
        tts: ElevenLabsOptions | None = None, tts_key: str = "",
        config: CascadeConfig = CONFIG) -> Iterator[Rig]:
    with ExitStack() as stack:
        d = stack.enter_context(LocalDeepgram(dg or DeepgramOptions(recognizer="canned")))
        c = stack.enter_context(LocalChat(chat))
        t = stack.enter_context(LocalElevenLabs(tts))
        d.start(), c.start(), t.start()
        services = Services(d.url, d.api_key, "nova-3", c.base_url, c.api_key, t.base_url,
                            tts_key or t.api_key, "voice1", "eleven_flash_v2_5",
                            connect_timeout_s=2.0)
        events = Events()
        backend = CascadeBackend(services, config, events, closing=threading.Event(),
                                 name="mediasrv-rt-test", clock=RealClock())
        backend.start()
        try:
            yield Rig(backend, events, d, c, t)
        finally:
            assert backend.close(WAIT) == []


def speak(backend: CascadeBackend) -> None:
    """Send one sentence and a second of silence, in appends of 100 ms."""
    audio = pcm16_to_ulaw(to_pcm16(load_8k(CALLER))) + bytes([0xFF]) * 8000
    for start in range(0, len(audio), 800):
        assert backend.append_audio(audio[start : start + 800])


def test_a_turn_is_transcribed_answered_and_spoken_back() -> None:
    with rig() as r:
        assert r.events.until(base.SessionReady) == base.SessionReady(resumed=False)
        speak(r.backend)
        assert r.backend.commit()
        assert r.backend.request_response("req_1", "answer", "")
        said = r.events.until(base.CallerTranscript)
        assert isinstance(said, base.CallerTranscript) and "order" in said.text
        created = r.events.until(base.ResponseCreated)
        delta = r.events.until(base.AudioDelta)
        assert isinstance(delta, base.AudioDelta) and delta.audio
        done = r.events.until(base.ResponseDone)
        assert isinstance(created, base.ResponseCreated) and done == base.ResponseDone(
            created.response_id, "completed", "")
        [request] = r.chat.stats()["records"]["requests"]
        assert request["messages"][-1] == {"role": "user", "content": said.text}


def test_a_barge_in_closes_the_chat_stream_and_the_voice_context() -> None:
    slow = ChatOptions(pace=Pace(ttft_s=0.05, tokens_per_s=4.0))  # still talking at the cut
    long = DeepgramOptions(recognizer="canned", canned_transcripts=(
        "please tell me all about the opening hours of the shop on weekends and holidays",))
    with rig(dg=long, chat=slow) as r:
        r.events.until(base.SessionReady)
        speak(r.backend)
        r.backend.commit()
        r.backend.request_response("req_1", "answer", "")
        created = r.events.until(base.ResponseCreated)
        assert isinstance(created, base.ResponseCreated)
        r.events.until(base.AudioDelta)
        assert r.backend.cancel(created.response_id)
        assert r.events.until(base.ResponseDone) == base.ResponseDone(
            created.response_id, "cancelled", "barge-in")
        assert r.chat.wait_for("streams_closed_by_client", timeout=WAIT)
        assert r.tts.wait_for("contexts_closed", timeout=WAIT)
        assert "streams_completed" not in r.chat.stats()["counts"]


def test_a_tool_called_over_the_wire_is_reported_and_its_result_asked_about() -> None:
    end = base.ToolSpec("end_call", "End the call.", {"type": "object", "properties": {}})
    with rig(config=replace(CONFIG, tools=(end,))) as r:
        r.events.until(base.SessionReady)
        assert r.backend.caller_text("Please end call now")  # the keypad's way in
        assert r.backend.request_response("req_1", "answer", "")
        ready = r.events.until(base.ToolCallsReady)
        assert isinstance(ready, base.ToolCallsReady)
        [call] = ready.calls
        assert (call.name, call.complete) == ("end_call", True)
        assert r.events.until(base.ResponseDone) == base.ResponseDone(
            ready.response_id, "completed", "")
        assert r.backend.tool_result(call.call_id, '{"ok": true}')
        assert r.backend.request_response("req_2", "after_tool", "")
        r.events.until(base.ResponseDone)
        first, after = r.chat.stats()["records"]["requests"]
        assert first["messages"][-1] == {"role": "user", "content": "Please end call now"}
        assert after["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id,
                                         "content": '{"ok": true}'}


def test_a_refused_handshake_is_retried_once_then_given_up_by_name() -> None:
    with rig(dg=DeepgramOptions(recognizer="canned", fault=Fault("refuse", status=503))) as r:
        first = r.events.until(base.ConnectionLost)
        assert isinstance(first, base.ConnectionLost) and first.retrying
        final = r.events.until(base.ConnectionLost)
        assert isinstance(final, base.ConnectionLost) and not final.retrying
        assert final.reason.startswith("deepgram: cannot connect to 127.0.0.1:")
        assert "HTTP 503 on the upgrade (check DEEPGRAM_URL / DEEPGRAM_API_KEY)" in final.reason
        assert not r.backend.connected


def test_a_wrong_elevenlabs_key_is_refused_at_the_handshake_and_named() -> None:
    with rig(tts_key="not-the-key") as r:
        final = r.events.until(base.ConnectionLost)
        while isinstance(final, base.ConnectionLost) and final.retrying:
            final = r.events.until(base.ConnectionLost)
        assert isinstance(final, base.ConnectionLost)
        assert "elevenlabs" in final.reason and "HTTP 401" in final.reason


@pytest.mark.parametrize("service", ["deepgram", "elevenlabs"])
def test_garbage_from_a_service_is_dropped_and_the_call_goes_on(service: str) -> None:
    garbage = Fault("garbage", after=0)
    with rig(dg=DeepgramOptions(recognizer="canned", fault=garbage)
             if service == "deepgram" else None,
             tts=ElevenLabsOptions(fault=garbage) if service == "elevenlabs" else None) as r:
        r.events.until(base.SessionReady)
        if service == "deepgram":
            speak(r.backend)
            r.backend.commit()
        assert r.backend.request_response("req_1", "greeting", "")
        done = r.events.until(base.ResponseDone)
        assert isinstance(done, base.ResponseDone) and done.status == "completed"


def test_deepgrams_1011_close_is_named_redialled_once_then_given_up() -> None:
    # The stand-in closes after 0.3 s without audio; our KeepAlive comes only after 4 s.
    quick = DeepgramOptions(recognizer="canned", session=SessionConfig(no_audio_timeout_s=0.3))
    with rig(dg=quick) as r:
        assert r.events.until(base.SessionReady) == base.SessionReady(resumed=False)
        final = r.events.until(base.ConnectionLost)
        assert isinstance(final, base.ConnectionLost) and not final.retrying
        assert final.reason.startswith("deepgram: closed 1011 (Deepgram did not receive audio")
        assert r.dg.stats()["counts"]["sessions"] == 2  # the redial
