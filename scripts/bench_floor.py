"""The floor for scripts/bench.py: the least a relay on mediasrv's stack can do.

Same stack as mediasrv (gunicorn gthread, Flask, flask-sock/simple-websocket towards
Twilio, websocket-client towards the Realtime backend, one thread per job), but nothing
else: every caller frame is forwarded as its own `input_audio_buffer.append` (the
payload string is reused, not decoded), the backend's server VAD decides turns and
barge-in, and the backend's audio is cut into 160-byte frames and paced back at 20 ms.
No VAD, no echo guard, no marks, no playback ledger, no logging, no metrics. On
`speech_started` it flushes its queue and sends `clear` (or every barge-in would leave
the rest of the answer playing and the floor would do more work than mediasrv).

Not part of mediasrv: `gunicorn --pythonpath scripts bench_floor:app`, with
BENCH_BACKEND_URL set to the Realtime backend's ws:// URL.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from base64 import b64decode, b64encode
from typing import Any

import websocket
from flask import Flask, Response, request
from flask_sock import Sock

BACKEND_URL = os.environ.get("BENCH_BACKEND_URL", "")
FRAME = 160
TICK = 0.020
SESSION_UPDATE = json.dumps({
    "type": "session.update",
    "session": {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "Be brief.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": {"type": "server_vad", "create_response": True,
                                   "interrupt_response": True},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
    },
})
GREETING = json.dumps({"type": "response.create",
                       "response": {"metadata": {"purpose": "greeting"}}})
CLEAR = object()  # queue item: the caller barged in

app = Flask(__name__)
sock = Sock(app)


@app.post("/voice")
def voice() -> Response:
    twiml = ('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
             f'<Stream url="wss://{request.host}/media" /></Connect></Response>')
    return Response(twiml, mimetype="text/xml")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok")


@sock.route("/media")
def media(ws: Any) -> None:
    out: queue.Queue[Any] = queue.Queue()
    done = threading.Event()
    rt: websocket.WebSocket | None = None
    try:
        while True:
            raw = ws.receive()
            if raw is None:
                return
            msg = json.loads(raw)
            event = msg["event"]
            if event == "media" and rt is not None:
                rt.send('{"type":"input_audio_buffer.append","audio":"'
                        + msg["media"]["payload"] + '"}')
            elif event == "start":
                sid = msg["start"]["streamSid"]
                rt = websocket.create_connection(BACKEND_URL, enable_multithread=True)
                rt.send(SESSION_UPDATE)
                rt.send(GREETING)
                threading.Thread(target=_reader, args=(rt, out, done), daemon=True).start()
                threading.Thread(target=_pacer, args=(ws, sid, out, done), daemon=True).start()
            elif event == "stop":
                return
    finally:
        done.set()
        if rt is not None:
            rt.close()


def _reader(rt: websocket.WebSocket, out: queue.Queue[Any], done: threading.Event) -> None:
    try:
        while not done.is_set():
            ev = json.loads(rt.recv())
            kind = ev.get("type")
            if kind == "response.output_audio.delta":
                audio = b64decode(ev["delta"])
                for i in range(0, len(audio), FRAME):
                    out.put(audio[i : i + FRAME])
            elif kind == "input_audio_buffer.speech_started":
                while True:
                    try:
                        out.get_nowait()
                    except queue.Empty:
                        break
                out.put(CLEAR)
    except Exception:  # the backend closed: the call is over
        done.set()


def _pacer(ws: Any, sid: str, out: queue.Queue[Any], done: threading.Event) -> None:
    head = '{"event":"media","streamSid":"' + sid + '","media":{"payload":"'
    clear = '{"event":"clear","streamSid":"' + sid + '"}'
    deadline = 0.0
    try:
        while not done.is_set():
            try:
                frame = out.get(timeout=0.1)
            except queue.Empty:
                continue
            if frame is CLEAR:
                ws.send(clear)
                continue
            now = time.monotonic()
            if now - deadline > 0.2:
                deadline = now  # idle or far behind: start a new burst now
            elif deadline > now:
                time.sleep(deadline - now)
            ws.send(head + b64encode(frame).decode("ascii") + '"}}')
            deadline += TICK
    except Exception:  # Twilio closed: the call is over
        done.set()
