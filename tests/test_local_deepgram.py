"""The Deepgram live stand-in: the pure session (time as a local variable) and the server
over real loopback WebSockets with websocket-client. Every socket wait is bounded."""

from __future__ import annotations

import json
import select
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websocket
from standin_clients import WAIT_S, Sockets, until_close

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE, pcm16_to_ulaw
from mediasrv.localservices import DeepgramOptions, Fault, LocalDeepgram
from mediasrv.localservices.common import Stats, Step
from mediasrv.localservices.deepgram_session import DeepgramSession, SessionConfig
from mediasrv.localservices.deepgram_wire import NO_AUDIO_REASON, ListenParams, parse_params
from mediasrv.localservices.recognizer import CannedRecognizer

SPEECH = Path(__file__).resolve().parent / "audio" / "speech"
PARAMS = ("model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true"
          "&endpointing=300&utterance_end_ms=1000&vad_events=true")


def tone(ms: int, level: float = 0.3) -> bytes:
    """A 440 Hz tone: loud enough for the stand-in's energy VAD to call it speech."""
    t = np.arange(ms * 8) / 8000.0
    return pcm16_to_ulaw(np.rint(np.sin(2 * np.pi * 440 * t) * level * 32767).astype(np.int16))


def quiet(ms: int) -> bytes:
    return bytes([ULAW_SILENCE]) * (ms * 8)


def wav_ulaw(name: str) -> bytes:
    with wave.open(str(SPEECH / name)) as w:
        return pcm16_to_ulaw(np.frombuffer(w.readframes(w.getnframes()), np.int16))


def messages(step: Step) -> list[dict[str, Any]]:
    return [json.loads(f) for f in step.frames if isinstance(f, str)]


def session(params: ListenParams | None = None, now: float = 0.0,
            transcripts: tuple[str, ...] = ("check my order",)) -> DeepgramSession:
    return DeepgramSession(params or parse_params(PARAMS), CannedRecognizer(transcripts),
                           SessionConfig(), Stats(), now, "2026-01-01T00:00:00.000Z")


def feed(s: DeepgramSession, audio: bytes, now: float = 0.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(audio), FRAME_BYTES):
        out += messages(s.on_binary(audio[i : i + FRAME_BYTES], now))
    return out


def kinds(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["type"] + ("/final" if m.get("is_final") else "") for m in msgs]


# -- pure session ------------------------------------------------------------------------


def test_speech_gives_started_interims_a_speech_final_and_utterance_end_in_order() -> None:
    msgs = feed(session(), quiet(500) + tone(2500) + quiet(1500))
    assert kinds(msgs) == ["SpeechStarted", "Results", "Results", "Results/final",
                           "UtteranceEnd"]
    assert msgs[0]["timestamp"] == 0.5  # the tone's onset on the audio clock
    final = msgs[3]
    assert final["speech_final"] is True
    assert final["start"] == 0.3  # the segment includes 200 ms of look-back
    assert final["channel"]["alternatives"][0]["transcript"] == "check my order"
    assert msgs[4]["last_word_end"] == final["channel"]["alternatives"][0]["words"][-1]["end"]


def test_speech_final_waits_for_the_endpointing_silence() -> None:
    s = session()
    before = feed(s, quiet(200) + tone(1000) + quiet(260))
    after = feed(s, quiet(60))
    assert not [m for m in before if m.get("is_final")]
    assert [m["speech_final"] for m in after if m.get("is_final")] == [True]


def test_utterance_end_is_never_sent_without_interim_results() -> None:
    params = parse_params(PARAMS.replace("interim_results=true", "interim_results=false"))
    msgs = feed(session(params), quiet(200) + tone(1000) + quiet(3000))
    assert "UtteranceEnd" not in kinds(msgs)
    assert kinds(msgs).count("Results/final") == 1


def test_long_speech_is_finalised_in_segments_without_speech_final() -> None:
    msgs = feed(session(transcripts=("one", "two", "three")), quiet(200) + tone(11_000))
    finals = [m for m in msgs if m.get("is_final")]
    assert [m["speech_final"] for m in finals] == [False, False]
    assert [m["channel"]["alternatives"][0]["transcript"] for m in finals] == ["one", "two"]


def test_finalize_during_speech_returns_a_from_finalize_final() -> None:
    s = session()
    feed(s, quiet(200) + tone(700))
    msgs = messages(s.on_text('{"type": "Finalize"}', 0.0))
    assert [(m["is_final"], m["from_finalize"], m["speech_final"]) for m in msgs] == \
        [(True, True, False)]
    assert msgs[0]["channel"]["alternatives"][0]["transcript"] == "check my order"


def test_finalize_after_the_final_confirms_with_an_empty_transcript() -> None:
    s = session()
    feed(s, quiet(200) + tone(800) + quiet(400))
    msgs = messages(s.on_text('{"type": "Finalize"}', 0.0))
    assert [(m["from_finalize"], m["channel"]["alternatives"][0]["transcript"]) for m in msgs] \
        == [(True, "")]


def test_close_stream_flushes_the_segment_then_metadata_then_close_1000() -> None:
    s = session()
    feed(s, quiet(200) + tone(800))
    step = s.on_text('{"type": "CloseStream"}', 0.0)
    assert kinds(messages(step)) == ["Results/final", "Metadata"]
    assert messages(step)[1]["duration"] == 1.0
    assert step.close is not None and step.close.code == 1000


def test_ten_seconds_without_audio_or_text_close_1011_with_deepgrams_reason() -> None:
    s = session(now=100.0)
    assert s.tick(109.99).close is None
    close = s.tick(110.0).close
    assert close is not None and (close.code, close.reason) == (1011, NO_AUDIO_REASON)


def test_keepalive_moves_the_no_audio_deadline_without_a_reply() -> None:
    s = session(now=100.0)
    step = s.on_text('{"type": "KeepAlive"}', 105.0)
    assert step.frames == () and step.close is None
    assert s.next_deadline() == 115.0


@pytest.mark.parametrize("text", ["bm90IGF1ZGlv", '{"type": "Flush"}', "[1, 2]",
                                  '{"type": "KeepAlive", "extra": 1}'])
def test_text_that_is_not_a_control_message_closes_1008(text: str) -> None:
    close = session().on_text(text, 0.0).close
    assert close is not None and close.code == 1008


def test_an_empty_binary_message_closes_the_stream_like_close_stream() -> None:
    step = session().on_binary(b"", 0.0)
    assert kinds(messages(step)) == ["Metadata"]
    assert step.close is not None and step.close.code == 1000


@pytest.mark.parametrize("query", [
    "encoding=linear16&sample_rate=16000", "encoding=mulaw", "encoding=mulaw&sample_rate=8000"
    "&model=whisper", "encoding=mulaw&sample_rate=8000&interim_results=yes",
    "encoding=mulaw&sample_rate=8000&diarise=true"])
def test_parameters_mediasrv_must_not_send_are_refused(query: str) -> None:
    with pytest.raises(ValueError):
        parse_params(query)


# -- over real sockets -------------------------------------------------------------------


SOCKETS = Sockets()


@pytest.fixture
def start_dg() -> Iterator[Callable[..., LocalDeepgram]]:
    started: list[LocalDeepgram] = []

    def start(**options: Any) -> LocalDeepgram:
        options.setdefault("recognizer", "canned")
        dg = LocalDeepgram(DeepgramOptions(**options)).start()
        started.append(dg)
        return dg

    yield start
    SOCKETS.close_all()
    for dg in started:
        dg.stop()


def connect(dg: LocalDeepgram, params: str = PARAMS) -> websocket.WebSocket:
    return SOCKETS.connect(f"{dg.url}?{params}", [f"Authorization: Token {dg.api_key}"])


def send_audio(ws: websocket.WebSocket, audio: bytes) -> None:
    for i in range(0, len(audio), FRAME_BYTES):
        ws.send_binary(audio[i : i + FRAME_BYTES])


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_handshake_without_the_right_token_is_refused_with_401(
        start_dg: Callable[..., LocalDeepgram], key: str | None) -> None:
    dg = start_dg()
    header = [] if key is None else [f"Authorization: Token {key}"]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{dg.url}?{PARAMS}", header=header, timeout=WAIT_S)
    assert info.value.status_code == 401
    assert json.loads(info.value.resp_body or b"")["err_code"] == "INVALID_AUTH"


def test_handshake_with_bad_parameters_is_refused_with_400(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(dg, params="encoding=linear16&sample_rate=16000")
    assert info.value.status_code == 400
    assert "mulaw" in json.loads(info.value.resp_body or b"")["err_msg"]


def test_a_call_over_the_socket_gets_results_metadata_and_close_1000(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg()
    ws = connect(dg)
    send_audio(ws, quiet(300) + tone(1200) + quiet(1500))
    ws.send(json.dumps({"type": "CloseStream"}))
    msgs, code, _ = until_close(ws)
    assert kinds(msgs) == ["SpeechStarted", "Results", "Results/final", "UtteranceEnd",
                           "Metadata"]
    assert code == 1000


def test_base64_text_instead_of_binary_audio_closes_1008(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg()
    ws = connect(dg)
    ws.send("/////w==")  # what a bridge sends if it forwards Twilio's payload as text
    msgs, code, _ = until_close(ws)
    assert (msgs, code) == ([], 1008)


def test_silence_of_the_client_closes_1011_with_the_net0001_reason(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(session=SessionConfig(no_audio_timeout_s=0.2))
    ws = connect(dg)
    msgs, code, reason = until_close(ws)
    assert (msgs, code, reason) == ([], 1011, NO_AUDIO_REASON)


def test_real_speech_is_recognised_by_pocketsphinx(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(recognizer="pocketsphinx")
    ws = connect(dg)
    ws.settimeout(30.0)  # pocketsphinx decodes 8 s of speech in the reader: slow under load
    send_audio(ws, quiet(300) + wav_ulaw("en_asterisk_allison_queue-periodic-announce.wav")
               + quiet(500))
    ws.send(json.dumps({"type": "CloseStream"}))
    msgs, _, _ = until_close(ws)
    heard = {w.lower() for m in msgs if m.get("is_final")
             for w in m["channel"]["alternatives"][0]["transcript"].split()}
    said = set("all of our representatives are currently busy please stay on the line and "
               "your call will be answered by the next available representative".split())
    # pocketsphinx on 8 kHz mu-law is rough (README: "Local stand-ins"), but it hears some.
    assert len(heard & said) >= 4, heard


def test_fault_refuse_answers_the_handshake_with_its_status(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(fault=Fault("refuse", status=503))
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(dg)
    assert info.value.status_code == 503


def test_fault_close_mid_stream_drops_tcp_without_a_close_frame(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(fault=Fault("close_mid_stream", after=1))
    ws = connect(dg)
    ws.send_binary(quiet(300) + tone(2500))  # one message: the drop cannot race our sends
    assert json.loads(ws.recv())["type"] == "SpeechStarted"
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()


def test_fault_stall_withholds_every_message_after_the_first(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(fault=Fault("stall", after=1))
    ws = connect(dg)
    send_audio(ws, quiet(300) + tone(1200))
    ws.send(json.dumps({"type": "CloseStream"}))
    assert json.loads(ws.recv())["type"] == "SpeechStarted"
    ws.send(json.dumps({"type": "KeepAlive"}))  # the server still reads: a ping round trip
    ws.ping()
    assert ws.recv_data_frame(True)[0] == websocket.ABNF.OPCODE_PONG
    assert dg.stats()["counts"]["fault_frames_withheld"] >= 2  # interim, final, metadata
    assert select.select([ws.sock], [], [], 0)[0] == []


def test_fault_garbage_sends_an_unparseable_frame_then_goes_on(
        start_dg: Callable[..., LocalDeepgram]) -> None:
    dg = start_dg(fault=Fault("garbage", after=1))
    ws = connect(dg)
    send_audio(ws, quiet(300) + tone(1200) + quiet(400))
    assert json.loads(ws.recv())["type"] == "SpeechStarted"
    with pytest.raises(ValueError):
        json.loads(ws.recv())
    assert ws.recv_data()[0] == websocket.ABNF.OPCODE_BINARY
    assert json.loads(ws.recv())["type"] == "Results"
