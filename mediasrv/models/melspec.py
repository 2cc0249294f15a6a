"""Whisper-style log-mel features for the Smart Turn model (numpy only).

Layer: models.

Smart Turn v3 is Whisper-tiny's encoder plus a classifier, trained on features made by
Hugging Face's `WhisperFeatureExtractor(chunk_length=8)` with `do_normalize=True` (the
smart-turn repository's training script; the model card's "notes on input format"). That
spec, written out here from Whisper's documented front end:

- input: 16 kHz mono, exactly 8 s (128,000 samples). A longer turn keeps its *last* 8 s;
  a shorter one is zero-padded at the *start*, so the end of speech always sits at the end
  of the window, where the model was trained to look;
- the whole window (padding included) is normalised to zero mean and unit variance
  (variance + 1e-7), so the caller's loudness does not matter;
- STFT: 400-sample (25 ms) periodic Hann window, 160-sample (10 ms) hop, frames centred
  (the signal reflect-padded by 200 samples at both ends), power spectrum |X|^2 over
  201 bins; 801 frames, of which the last is dropped -> 800 frames;
- 80 triangular mel filters on the Slaney mel scale (linear below 1 kHz, logarithmic
  above), spanning 0-8 kHz, each scaled to unit area ("slaney" norm: 2 / width in Hz);
- log10 of the mel energies floored at 1e-10; then everything more than 8 (80 dB) below the
  window's maximum is raised to that level; then (x + 4) / 4.

Output: float32 (80, 800). Checked against `transformers` 5.23.0 in a scratch venv:
see `scripts/eot_eval.py --features` and the README (not a run-time dependency).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mediasrv.models.resample import Floats

SAMPLE_RATE = 16000
WINDOW_S = 8
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_S
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 80
N_FRAMES = WINDOW_SAMPLES // HOP  # 800: the STFT's extra centred frame is dropped

_LOG_FLOOR = 1e-10
# Frames transformed at a time. All 800 at once, numpy's rfft held 6 MB beside its 1.3 MB
# output (8.3 MB traced at its peak), freed after each end-of-turn check but kept by
# glibc: +10 MB RSS after the first checks, counted as the first calls' memory. 100 at a
# time: the same values, bit for bit (tests/test_melspec.py).
_FFT_ROWS = 100
_DYNAMIC_RANGE = 8.0  # log10 units: 80 dB below the loudest mel cell
_NORM_EPS = 1e-7


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney: 3 mel per 200 Hz up to 1 kHz (= 15 mel), then 27 mel per factor 6.4.
    log_part = 15.0 + 27.0 * np.log(np.maximum(hz, 1e-9) / 1000.0) / np.log(6.4)
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, log_part)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    log_part = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel < 15.0, mel * 200.0 / 3.0, log_part)


def mel_filters() -> npt.NDArray[np.float64]:
    """Return the (80, 201) Slaney filter bank: row m weights the FFT bins of band m."""
    edges_mel = np.linspace(0.0, _hz_to_mel(np.array(SAMPLE_RATE / 2.0)), N_MELS + 2)
    edges = _mel_to_hz(edges_mel)  # band m rises from edges[m], peaks at m+1, ends at m+2
    bins_hz = np.linspace(0.0, SAMPLE_RATE / 2.0, N_FFT // 2 + 1)
    bank = np.empty((N_MELS, bins_hz.size))
    for m in range(N_MELS):
        low, peak, high = edges[m], edges[m + 1], edges[m + 2]
        triangle = np.interp(bins_hz, [low, peak, high], [0.0, 1.0, 0.0], left=0.0, right=0.0)
        bank[m] = triangle * 2.0 / (high - low)
    return bank


_MEL_T = np.ascontiguousarray(mel_filters().T, dtype=np.float32)  # (201, 80)
_HANN = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def fit_window(x: npt.NDArray[np.floating]) -> Floats:
    """Return the last 8 s of `x` (16 kHz), zero-padded at the start to exactly 8 s."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[0] >= WINDOW_SAMPLES:
        return np.ascontiguousarray(x[-WINDOW_SAMPLES:])
    out = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    if x.shape[0]:
        out[-x.shape[0] :] = x
    return out


def log_mel(x: npt.NDArray[np.floating]) -> Floats:
    """Return the (80, 800) features of `x` (16 kHz; fitted to the 8 s window first)."""
    w = fit_window(x)
    w = (w - w.mean()) / np.sqrt(w.var() + np.float32(_NORM_EPS))
    padded = np.pad(w, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    power = np.empty((N_FRAMES, N_FFT // 2 + 1), dtype=np.float32)  # (800, 201)
    for i in range(0, N_FRAMES, _FFT_ROWS):  # each frame's transform is its own row
        spectrum = np.fft.rfft(frames[i : i + _FFT_ROWS] * _HANN, axis=1)
        np.add(spectrum.real**2, spectrum.imag**2, out=power[i : i + _FFT_ROWS])
    mel = (power @ _MEL_T).T  # (80, 800); this operand order is 20x faster in BLAS
    logs = np.log10(np.maximum(mel, np.float32(_LOG_FLOOR)))
    logs = np.maximum(logs, logs.max() - np.float32(_DYNAMIC_RANGE))
    return ((logs + np.float32(4.0)) / np.float32(4.0)).astype(np.float32)
