"""The local Realtime backend over real loopback WebSockets (websocket-client).

Every wait is bounded by the client's recv timeout; no test sleeps. Pure parts of the
backend (session core, VAD) get a few direct tests with `now` as a local variable.
"""

from __future__ import annotations

import base64
import json
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websocket

from mediasrv.audio import BYTES_PER_MS, FRAME_BYTES, ULAW_SILENCE, pcm16_to_ulaw
from mediasrv.localbackend import BackendOptions, BackendStats, LocalBackend
from mediasrv.localbackend.options import PROMPTS_DIR
from mediasrv.localbackend.prompts import PromptBank
from mediasrv.localbackend.session import RealtimeSession

SPEECH = Path(__file__).resolve().parent / "audio" / "speech"
RECV_TIMEOUT_S = 2.0
Event = dict[str, Any]


def backend_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mediasrv-backend-")]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    assert backend_threads() == []


@pytest.fixture
def start_backend() -> Iterator[Callable[..., LocalBackend]]:
    started: list[LocalBackend] = []

    def start(**options: Any) -> LocalBackend:
        backend = LocalBackend(BackendOptions(**options)).start(host="127.0.0.1", port=0)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


class Client:
    """A websocket-client connection with JSON helpers and bounded waits."""

    def __init__(self, url: str, header: list[str] | None = None) -> None:
        self.ws = websocket.create_connection(url, timeout=RECV_TIMEOUT_S, header=header or [])
        self.close_code: int | None = None

    def send(self, kind: str, **fields: Any) -> None:
        self.ws.send(json.dumps({"type": kind, **fields}))

    def recv(self) -> Event:
        opcode, data = self.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big")
            raise ConnectionError(f"closed by server: {self.close_code}")
        event: Event = json.loads(data)
        return event

    def until(self, kind: str) -> list[Event]:
        """Return every event up to and including the first of type `kind`."""
        events = []
        while True:
            events.append(self.recv())
            if events[-1]["type"] == kind:
                return events

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() skips the socket once a server close frame was read


def ga_session(turn_detection: Event | None = None, transcription: bool = False) -> Event:
    return {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "echo test",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": turn_detection,
                "transcription": {"model": "gpt-4o-mini-transcribe"} if transcription else None,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
    }


def connect(backend: LocalBackend, **session: Any) -> Client:
    client = Client(backend.url)
    assert client.recv()["type"] == "session.created"
    client.send("session.update", session=ga_session(**session))
    assert client.recv()["type"] == "session.updated"
    return client


def prompt(name: str) -> bytes:
    return (PROMPTS_DIR / f"{name}.ulaw").read_bytes()


def speech_ulaw(name: str) -> bytes:
    with wave.open(str(SPEECH / name)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm16_to_ulaw(pcm)


def append_frames(client: Client, audio: bytes) -> None:
    for offset in range(0, len(audio), FRAME_BYTES):
        chunk = audio[offset : offset + FRAME_BYTES]
        client.send("input_audio_buffer.append", audio=base64.b64encode(chunk).decode())


def audio_of(events: list[Event]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events
                    if e["type"] == "response.output_audio.delta")


def first(events: list[Event], kind: str) -> Event:
    return next(e for e in events if e["type"] == kind)


# -- session -------------------------------------------------------------------------------


def test_session_update_returns_the_effective_ga_session(start_backend: Any) -> None:
    backend = start_backend()
    client = Client(backend.url)
    created = client.recv()
    assert created["type"] == "session.created"
    assert created["session"]["model"] == "gpt-realtime-2.1"
    client.send("session.update", session=ga_session(), event_id="evt_1")
    updated = client.recv()
    assert updated["type"] == "session.updated"
    session = updated["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"] is None
    assert session["instructions"] == "echo test"
    client.close()


def test_beta_shaped_session_update_is_rejected_like_the_real_api(start_backend: Any) -> None:
    client = Client(start_backend().url)
    client.recv()
    beta = {"modalities": ["audio"], "input_audio_format": "g711_ulaw", "voice": "alloy"}
    client.send("session.update", session=beta, event_id="evt_beta")
    error = client.recv()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unknown_parameter"
    assert error["message"] == "Unknown parameter: 'session.modalities'."
    assert error["event_id"] == "evt_beta"
    client.send("session.update", session={**ga_session(), "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}}}})
    error = client.recv()["error"]
    assert error["param"] == "session.audio.input.format.type"
    assert "audio/pcmu" in error["message"]
    client.close()


def test_beta_header_gets_the_beta_error_then_close_4000(start_backend: Any) -> None:
    client = Client(start_backend().url, header=["OpenAI-Beta: realtime=v1"])
    error = client.recv()
    assert error["type"] == "error"
    assert error["error"]["code"] == "beta_api_shape_disabled"
    assert error["error"]["message"] == (
        "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.")
    with pytest.raises(ConnectionError):
        client.recv()
    assert client.close_code == 4000
    client.close()


def test_wrong_path_is_refused_at_the_handshake(start_backend: Any) -> None:
    backend = start_backend()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(backend.url.replace("/v1/realtime", "/v1/other"), timeout=2)
    assert refused.value.status_code == 404


# -- responses -----------------------------------------------------------------------------


def test_response_streams_the_full_ga_sequence_and_completes(start_backend: Any) -> None:
    backend = start_backend(speed=50.0)
    client = connect(backend)
    metadata = {"purpose": "greeting"}
    client.send("response.create", response={"metadata": metadata, "instructions": "hi"})
    events = client.until("response.done")
    skeleton = [e["type"] for e in events if not e["type"].endswith(".delta")]
    assert skeleton == [
        "response.created", "response.output_item.added", "conversation.item.added",
        "response.content_part.added", "response.output_audio.done",
        "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done", "response.done",
    ]
    created, done = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["metadata"] == metadata
    assert done["status"] == "completed" and done["metadata"] == metadata
    assert done["id"] == created["id"] and done["id"].startswith("resp_")
    item_id = first(events, "response.output_item.added")["item"]["id"]
    assert item_id.startswith("item_")
    for delta in (e for e in events if e["type"].endswith(".delta")):
        assert (delta["response_id"], delta["item_id"]) == (done["id"], item_id)
        assert (delta["output_index"], delta["content_index"]) == (0, 0)
    assert audio_of(events) == prompt("greeting")
    transcript = first(events, "response.output_audio_transcript.done")["transcript"]
    assert transcript.startswith("Hello! This is the mediasrv echo test.")
    assert done["output"][0]["content"][0]["transcript"] == transcript
    assert done["usage"]["output_tokens"] > 0
    assert backend.stats()["responses_completed"] == 1
    client.close()


def test_response_create_while_one_is_active_is_rejected(start_backend: Any) -> None:
    backend = start_backend(speed=1.0)
    client = connect(backend)
    client.send("response.create")
    response_id = client.recv()["response"]["id"]
    client.send("response.create", event_id="evt_2")
    error = first(client.until("error"), "error")["error"]
    assert error["code"] == "conversation_already_has_active_response"
    assert error["message"] == (
        f"Conversation already has an active response in progress: {response_id}. "
        "Wait until the response is finished before creating a new one.")
    assert error["event_id"] == "evt_2"
    client.close()


def test_cancel_ends_the_response_cancelled_and_stops_its_deltas(start_backend: Any) -> None:
    backend = start_backend(speed=2.0)
    client = connect(backend)
    client.send("response.create")
    client.until("response.output_audio.delta")
    client.send("response.cancel")
    events = client.until("response.done")
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert "response.output_audio.done" in [e["type"] for e in events]
    client.send("input_audio_buffer.clear")  # anything still queued arrives before this
    assert [e["type"] for e in client.until("input_audio_buffer.cleared")] == [
        "input_audio_buffer.cleared"]
    assert backend.stats()["responses_cancelled"] == 1
    client.close()


def test_cancel_with_no_active_response_is_rejected(start_backend: Any) -> None:
    client = connect(start_backend())
    client.send("response.cancel", event_id="evt_c")
    error = client.recv()["error"]
    assert error["code"] == "response_cancel_not_active"
    assert error["message"] == "Cancellation failed: no active response found"
    assert error["event_id"] == "evt_c"
    client.close()


def test_truncate_beyond_the_generated_audio_is_rejected(start_backend: Any) -> None:
    client = connect(start_backend(speed=50.0))
    client.send("response.create", response={"metadata": {"purpose": "goodbye"}})
    events = client.until("response.done")
    item_id = first(events, "response.output_item.added")["item"]["id"]
    item_ms = len(prompt("goodbye")) // BYTES_PER_MS
    client.send("conversation.item.truncate", item_id=item_id, content_index=0,
                audio_end_ms=item_ms + 500)
    error = client.recv()["error"]
    assert error["message"] == (
        f"Audio content of {item_ms}ms is already shorter than {item_ms + 500}ms")
    client.close()


def test_truncate_within_the_audio_is_acknowledged_and_recorded(start_backend: Any) -> None:
    backend = start_backend(speed=50.0)
    client = connect(backend)
    client.send("response.create", response={"metadata": {"purpose": "goodbye"}})
    events = client.until("response.done")
    item_id = first(events, "response.output_item.added")["item"]["id"]
    client.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=800)
    assert client.recv() | {"event_id": None} == {
        "type": "conversation.item.truncated", "event_id": None, "item_id": item_id,
        "content_index": 0, "audio_end_ms": 800}
    item_ms = len(prompt("goodbye")) // BYTES_PER_MS
    assert backend.stats()["truncations"] == [(item_id, 800, item_ms)]
    client.close()


def test_truncate_of_unknown_or_user_items_is_rejected(start_backend: Any) -> None:
    client = connect(start_backend())
    client.send("conversation.item.truncate", item_id="item_nope", content_index=0,
                audio_end_ms=0)
    assert client.recv()["error"]["param"] == "item_id"
    append_frames(client, bytes([ULAW_SILENCE]) * 1600)
    client.send("input_audio_buffer.commit")
    user_item = client.recv()["item_id"]
    client.until("conversation.item.done")
    client.send("conversation.item.truncate", item_id=user_item, content_index=0,
                audio_end_ms=0)
    assert client.recv()["error"]["message"] == "Only model output audio messages can be truncated"
    client.close()


# -- input audio ---------------------------------------------------------------------------


def test_commit_of_an_empty_buffer_is_rejected(start_backend: Any) -> None:
    client = connect(start_backend())
    client.send("input_audio_buffer.commit", event_id="evt_e")
    error = client.recv()["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["event_id"] == "evt_e"
    client.close()


def test_commit_adds_a_user_item_and_a_placeholder_transcript(start_backend: Any) -> None:
    backend = start_backend()
    client = connect(backend, transcription=True)
    append_frames(client, bytes([ULAW_SILENCE]) * (1400 * BYTES_PER_MS))
    client.send("input_audio_buffer.commit")
    events = client.until("conversation.item.input_audio_transcription.completed")
    assert [e["type"] for e in events] == [
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
        "conversation.item.input_audio_transcription.completed"]
    item_id = events[0]["item_id"]
    assert events[1]["item"]["id"] == item_id and events[1]["item"]["role"] == "user"
    assert events[-1]["transcript"] == "(1.4 s of caller audio)"
    assert backend.stats()["commits"] == 1
    client.close()


def test_server_vad_segments_speech_and_creates_the_echo_answer(start_backend: Any) -> None:
    client = connect(start_backend(speed=50.0), transcription=True, turn_detection={
        "type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500,
        "create_response": True, "interrupt_response": True})
    lead = bytes([ULAW_SILENCE]) * (1000 * BYTES_PER_MS)
    speech = speech_ulaw("en_asterisk_allison_hello-world.wav")
    append_frames(client, lead + speech + lead)
    events = client.until("response.done")
    started = first(events, "input_audio_buffer.speech_started")
    stopped = first(events, "input_audio_buffer.speech_stopped")
    committed = first(events, "input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 500 <= started["audio_start_ms"] <= 1000  # speech at ~1000 ms minus padding
    assert 1000 + 500 <= stopped["audio_end_ms"] <= 1000 + len(speech) // BYTES_PER_MS + 1000
    transcription = first(events, "conversation.item.input_audio_transcription.completed")
    assert transcription["transcript"].endswith("s of caller audio)")
    assert events[-1]["response"]["status"] == "completed"
    answer = audio_of(events)
    assert answer.startswith(prompt("you_said")) and answer.endswith(prompt("long_answer"))
    client.close()


def test_server_vad_speech_interrupts_the_active_response(start_backend: Any) -> None:
    client = connect(start_backend(speed=1.0), turn_detection={
        "type": "server_vad", "create_response": False, "interrupt_response": True})
    client.send("response.create", response={"metadata": {"purpose": "greeting"}})
    client.until("response.output_audio.delta")
    append_frames(client, speech_ulaw("en_espeak_caller.wav"))
    events = client.until("response.done")
    assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
    assert events[-1]["response"]["status"] == "cancelled"
    assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
    client.close()


# -- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "invalid_json"),
    ('["a list"]', "invalid_json"),
    ('{"event_id": "evt_x"}', "missing_required_parameter"),
    ('{"type": "nope.nothing", "event_id": "evt_x"}', "invalid_value"),
    ('{"type": "input_audio_buffer.append", "audio": "@@@", "event_id": "evt_x"}',
     "invalid_value"),
    ('{"type": "input_audio_buffer.append", "event_id": "evt_x"}',
     "missing_required_parameter"),
    ('{"type": "response.create", "response": {"modalities": ["audio"]}, "event_id": "evt_x"}',
     "unknown_parameter"),
    ('{"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, '
     '"audio_end_ms": "10", "event_id": "evt_x"}', "invalid_type"),
])
def test_malformed_events_get_an_error_and_the_session_survives(
    start_backend: Any, frame: str, code: str
) -> None:
    backend = start_backend()
    client = connect(backend)
    client.ws.send(frame)
    error = client.recv()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == code
    if "evt_x" in frame:
        assert error["error"]["event_id"] == "evt_x"
    client.send("session.update", session=ga_session())
    assert client.recv()["type"] == "session.updated"
    assert backend.stats()["errors"] == {code: 1}
    client.close()


def test_fault_close_mid_response_drops_the_socket(start_backend: Any) -> None:
    client = connect(start_backend(fault="close_mid_response", fault_after_deltas=2))
    client.send("response.create")
    events: list[Event] = []
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        while True:
            events.append(client.recv())
    assert [e["type"] for e in events].count("response.output_audio.delta") == 2
    assert "response.done" not in [e["type"] for e in events]
    client.close()


def test_fault_stall_mid_response_freezes_until_cancelled(start_backend: Any) -> None:
    client = connect(start_backend(speed=50.0, fault="stall_mid_response", fault_after_deltas=2))
    client.send("response.create")
    events = client.until("response.output_audio.delta")
    events += client.until("response.output_audio.delta")
    client.send("response.cancel")  # unstalled, the 110 ms response would be long done
    events += client.until("response.done")
    assert [e["type"] for e in events].count("response.output_audio.delta") == 2
    assert events[-1]["response"]["status"] == "cancelled"
    client.close()


def test_fault_error_on_response_fails_the_response(start_backend: Any) -> None:
    backend = start_backend(fault="error_on_response")
    client = connect(backend)
    client.send("response.create")
    events = client.until("response.done")
    assert [e["type"] for e in events] == ["response.created", "response.done"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["status_details"]["error"]["type"] == "server_error"
    assert backend.stats()["responses_failed"] == 1
    client.close()


def test_fault_no_handshake_leaves_the_upgrade_unanswered(start_backend: Any) -> None:
    backend = start_backend(fault="no_handshake")
    with pytest.raises(websocket.WebSocketTimeoutException):
        websocket.create_connection(backend.url, timeout=0.3)


def test_many_concurrent_sessions_all_complete(start_backend: Any) -> None:
    backend = start_backend(speed=20.0)
    clients = [connect(backend) for _ in range(100)]
    for client in clients:
        client.send("response.create", response={"metadata": {"purpose": "idle_prompt"}})
    for client in clients:
        assert audio_of(client.until("response.done")) == prompt("still_there")
    stats = backend.stats()
    assert (stats["sessions_active"], stats["responses_completed"]) == (100, 100)
    for client in clients:
        client.close()


def test_stop_with_streaming_sessions_ends_every_backend_thread(start_backend: Any) -> None:
    backend = start_backend(speed=1.0)
    clients = [connect(backend) for _ in range(5)]
    for client in clients:
        client.send("response.create")
        client.until("response.output_audio.delta")
    backend.stop()
    assert backend_threads() == []
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        while True:
            clients[0].recv()
    assert clients[0].close_code == 1001
    for client in clients:
        client.close()


# -- pure core -----------------------------------------------------------------------------


def test_session_core_paces_deltas_by_now() -> None:
    options = BackendOptions(speed=5.0, delta_ms=100)  # one 100 ms delta every 20 ms
    session = RealtimeSession(options, PromptBank.load(PROMPTS_DIR), BackendStats(), "m")
    now = 0.0
    step = session.handle('{"type": "response.create"}', now)
    assert [e["type"] for e in step.events].count("response.output_audio.delta") == 1
    assert session.next_deadline() == pytest.approx(0.02)
    now += 0.01
    assert session.tick(now).events == ()
    now += 0.05  # 60 ms in: deltas due at 20, 40 and 60 ms
    deltas = [e for e in session.tick(now).events if e["type"] == "response.output_audio.delta"]
    assert len(deltas) == 3
    assert all(len(base64.b64decode(d["delta"])) == 800 for d in deltas)


def test_stalled_response_asks_for_no_more_ticks() -> None:
    options = BackendOptions(fault="stall_mid_response", fault_after_deltas=2)
    session = RealtimeSession(options, PromptBank.load(PROMPTS_DIR), BackendStats(), "m")
    session.handle('{"type": "response.create"}', 0.0)
    events = session.tick(10.0).events
    assert [e["type"] for e in events] == ["response.output_audio.delta"] * 1 + [
        "response.output_audio_transcript.delta"]
    assert session.next_deadline() is None


SERVER_VAD = {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500,
              "create_response": False, "interrupt_response": True}


def vad_session() -> RealtimeSession:
    session = RealtimeSession(BackendOptions(), PromptBank.load(PROMPTS_DIR), BackendStats(), "m")
    update = {"type": "session.update", "session": ga_session(SERVER_VAD, transcription=True)}
    session.handle(json.dumps(update), 0.0)
    return session


def append_all(session: RealtimeSession, audio: bytes, now: float) -> list[Event]:
    chunk = 100 * BYTES_PER_MS
    events: list[Event] = []
    for offset in range(0, len(audio), chunk):
        b64 = base64.b64encode(audio[offset : offset + chunk]).decode()
        msg = json.dumps({"type": "input_audio_buffer.append", "audio": b64})
        events += session.handle(msg, now).events
    return events


def test_speech_while_no_response_plays_is_not_called_a_barge_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="mediasrv.localbackend")
    silence = bytes([ULAW_SILENCE]) * (1000 * BYTES_PER_MS)
    append_all(vad_session(), silence + speech_ulaw("en_espeak_caller.wav") + silence, 0.0)
    assert "speech started at" in caplog.text
    assert "[BARGE-IN]" not in caplog.text


def test_speech_over_a_response_is_logged_as_a_barge_in(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="mediasrv.localbackend")
    session = vad_session()
    session.handle('{"type": "response.create"}', 0.0)
    append_all(session, speech_ulaw("en_espeak_caller.wav"), 0.1)
    assert "[BARGE-IN] speech started at" in caplog.text


def test_the_caller_transcript_counts_the_speech_not_the_silence_around_it() -> None:
    silence = bytes([ULAW_SILENCE]) * (1500 * BYTES_PER_MS)
    speech = speech_ulaw("en_espeak_caller.wav")  # 3.24 s of file, 2.84 s above -45 dBFS
    events = append_all(vad_session(), silence + speech + silence, 0.0)
    [said] = [e["transcript"] for e in events
              if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert said == "(2.8 s of caller audio)"
