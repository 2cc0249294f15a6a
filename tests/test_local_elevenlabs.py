"""The ElevenLabs multi-stream-input stand-in: the pure session with a fake voice (time as
a local variable) and the server over real loopback WebSockets with real espeak-ng."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from standin_clients import Sockets, until_close

from mediasrv.localservices import ElevenLabsOptions, Fault, LocalElevenLabs
from mediasrv.localservices.common import Stats, Step
from mediasrv.localservices.elevenlabs_session import TtsConfig, TtsSession
from mediasrv.localservices.elevenlabs_wire import StreamParams, inactivity_message
from mediasrv.localservices.voice import EspeakVoice, Rendered, char_timings

CHAR_MS = 50  # the fake voice speaks every character for 50 ms


class FakeVoice:
    def render(self, text: str) -> Rendered:
        return Rendered(b"\x7f" * (len(text) * CHAR_MS * 8),
                        [i * CHAR_MS for i in range(len(text))], [CHAR_MS] * len(text))


def session(now: float = 0.0, authenticated: bool = True, sync: bool = True,
            **config: Any) -> tuple[TtsSession, Stats]:
    stats = Stats()
    tts = TtsSession(StreamParams("v1", sync_alignment=sync), FakeVoice(),
                     TtsConfig(**{"first_audio_s": 0.1, "speed": 4.0, "chunk_ms": 500,
                                  **config}),
                     stats, now, authenticated)
    return tts, stats


def send(tts: TtsSession, now: float = 0.0, **msg: Any) -> Step:
    return tts.on_text(json.dumps(msg), now)


def out(step: Step) -> list[dict[str, Any]]:
    return [json.loads(f) for f in step.frames if isinstance(f, str)]


def drain(tts: TtsSession, until: float) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    while (deadline := tts.next_deadline()) is not None and deadline <= until:
        msgs += out(tts.tick(deadline))
    return msgs


# -- pure session ------------------------------------------------------------------------


def test_text_below_the_first_schedule_threshold_is_not_generated() -> None:
    tts, stats = session()
    send(tts, text=" ", context_id="c")
    send(tts, text="a short answer ", context_id="c")
    assert drain(tts, until=5.0) == []
    assert "generations" not in stats.snapshot()["counts"]


def test_reaching_the_threshold_generates_up_to_the_last_space() -> None:
    tts, stats = session()
    send(tts, text=" ", context_id="c")
    send(tts, text="word " * 24 + "unfinish", context_id="c")  # 1 + 120 + 8 characters
    assert [g["text"] for g in stats.snapshot()["records"]["generated"]] == [" " + "word " * 24]


def test_flush_streams_audio_chunks_at_the_configured_pace_then_close_gives_one_final() -> None:
    tts, _ = session()
    send(tts, text=" ", context_id="c")
    send(tts, text="Hello there friend. ", context_id="c")  # 21 chars = 1050 ms of audio
    send(tts, context_id="c", flush=True)
    send(tts, context_id="c", close_context=True)
    assert tts.next_deadline() == pytest.approx(0.1)
    msgs = drain(tts, until=10.0)
    audio = [base64.b64decode(m["audio"]) for m in msgs if m.get("audio")]
    assert [len(a) for a in audio] == [4000, 4000, 400]
    assert msgs[-1] == {"isFinal": True, "contextId": "c"}
    assert [m for m in msgs if m.get("isFinal")] == [msgs[-1]]


def test_alignment_times_are_relative_to_each_chunk() -> None:
    tts, _ = session()
    send(tts, text=" Hello there friend. ", context_id="c", flush=True)
    msgs = drain(tts, until=10.0)
    second = msgs[1]["alignment"]
    assert second["chars"][0] == " Hello there friend. "[10]  # 10 * 50 ms = 500 ms
    assert second["charStartTimesMs"][0] == 0
    assert second["charDurationsMs"] == [CHAR_MS] * len(second["chars"])
    assert msgs[1]["normalizedAlignment"] == second


def test_without_sync_alignment_later_chunks_carry_null_alignment() -> None:
    tts, _ = session(sync=False)
    send(tts, text=" Hello there friend. ", context_id="c", flush=True)
    msgs = drain(tts, until=10.0)
    assert [m["alignment"] is None for m in msgs] == [False, True, True]


def test_the_other_spellings_can_be_served() -> None:
    tts, _ = session(context_key="context_id", durations_key="charsDurationsMs")
    send(tts, text=" Hi. ", context_id="c", flush=True)
    msg = drain(tts, until=10.0)[0]
    assert msg["context_id"] == "c" and "contextId" not in msg
    assert "charsDurationsMs" in msg["alignment"]


def test_alignment_entries_can_hold_several_characters() -> None:
    tts, _ = session(chars_per_entry=3)
    send(tts, text=" Hi there", context_id="c", flush=True)  # 450 ms: one chunk
    alignment = drain(tts, until=10.0)[0]["alignment"]
    assert alignment["chars"] == [" Hi", " th", "ere"]
    assert alignment["charStartTimesMs"] == [0, 150, 300]
    assert alignment["charDurationsMs"] == [150, 150, 150]


def test_flush_done_follows_the_flushed_audio_when_enabled() -> None:
    tts, _ = session(flush_done=True)
    send(tts, text=" Hi there", context_id="c", flush=True)  # 450 ms: one chunk
    msgs = drain(tts, until=10.0)
    assert "audio" in msgs[0]
    assert msgs[1] == {"type": "flush_done", "context_id": "c", "flush_done": True}


def test_close_context_drops_unflushed_text_and_still_sends_one_final() -> None:
    tts, stats = session()
    send(tts, text=" never flushed ", context_id="c")
    step = send(tts, context_id="c", close_context=True)
    assert out(step) == [] and drain(tts, until=1.0) == [{"isFinal": True, "contextId": "c"}]
    assert stats.snapshot()["counts"]["unflushed_chars_dropped"] == len(" never flushed ")


def test_audio_already_generated_still_arrives_after_close_context() -> None:
    tts, _ = session()
    send(tts, text=" Hello there friend. ", context_id="c", flush=True)
    send(tts, context_id="c", close_context=True)
    msgs = drain(tts, until=10.0)
    assert [("audio" in m) for m in msgs] == [True, True, True, False]


def test_a_sixth_context_closes_the_socket_with_max_active_conversations() -> None:
    tts, _ = session()
    for i in range(5):
        assert send(tts, text=" ", context_id=f"c{i}").close is None
    step = send(tts, text=" ", context_id="c5")
    assert out(step)[0]["error"] == "max_active_conversations"
    assert step.close is not None and step.close.code == 1008


def test_a_flush_for_a_context_never_opened_opens_a_phantom_one() -> None:
    tts, stats = session()
    for i in range(4):
        send(tts, text=" ", context_id=f"c{i}")
    send(tts, context_id="never-initialised", flush=True)
    step = send(tts, text=" ", context_id="c5")
    assert stats.snapshot()["counts"]["contexts_opened"] == 5
    assert step.close is not None and step.close.code == 1008


def test_a_closed_context_frees_its_slot() -> None:
    tts, _ = session()
    for i in range(5):
        send(tts, text=" ", context_id=f"c{i}")
    send(tts, context_id="c0", close_context=True)
    assert send(tts, text=" ", context_id="c5").close is None


@pytest.mark.parametrize("later", [{"stability": 0.1, "similarity_boost": 0.8},
                                   {"stability": 0.5}])
def test_voice_settings_that_change_after_the_first_message_close_1008(
        later: dict[str, float]) -> None:
    tts, _ = session()
    send(tts, text=" ", context_id="a", voice_settings={"stability": 0.5,
                                                        "similarity_boost": 0.8})
    step = send(tts, text=" ", context_id="b", voice_settings=later)
    assert step.close is not None and step.close.code == 1008
    assert step.close.reason.startswith("voice_settings field must be provided in the first")


def test_voice_settings_after_a_keepalive_sent_first_close_1008() -> None:
    tts, _ = session()
    send(tts, text="", context_id="a")  # the keepalive became the first message
    step = send(tts, text=" ", context_id="a", voice_settings={"stability": 0.5})
    assert step.close is not None and step.close.code == 1008


def test_repeating_the_same_voice_settings_is_accepted() -> None:
    tts, _ = session()
    settings = {"stability": 0.5, "similarity_boost": 0.8}
    send(tts, text=" ", context_id="a", voice_settings=settings)
    assert send(tts, text=" ", context_id="b", voice_settings=settings).close is None


@pytest.mark.parametrize("field", ["xi_api_key", "xi-api-key"])
def test_a_key_in_the_message_body_is_refused_with_1008(field: str) -> None:
    tts, _ = session()
    step = tts.on_text(json.dumps({"text": " ", field: "sk-in-body"}), 0.0)
    assert out(step)[0]["error"] == "authorization_header_required"
    assert step.close is not None and step.close.code == 1008
    assert "sk-in-body" not in json.dumps(out(step)) + step.close.reason


def test_without_the_header_the_first_message_fails_authentication() -> None:
    tts, _ = session(authenticated=False)
    step = send(tts, text=" ", context_id="a")
    assert out(step)[0]["error"] == "authentication_required"
    assert step.close is not None and step.close.code == 1008


@pytest.mark.parametrize("text", ["not json", "[]", '{"text": " ", "unknown": 1}',
                                  '{"text": 5}', '{"text": " ", "generation_config": '
                                  '{"chunk_length_schedule": [10]}}'])
def test_messages_outside_the_schema_close_1008_with_invalid_input_message(text: str) -> None:
    tts, _ = session()
    step = tts.on_text(text, 0.0)
    assert out(step)[0]["error"] == "invalid_input_message"
    assert step.close is not None and step.close.code == 1008


def test_twenty_seconds_without_input_close_1008_with_the_real_reason() -> None:
    tts, _ = session(now=50.0)
    send(tts, now=50.0, text=" ", context_id="a")
    assert tts.tick(69.99).close is None
    step = tts.tick(70.0)
    assert out(step) == [{"message": inactivity_message(20), "error": "input_timeout_exceeded",
                          "code": 1008}]
    assert step.close is not None and step.close.code == 1008
    assert step.close.reason.endswith("Please make sure to eit")  # elevenlabs-docs#426


def test_close_socket_ends_with_1000_and_no_more_audio() -> None:
    tts, _ = session()
    send(tts, text=" Hello there friend. ", context_id="c", flush=True)
    step = send(tts, close_socket=True)
    assert step.close is not None and step.close.code == 1000
    assert tts.next_deadline() is None


def test_char_timings_spread_each_word_until_the_next_one() -> None:
    starts, durations = char_timings(8, [(0, 0), (4, 400)], 800)  # "abc defg"
    assert starts == [0, 100, 200, 300, 400, 500, 600, 700]
    assert durations == [100] * 8


# -- over real sockets -------------------------------------------------------------------


SOCKETS = Sockets()


@pytest.fixture
def start_tts() -> Iterator[Callable[..., LocalElevenLabs]]:
    started: list[LocalElevenLabs] = []

    def start(**options: Any) -> LocalElevenLabs:
        tts = LocalElevenLabs(ElevenLabsOptions(**options)).start()
        started.append(tts)
        return tts

    yield start
    SOCKETS.close_all()
    for tts in started:
        tts.stop()


def connect(tts: LocalElevenLabs, header: list[str] | None = None,
            **query: str) -> websocket.WebSocket:
    headers = [f"xi-api-key: {tts.api_key}"] if header is None else header
    return SOCKETS.connect(tts.url("voice1", **query), headers)


def test_a_turn_with_espeak_returns_mulaw_audio_alignment_and_one_final(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    ws = connect(start_tts())
    for msg in ({"text": " ", "context_id": "t1"},
                {"text": "Sure, I can help with that. ", "context_id": "t1"},
                {"context_id": "t1", "flush": True}, {"context_id": "t1", "close_context": True}):
        ws.send(json.dumps(msg))
    msgs = []
    while not (msgs and msgs[-1].get("isFinal")):
        msgs.append(json.loads(ws.recv()))
    audio = b"".join(base64.b64decode(m["audio"]) for m in msgs[:-1])
    chars = "".join(c for m in msgs[:-1] for c in m["alignment"]["chars"])
    assert len(audio) > 8000  # more than a second of 8 kHz mu-law
    assert chars == " Sure, I can help with that. "
    assert msgs[-1] == {"isFinal": True, "contextId": "t1"}


def test_espeak_renders_a_second_per_sentence_or_so() -> None:
    rendered = EspeakVoice().render("This is a test of the local voice.")
    assert 1.0 < len(rendered.audio) / 8000 < 4.0
    assert rendered.starts_ms == sorted(rendered.starts_ms)


def test_a_wrong_header_key_is_refused_with_401(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(start_tts(), header=["xi-api-key: wrong"])
    assert info.value.status_code == 401


def test_an_output_format_other_than_ulaw_8000_is_refused_with_422(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(start_tts(), output_format="mp3_44100_128")
    assert info.value.status_code == 422


def test_a_key_sent_in_the_body_gets_an_error_and_close_1008_over_the_socket(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    ws = connect(start_tts(), header=[])
    ws.send(json.dumps({"text": " ", "xi_api_key": "k", "context_id": "a"}))
    msgs, code, _ = until_close(ws)
    assert [m["error"] for m in msgs] == ["authorization_header_required"]
    assert code == 1008


def test_fault_close_mid_stream_drops_tcp_after_the_first_audio(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    ws = connect(start_tts(fault=Fault("close_mid_stream", after=1)))
    ws.send(json.dumps({"text": " A sentence long enough for two chunks of audio. ",
                        "context_id": "a", "flush": True}))
    assert "audio" in json.loads(ws.recv())
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()


def test_fault_refuse_answers_the_upgrade_with_its_status(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(start_tts(fault=Fault("refuse", status=500)))
    assert info.value.status_code == 500


def test_fault_no_handshake_leaves_the_upgrade_unanswered(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    tts = start_tts(fault=Fault("no_handshake"))
    with pytest.raises(websocket.WebSocketTimeoutException):
        SOCKETS.connect(tts.url("voice1"), [f"xi-api-key: {tts.api_key}"], timeout=0.5)
    assert tts.stats()["counts"]["fault_handshakes_ignored"] == 1


def test_inactivity_closes_the_socket_1008_with_the_cut_reason_on_the_wire(
        start_tts: Callable[..., LocalElevenLabs]) -> None:
    ws = connect(start_tts(), inactivity_timeout="1")
    msgs, code, reason = until_close(ws)
    assert [m["error"] for m in msgs] == ["input_timeout_exceeded"]
    assert (code, reason) == (1008, inactivity_message(1)[:120])
