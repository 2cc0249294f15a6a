"""EmulatedCall against a tiny stand-in server (real flask-sock WebSocket on loopback)."""

from __future__ import annotations

import json
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, Response, request
from flask_sock import Sock
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.report import format_timeline, write_outputs
from mediasrv.emulator.script import CallerScript

TOKEN = "test-auth-token"
PUBLIC = "https://example.ngrok.app"
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
    '<Stream url="wss://example.ngrok.app/media"><Parameter name="token" value="abc123" />'
    "</Stream></Connect></Response>"
)
TONE_B64 = "EBAQ" * 40  # base64 of 120 bytes of 0x10 (15 ms): any size is allowed


@dataclass
class Seen:
    """What the stand-in server saw, filled by its handler thread."""

    voice_form: dict[str, str] = field(default_factory=dict)
    voice_sig: str = ""
    ws_sig: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    echo_delays: dict[str, float] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


Behaviour = Callable[[Any, Seen], None]


def recv_until(ws: Any, seen: Seen, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if raw is None:
            break
        msg = json.loads(raw)
        seen.messages.append(msg)
        if pred(msg):
            return msg
    raise AssertionError("stand-in server: expected message never came")


def send(ws: Any, sid: str, event: str, **body: Any) -> None:
    ws.send(json.dumps({"event": event, "streamSid": sid, **body}))


def chunk_of(seen: Seen) -> int:
    return max(int(m["media"]["chunk"]) for m in seen.messages if m["event"] == "media")


def is_mark(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["event"] == "mark" and m["mark"]["name"] == name


def greet_then_barge(ws: Any, seen: Seen) -> None:
    start = recv_until(ws, seen, lambda m: m["event"] == "start")
    sid = start["streamSid"]
    for _ in range(16):  # 16 x 15 ms = 240 ms of greeting, sent at once
        send(ws, sid, "media", media={"payload": TONE_B64})
    sent = time.monotonic()
    send(ws, sid, "mark", mark={"name": "resp1:item1:240"})
    recv_until(ws, seen, is_mark("resp1:item1:240"))
    seen.echo_delays["resp1:item1:240"] = time.monotonic() - sent
    later = chunk_of(seen) + 25  # let 500 ms of caller audio pass: a new burst
    recv_until(ws, seen, lambda m: m["event"] == "media" and int(m["media"]["chunk"]) > later)
    for _ in range(60):  # 900 ms of a second answer, cut short by a clear
        send(ws, sid, "media", media={"payload": TONE_B64})
    send(ws, sid, "mark", mark={"name": "resp2:item2:900"})
    later = chunk_of(seen) + 5
    recv_until(ws, seen, lambda m: m["event"] == "media" and int(m["media"]["chunk"]) > later)
    send(ws, sid, "clear")
    recv_until(ws, seen, is_mark("resp2:item2:900"))
    sent = time.monotonic()
    send(ws, sid, "mark", mark={"name": "nothing-buffered"})
    recv_until(ws, seen, is_mark("nothing-buffered"))
    seen.echo_delays["nothing-buffered"] = time.monotonic() - sent
    # returning closes the socket: the server hangs up


def listen_until_stop(ws: Any, seen: Seen) -> None:
    recv_until(ws, seen, lambda m: m["event"] == "stop")
    ws.receive(timeout=1.0)  # the caller's close frame ends the socket


@contextmanager
def standin(behaviour: Behaviour) -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    app = Flask(__name__)
    sock = Sock(app)

    @app.post("/voice")
    def voice() -> Response:
        seen.voice_form = dict(request.form)
        seen.voice_sig = request.headers.get("X-Twilio-Signature", "")
        return Response(TWIML, mimetype="text/xml")

    @sock.route("/media")
    def media(ws: Any) -> None:
        seen.ws_sig = request.headers.get("x-twilio-signature", "")
        try:
            behaviour(ws, seen)
        finally:
            seen.done.set()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="standin-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def silence(seconds: float) -> CallerScript:
    return CallerScript(bytes([0xFF]) * int(seconds * 8000))


def run_call(base: str, script: CallerScript, **opts: Any) -> EmulatedCall:
    call = EmulatedCall(base, script, CallOptions(close_grace=0.5, **opts))
    call.run(timeout=4.0)
    return call


def test_call_sends_twilio_shaped_messages_with_string_fields() -> None:
    with standin(listen_until_stop) as (base, seen):
        call = run_call(base, silence(0.3), auth_token=TOKEN, public_url=PUBLIC)
        assert seen.done.wait(2)
    msgs = seen.messages
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    assert start["sequenceNumber"] == "1" and start["streamSid"].startswith("MZ")
    assert start["start"]["callSid"] == call.call_sid and call.call_sid.startswith("CA")
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["customParameters"] == {"token": "abc123"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    media = [m for m in msgs if m["event"] == "media"]
    assert len(media) == 15
    assert [m["media"]["chunk"] for m in media] == [str(i) for i in range(1, 16)]
    assert [m["media"]["timestamp"] for m in media] == [str(20 * i) for i in range(15)]
    assert {m["media"]["track"] for m in media} == {"inbound"}
    assert [m["sequenceNumber"] for m in msgs[1:]] == [str(i) for i in range(1, 18)]
    assert msgs[-1]["event"] == "stop" and msgs[-1]["stop"]["callSid"] == call.call_sid
    assert call.result().summary()["hangup"]["by"] == "caller"


def test_webhook_and_upgrade_carry_valid_signatures() -> None:
    with standin(listen_until_stop) as (base, seen):
        call = run_call(base, silence(0.1), auth_token=TOKEN, public_url=PUBLIC)
    v = RequestValidator(TOKEN)
    assert set(seen.voice_form) == {"CallSid", "AccountSid", "From", "To"}
    assert v.validate(PUBLIC + "/voice", seen.voice_form, seen.voice_sig)
    assert v.validate("wss://example.ngrok.app/media", {}, seen.ws_sig)
    assert call.result().ws_url == base.replace("http", "ws") + "/media"


def test_marks_echo_after_playout_and_at_once_after_clear_or_when_empty() -> None:
    with standin(greet_then_barge) as (base, seen):
        call = run_call(base, silence(3.0))
        assert seen.done.wait(2)
    assert seen.echo_delays["resp1:item1:240"] >= 0.230  # echoed once 240 ms had played
    echoes = [m for m in seen.messages if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in echoes] == [
        "resp1:item1:240",
        "resp2:item2:900",
        "nothing-buffered",
    ]
    assert all(m["sequenceNumber"].isdigit() for m in echoes)
    result = call.result()
    assert [(e.name, e.played) for e in result.echoes] == [
        ("resp1:item1:240", True),
        ("resp2:item2:900", False),
        ("nothing-buffered", True),
    ]
    assert [e.event for e in result.timeline].count("recv clear") == 1


def test_summary_reports_greeting_clear_responses_and_server_hangup() -> None:
    with standin(greet_then_barge) as (base, seen):
        call = run_call(base, silence(3.0))
        assert seen.done.wait(2)
    s = call.result().summary()
    json.dumps(s)  # JSON-able
    assert s["connected"] and s["error"] is None
    assert s["time_to_first_audio_ms"] is not None and s["time_to_first_audio_ms"] > 0
    assert s["greeting"]["heard_ms"] == 240.0 and not s["greeting"]["interrupted"]
    assert s["bursts"] == 2 and s["responses"] == 2
    assert s["response_ids"] == ["resp1", "resp2"]
    [clear] = s["clears"]
    assert clear["dropped_ms"] > 0 and clear["flushed_marks"] == 1
    assert clear["heard_after_ms"] == 0.0
    assert s["heard_ms_per_item"]["item1"] == 240.0
    assert 0 < s["heard_ms_per_item"]["item2"] < 900
    assert s["marked_ms_per_item"] == {"item1": 240.0}
    assert s["marks"] == {"received": 3, "echoed_played": 2, "echoed_flushed": 1}
    assert s["hangup"]["by"] == "server"
    assert s["frames_sent"] < 150  # the server hung up before the 3 s script ended


def test_unreachable_server_fails_without_threads() -> None:
    with standin(listen_until_stop) as (base, _):
        pass  # the port is closed again
    call = EmulatedCall(base, silence(0.1), CallOptions(connect_timeout=1.0))
    assert call.start() is False
    result = call.result()
    assert not result.connected and result.error
    assert result.summary()["connected"] is False


def test_outputs_are_aligned_wavs_table_and_json(tmp_path: Path) -> None:
    with standin(greet_then_barge) as (base, seen):
        call = run_call(base, silence(3.0))
        assert seen.done.wait(2)
    result = call.result()
    paths = write_outputs(result, tmp_path / "call", plot=False)
    assert [p.name for p in paths] == [
        "call.heard.wav",
        "call.stereo.wav",
        "call.timeline.txt",
        "call.json",
    ]
    with wave.open(str(paths[1])) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    first = result.heard[0]
    lo = round(first.start * 8000)
    assert not stereo[: lo - 1, 1].any() and stereo[lo : lo + 100, 1].all()
    table = format_timeline(result)
    assert "recv clear" in table and "echo mark" in table and "hangup" in table
    assert json.loads(paths[3].read_text())["hangup"]["by"] == "server"
