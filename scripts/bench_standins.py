"""Measure what the cascade stand-ins' engines cost: CPU per audio second and memory.

    PYTHONPATH=. .venv/bin/python scripts/bench_standins.py [--repeat 3]

- Deepgram session (VAD + segmentation + recogniser) over every English speech file of
  tests/audio/speech with 1 s of silence around each, as 20 ms frames: once with
  pocketsphinx, once with canned transcripts. CPU is this process's (time.process_time).
- espeak-ng renders of a few sentences, 20 times each, to 8 kHz mu-law with timings.
- Memory: RSS after loading the first and a second pocketsphinx decoder, and after
  espeak-ng is loaded (psutil). The machine load is printed first: numbers from a busy
  shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import time
import wave
from pathlib import Path

import numpy as np
import psutil

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")
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
