"""Measure pre-warm: time to the greeting's first audio from the stream's start.

    PYTHONPATH=. .venv/bin/python scripts/prewarm_bench.py [--calls 10] [--handshake 1.0]
        [--delays 0,0.5,1.0]

The built-in backend answers every WebSocket upgrade `--handshake` seconds late (a far
away API: about 1 s for OpenAI). For each delay D between /voice and the stream's
start (Twilio's own set-up: the emulator waits D after reading the TwiML), `--calls`
calls are placed one after the other with PREWARM_TIMEOUT_S=10 (on) and =0 (off), and
the emulator's first audio after it sent `start` is reported (min / p50 / max ms).
With pre-warm the handshake runs during D; without it, only after the stream starts.
A benchmark, not a test: say how loaded the machine was (it prints `uptime`'s load).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.script import CallerScript  # noqa: E402
from mediasrv.localbackend import BackendOptions, LocalBackend  # noqa: E402
from mediasrv.testing.harness import LocalServer  # noqa: E402
from mediasrv.web.settings import load_settings  # noqa: E402

CALL_S = 3.0  # the caller listens this long: the greeting starts well within it


def first_audio_ms(base_url: str, delay_s: float) -> float | None:
    script = CallerScript(bytes([0xFF]) * int(CALL_S * 8000))
    call = EmulatedCall(base_url, script, CallOptions(stream_delay_s=delay_s))
    result = call.run(timeout=CALL_S + 10)
    value = result.summary()["first_audio_after_start_ms"]
    return None if value is None else float(value)


def measure(backend_url: str, prewarm_s: float, delay_s: float, calls: int) -> list[float]:
    settings = load_settings({}, openai_realtime_url=backend_url, prewarm_timeout_s=prewarm_s,
                             silence_timeout_s=60.0, log_level="warning")
    with LocalServer(settings) as server:
        values = [first_audio_ms(server.base_url, delay_s) for _ in range(calls)]
    return [v for v in values if v is not None]


def row(values: list[float]) -> str:
    if not values:
        return "no audio"
    a = np.asarray(values)
    return (f"{a.min():6.0f} / {np.percentile(a, 50):6.0f} / {a.max():6.0f} ms"
            f"  (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--handshake", type=float, default=1.0)
    parser.add_argument("--delays", default="0,0.5,1.0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    delays = [float(d) for d in args.delays.split(",")]
    print(f"load average before: {os.getloadavg()}")
    backend = LocalBackend(BackendOptions(handshake_delay_s=args.handshake)).start()
    try:
        print(f"handshake delay {args.handshake:g} s; first audio after the stream's start, "
              "min / p50 / max")
        for delay in delays:
            on = measure(backend.url, 10.0, delay, args.calls)
            off = measure(backend.url, 0.0, delay, args.calls)
            print(f"stream {delay:g} s after /voice: pre-warm {row(on)}; without {row(off)}")
    finally:
        backend.stop()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
