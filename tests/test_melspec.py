"""Whisper-style log-mel features for the end-of-turn model (mediasrv.models.melspec)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.models import melspec
from mediasrv.models.melspec import N_FRAMES, N_MELS, WINDOW_SAMPLES, fit_window, log_mel

GOLDEN = Path(__file__).resolve().parent / "audio" / "golden" / "whisper_features_chirp.npz"
RATE = 16000


def tone(hz: float, seconds: float = 2.0) -> npt.NDArray[np.float32]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def loudest_band(hz: float) -> int:
    features = log_mel(tone(hz))
    return int(np.argmax(features[:, -100:].mean(axis=1)))  # the tone fills the last 2 s


def test_features_are_80_bands_by_800_frames_for_any_length() -> None:
    for seconds in (0.5, 8.0, 11.0):
        out = log_mel(np.zeros(int(RATE * seconds), np.float32) + 0.01)
        assert out.shape == (N_MELS, N_FRAMES) and out.dtype == np.float32


def test_short_audio_is_padded_at_the_start() -> None:
    window = fit_window(np.ones(RATE, np.float32))
    assert window.shape == (WINDOW_SAMPLES,)
    assert window[: WINDOW_SAMPLES - RATE].max() == 0.0 and window[-RATE:].min() == 1.0


def test_long_audio_keeps_its_last_8_s() -> None:
    x = np.arange(WINDOW_SAMPLES + 500, dtype=np.float32)
    assert fit_window(x)[0] == 500.0 and fit_window(x)[-1] == x[-1]


def test_a_1khz_tone_lands_in_mel_band_26() -> None:
    # Slaney: 1 kHz is 15 mel, 8 kHz is 15 + 27 ln(8) / ln(6.4) = 45.25 mel; the 82 band
    # edges are 45.25 / 81 = 0.559 mel apart, band m peaks at edge m + 1. 15 mel is edge
    # 26.85: the nearest peak is edge 27, band 26.
    assert loudest_band(1000.0) == 26


def test_a_3khz_tone_lands_in_mel_band_54() -> None:
    # 3 kHz is 15 + 27 ln(3) / ln(6.4) = 30.94 mel = edge 55.39: nearest peak edge 55, band 54.
    assert loudest_band(3000.0) == 54


def test_silence_gives_the_floor_everywhere() -> None:
    # log10 of the 1e-10 floor is -10; (-10 + 4) / 4 = -1.5.
    assert np.allclose(log_mel(np.zeros(RATE, np.float32)), -1.5, rtol=0, atol=1e-6)


def test_nothing_is_more_than_80_db_below_the_loudest_cell() -> None:
    out = log_mel(tone(440.0))
    assert out.max() - out.min() <= 2.0 + 1e-6  # 8 log10 units, scaled by 1/4


def test_the_callers_loudness_does_not_change_the_features() -> None:
    x = tone(700.0) + 0.01 * np.random.default_rng(1).standard_normal(2 * RATE).astype(np.float32)
    assert np.max(np.abs(log_mel(x) - log_mel(0.05 * x))) < 1e-3


def test_features_match_the_reference_extractor() -> None:
    # Golden output of transformers 5.23.0 WhisperFeatureExtractor(chunk_length=8),
    # do_normalize=True, for this input (made once in a scratch venv: not a dependency).
    t = np.arange(int(1.5 * RATE)) / RATE
    phase = 2 * np.pi * (200.0 * t + (6000.0 - 200.0) * t * t / (2 * 1.5))
    noise = 0.01 * np.random.default_rng(5).standard_normal(t.size)
    x = (0.3 * np.sin(phase) + noise).astype(np.float32)
    reference = np.load(GOLDEN)["features"]
    assert np.max(np.abs(log_mel(x) - reference)) < 1e-4


def all_frames_at_once(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """`log_mel` with all 800 frames in one transform, as before it went by rows."""
    w = fit_window(x)
    w = (w - w.mean()) / np.sqrt(w.var() + np.float32(melspec._NORM_EPS))
    padded = np.pad(w, melspec.N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, melspec.N_FFT)[::160][:N_FRAMES]
    spectrum = np.fft.rfft(frames * melspec._HANN, axis=1)
    mel = ((spectrum.real**2 + spectrum.imag**2) @ melspec._MEL_T).T
    logs = np.log10(np.maximum(mel, np.float32(melspec._LOG_FLOOR)))
    logs = np.maximum(logs, logs.max() - np.float32(melspec._DYNAMIC_RANGE))
    return ((logs + np.float32(4.0)) / np.float32(4.0)).astype(np.float32)


def test_features_by_rows_are_those_of_all_frames_at_once_bit_for_bit() -> None:
    rng = np.random.default_rng(9)
    for x in (tone(700.0, 8.0) + 0.01 * rng.standard_normal(8 * RATE).astype(np.float32),
              (0.2 * rng.standard_normal(3 * RATE)).astype(np.float32)):
        assert log_mel(x).tobytes() == all_frames_at_once(x).tobytes()


def test_features_are_made_in_under_4_mb() -> None:
    x = tone(700.0, 8.0)
    log_mel(x)  # numpy's FFT plan, once
    tracemalloc.start()
    try:
        log_mel(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 8.3 MB with all 800 frames in one transform: glibc kept it after the end-of-turn
    # check, +10 MB RSS in a server that checked once (the benchmark counted it per call).
    assert peak < 4 * 2**20
