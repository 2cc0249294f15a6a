"""Measure what the cascade stand-ins' engines cost: CPU per audio second and memory.

    PYTHONPATH=. .venv/bin/python scripts/bench_standins.py [--repeat 3]

- Deepgram session (VAD + segmentation + recogniser) over every English speech file of
  tests/audio/speech with 1 s of silence around each, as 20 ms frames: once with
  pocketsphinx, once with canned transcripts. CPU is this process's (time.process_time).
- espeak-ng renders of a few sentences, 20 times each, to 8 kHz mu-law with timings.
- Memory: RSS after loading the first and a second pocketsphinx decoder, and after
  espeak-ng is loaded (psutil). The machine load is printed first: numbers from a busy
  shared machine are upper bounds.
- With `--sockets N`: the Deepgram (canned) and ElevenLabs stand-ins as their own
  processes, N callers each (Deepgram: 20 ms frames in real time; ElevenLabs: a ~4 s
  answer every 5 s) for `--seconds`; the stand-in process's CPU per call-second, i.e.
  what they add to a cascade benchmark's machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import websocket

from mediasrv.audio import FRAME_BYTES, pcm16_to_ulaw
from mediasrv.localservices.common import Stats
from mediasrv.localservices.deepgram_session import DeepgramSession, SessionConfig
from mediasrv.localservices.deepgram_wire import parse_params
from mediasrv.localservices.recognizer import (
    CannedRecognizer,
    DecoderPool,
    Recognizer,
    SphinxRecognizer,
)
from mediasrv.localservices.voice import EspeakVoice

SPEECH = Path(__file__).resolve().parent.parent / "tests" / "audio" / "speech"
PARAMS = ("model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true"
          "&endpointing=300&utterance_end_ms=1000&vad_events=true")
SENTENCES = ("Sure, I can help you with that.",
             "Your order was shipped yesterday and should arrive on Friday.",
             "That was the echo of what I heard. This answer is long on purpose, so you can "
             "test interrupting me.")


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def caller_audio() -> bytes:
    silence = bytes([0xFF]) * 8000
    audio = b""
    for path in sorted(SPEECH.glob("en_*.wav")):
        with wave.open(str(path)) as w:
            audio += silence + pcm16_to_ulaw(np.frombuffer(w.readframes(w.getnframes()),
                                                            np.int16))
    return audio + silence


def bench_deepgram(recognizer: Recognizer, audio: bytes) -> tuple[float, int]:
    """Return (CPU s per audio s, final results) for one session over `audio`."""
    stats = Stats()
    session = DeepgramSession(parse_params(PARAMS), recognizer, SessionConfig(), stats, 0.0,
                              "2026-01-01T00:00:00Z")
    start = time.process_time()
    for i in range(0, len(audio), FRAME_BYTES):
        session.on_binary(audio[i : i + FRAME_BYTES], 0.0)
    session.on_text('{"type": "CloseStream"}', 0.0)
    cpu = time.process_time() - start
    return cpu / (len(audio) / 8000), stats.snapshot()["counts"].get("results_final", 0)


def bench_espeak(voice: EspeakVoice) -> float:
    start = time.process_time()
    seconds = 0.0
    for _ in range(20):
        for sentence in SENTENCES:
            seconds += len(voice.render(sentence).audio) / 8000
    return (time.process_time() - start) / seconds




# -- the stand-ins as processes, over sockets -----------------------------------------------


def spawn(service: str, *extra: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start `python -m mediasrv.localservices <service>`; return it, its URL and its key."""
    proc = subprocess.Popen([sys.executable, "-m", "mediasrv.localservices", service,
                             "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url, key = proc.stdout.readline().split()[-2:]  # "<service> stand-in: <url> key=<key>"
    return proc, url, key.removeprefix("key=")


def _paced(calls: int, seconds: float, one_call: Callable[[int, threading.Event], None]
           ) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=one_call, args=(i, stop), name=f"bench-client-{i}")
               for i in range(calls)]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=10)


def deepgram_call(url: str, key: str, audio: bytes) -> Callable[[int, threading.Event], None]:
    def run(i: int, stop: threading.Event) -> None:
        ws = websocket.create_connection(f"{url}?{PARAMS}", timeout=10,
                                         header=[f"Authorization: Token {key}"])
        reader = threading.Thread(target=_drain, args=(ws,), name=f"bench-reader-{i}")
        reader.start()
        next_at = time.monotonic()
        offset = (i * 7919 * FRAME_BYTES) % len(audio)  # callers do not speak in unison
        while not stop.is_set():
            ws.send_binary(audio[offset : offset + FRAME_BYTES])
            offset = (offset + FRAME_BYTES) % (len(audio) - FRAME_BYTES)
            next_at += 0.02
            stop.wait(max(0.0, next_at - time.monotonic()))
        ws.send('{"type": "CloseStream"}')
        reader.join(timeout=10)
        ws.close()
    return run


def tts_call(url: str, key: str) -> Callable[[int, threading.Event], None]:
    def run(i: int, stop: threading.Event) -> None:
        ws = websocket.create_connection(url, timeout=10, header=[f"xi-api-key: {key}"])
        reader = threading.Thread(target=_drain, args=(ws,), name=f"bench-reader-{i}")
        reader.start()
        turn = 0
        while not stop.is_set():  # one answer of ~4 s audio every 5 s
            context = f"turn-{turn}"
            for msg in ({"text": " ", "context_id": context},
                        {"text": SENTENCES[turn % len(SENTENCES)] + " ", "context_id": context},
                        {"context_id": context, "flush": True},
                        {"context_id": context, "close_context": True}):
                ws.send(json.dumps(msg))
            turn += 1
            stop.wait(5.0)
        ws.send(json.dumps({"close_socket": True}))
        reader.join(timeout=10)
        ws.close()
    return run


def _drain(ws: websocket.WebSocket) -> None:
    try:
        while ws.recv_data()[0] != websocket.ABNF.OPCODE_CLOSE:
            pass
    except (websocket.WebSocketException, OSError):
        pass


def bench_sockets(calls: int, seconds: float) -> None:
    """CPU of each stand-in process per call-second, `calls` callers for `seconds`."""
    audio = caller_audio()
    for service, extra, make in (
            ("deepgram", ("--recognizer", "canned"),
             lambda url, key: deepgram_call(url, key, audio)),
            ("elevenlabs", (), lambda url, key: tts_call(
                url + "/v1/text-to-speech/v1/multi-stream-input?model_id=eleven_flash_v2_5"
                "&output_format=ulaw_8000&sync_alignment=true", key))):
        proc, url, key = spawn(service, *extra)
        try:
            process = psutil.Process(proc.pid)
            before = sum(process.cpu_times()[:2])
            _paced(calls, seconds, make(url, key))
            cpu = sum(process.cpu_times()[:2]) - before
            print(f"{service} stand-in process: {calls} calls x {seconds:.0f} s: "
                  f"{cpu / (calls * seconds):.5f} CPU s per call-second "
                  f"({100 * cpu / seconds:.1f}% of one core)")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=0, help="callers per stand-in process")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")
    if args.sockets:
        bench_sockets(args.sockets, args.seconds)
        return
    audio = caller_audio()
    print(f"caller audio: {len(audio) / 8000:.1f} s (speech files of tests/audio/speech)")
    base = rss_mb()
    pool = DecoderPool()
    first = pool.acquire()
    one = rss_mb()
    second = pool.acquire()
    two = rss_mb()
    pool.release(first)
    pool.release(second)
    print(f"RSS {base:.0f} MB; +{one - base:.0f} MB first pocketsphinx decoder; "
          f"+{two - one:.0f} MB second")
    voice = EspeakVoice()
    before = rss_mb()
    voice.render("warm up")
    print(f"RSS +{rss_mb() - before:.0f} MB after loading espeak-ng")
    for run in range(1, args.repeat + 1):
        sphinx, finals = bench_deepgram(SphinxRecognizer(pool), audio)
        canned, _ = bench_deepgram(CannedRecognizer(("canned words",)), audio)
        espeak = bench_espeak(voice)
        print(f"run {run}: deepgram pocketsphinx {sphinx:.4f} CPU s per audio s "
              f"({finals} finals); canned {canned:.4f}; espeak-ng {espeak:.5f} CPU s per "
              f"audio s")


if __name__ == "__main__":
    main()
