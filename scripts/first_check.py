"""What the first call pays after start-up: its first end-of-turn check and VAD window.

    PYTHONPATH=. .venv/bin/python scripts/first_check.py [--repeat 3]

Builds the app as the gunicorn worker does (`create_app(load_settings())`, local turn
detection with the end-of-turn model, no keys), then times on the process's shared
sessions the first end-of-turn check on 2 s of speech, the checks after it, and the
first VAD window: a start-up that left a model unloaded or unwarmed (or a memory change
that made the first runs slower) shows here as a first check far above the next ones.
Also prints the process's RSS after start-up (this process alone, not gunicorn's two).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "tests" / "audio" / "speech" / "en_asterisk_allison_tt-weasels.wav"


def speech_8k() -> npt.NDArray[np.float32]:
    with wave.open(str(SPEECH), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm[: 2 * 8000].astype(np.float32) / 32768.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="checks after the first")
    args = parser.parse_args()
    os.environ.update(TURN_DETECTION="local", TURN_MODEL="smart-turn", LOG_LEVEL="warning",
                      OPENAI_REALTIME_URL="ws://127.0.0.1:9/v1/realtime")  # never dialled
    os.environ.pop("OPENAI_API_KEY", None)
    logging.disable(logging.WARNING)  # the no-signature warning is not this script's
    from mediasrv.models import turn_model, vad_silero
    from mediasrv.web.app import create_app
    from mediasrv.web.settings import load_settings

    start = time.perf_counter()
    create_app(load_settings())
    startup_ms = ms_since(start)
    audio = speech_8k()
    model = turn_model.SmartTurn(turn_model.load_session())
    checks = []
    for _ in range(1 + args.repeat):
        start = time.perf_counter()
        model.probability(audio)
        checks.append(ms_since(start))
    vad = vad_silero.SileroClassifier()
    start = time.perf_counter()
    for frame in audio[: 5 * 160].reshape(5, 160):  # 5 frames: the first 256-sample window
        vad.push(frame, True)
    print(f"start-up {startup_ms} ms, RSS {rss_mb():.1f} MB; end-of-turn check ms: first "
          f"{checks[0]}, then {checks[1:]}; first VAD window {ms_since(start)} ms")


if __name__ == "__main__":
    main()
