"""The echo canceller alone: the bot's prompt sent, its echo coming back, no caller."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mediasrv.aec import EchoCanceller
from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw

BOT = Path(__file__).resolve().parent / "audio" / "speech" / "en_espeak_bot_prompt.wav"
TICK = 0.020
DELAY = 160 * 8  # 160 ms


def bot_frames() -> list[np.ndarray]:
    with wave.open(str(BOT), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    ulaw = np.frombuffer(pcm16_to_ulaw(pcm), np.uint8)
    return [ULAW_DECODE[ulaw[i : i + 160]] for i in range(0, len(ulaw) - 159, 160)]


def echo_run(path: np.ndarray, echo_loss_db: float, frames: int) -> EchoCanceller:
    """Feed `frames` frames of the bot out and its echo (mu-law, like Twilio) back."""
    aec = EchoCanceller()
    sent = bot_frames()
    echo = np.zeros(len(sent) * 160 + DELAY + 200)
    g = 10 ** (-echo_loss_db / 20)
    hiss = np.random.default_rng(3).standard_normal(echo.shape[0]) * 10  # -70 dBFS
    now = 0.0
    for i in range(frames):
        now += TICK
        aec.on_sent((sent[i] / 32768.0).astype(np.float32), now)
        played = np.convolve(sent[i].astype(np.float64), path) * g
        echo[i * 160 + DELAY : i * 160 + DELAY + played.shape[0]] += played
        inbound = echo[i * 160 : (i + 1) * 160] + hiss[i * 160 : (i + 1) * 160]
        y = ULAW_DECODE[np.frombuffer(pcm16_to_ulaw(np.rint(inbound).astype(np.int16)), np.uint8)]
        aec.process((y / 32768.0).astype(np.float32), now)
        aec.commit(caller=False)
    return aec


def test_finds_a_pure_delay_and_converges_within_three_seconds() -> None:
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=150)
    assert aec.delay is not None and abs(aec.delay - DELAY) <= 2
    assert aec.erle_db >= 15.0


def test_converges_on_a_dispersive_hybrid_echo() -> None:
    path = np.convolve([0.1, 0.7, 1.0, 0.35, -0.3, -0.35], np.exp(-np.arange(24) / 6.0))
    path /= np.abs(np.fft.rfft(path, 256)).max()  # no frequency louder than the ERL says
    aec = echo_run(path, echo_loss_db=6.0, frames=150)
    assert aec.delay is not None and DELAY - 8 <= aec.delay <= DELAY + 40
    assert aec.erle_db >= 15.0


def test_residual_is_the_inbound_until_a_delay_is_known() -> None:
    aec = EchoCanceller()
    y = np.full(160, 0.1, dtype=np.float32)
    assert np.array_equal(aec.process(y, 0.02), y)
    assert aec.delay is None and aec.erle_db == 0.0
