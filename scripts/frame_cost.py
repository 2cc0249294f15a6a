"""CPU per inbound frame of the turn policy (VAD + echo guard + canceller) while the bot talks.

    PYTHONPATH=. .venv/bin/python scripts/frame_cost.py [silence|hiss|echo20|echo10 ...]

No server, no threads: one `TurnPolicy` is fed the bot's long answer prompt as sent audio
(`on_sent`) and, frame by frame, an inbound line: digital silence, -60 dBFS hiss, or the
bot's own echo 100 ms later at 20 or 10 dB of loss over faint hiss. Prints process CPU
per frame (`feed` + `on_sent`) and what the canceller found. The rx loop pays this for
every inbound frame while the bot talks; the floor pays none of it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw
from mediasrv.policy.turns import TurnConfig, TurnPolicy

PROMPT = Path(__file__).resolve().parent.parent / "mediasrv" / "prompts" / "long_answer.ulaw"
ECHO_DELAY = 800  # samples: 100 ms
KINDS = ("silence", "hiss", "echo20", "echo10")


def inbound(kind: str, bot: np.ndarray, rng: np.random.Generator) -> bytes:
    n = bot.size
    if kind == "silence":
        return bytes([0xFF]) * n
    if kind == "hiss":
        x = rng.standard_normal(n) * 32768 * 10 ** (-60 / 20)
    else:
        loss_db = float(kind.removeprefix("echo"))
        echo = np.concatenate([np.zeros(ECHO_DELAY), bot[: n - ECHO_DELAY]])
        x = echo * 10 ** (-loss_db / 20) + rng.standard_normal(n) * 30
    return pcm16_to_ulaw(np.clip(x, -32768, 32767).astype(np.int16))


def run(kind: str, sent: bytes) -> str:
    bot = ULAW_DECODE[np.frombuffer(sent, np.uint8)].astype(np.float64)
    line = inbound(kind, bot, np.random.default_rng(0))
    policy = TurnPolicy(TurnConfig())
    frames = len(sent) // 160
    t0 = time.process_time()
    for i in range(frames):
        now = i * 0.020
        policy.on_sent(sent[i * 160 : (i + 1) * 160], now)
        policy.feed(line[i * 160 : (i + 1) * 160], now + 0.001, ai_playing=True, closing=False)
    per_frame_us = 1e6 * (time.process_time() - t0) / frames
    aec = policy.echo.canceller
    found = "off" if aec is None else f"delay {aec.delay} samples, ERLE {aec.erle_db:.1f} dB"
    return f"{kind:8s} {frames} frames: {per_frame_us:6.1f} us a frame (canceller: {found})"


def main(argv: list[str]) -> int:
    sent = PROMPT.read_bytes()
    sent = sent[: len(sent) // 160 * 160]
    for kind in argv or KINDS:
        if kind not in KINDS:
            print(f"unknown line {kind!r}: one of {', '.join(KINDS)}", file=sys.stderr)
            return 2
        print(run(kind, sent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
