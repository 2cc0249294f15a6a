"""Hand-made spectral speech classifier: the numpy-only alternative to silero.

Kept as the measured alternative (`scripts/vad_eval.py`), not the default. Per active
frame, over the last 256 samples with a Hann window:

- voicing: the normalised autocorrelation peak at pitch lags 60-400 Hz (noise has none);
- flatness: geometric / arithmetic mean of the 250-3500 Hz power spectrum (noise is flat);
- tonality: the strongest bin's share of that power (a beep, DTMF or ring-back is a few
  bins, a voice spreads over its harmonics);
- syllabic modulation: the spread of frame levels over the last 500 ms (speech rises and
  falls at ~4 Hz, a hold-music bed or a noise is steadier).

Its probability is the share of voiced, non-tonal frames over the last 200 ms, zeroed
when the level modulation is too small.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

_N = 256
_WINDOW = np.hanning(_N).astype(np.float32)
_BAND = slice(8, 113)  # 250-3500 Hz at 31.25 Hz per bin
_LAGS = slice(20, 134)  # 400-60 Hz pitch at 8 kHz
_VOICING_MIN = 0.35
_FLATNESS_MAX = 0.35
_TONALITY_MAX = 0.30
_MODULATION_MIN_DB = 4.0
_VOICED_HISTORY = 10  # frames: 200 ms
_LEVEL_HISTORY = 25  # frames: 500 ms, two syllables


class SpectralClassifier:
    """Numpy features over the last 256 samples; a new probability every frame."""

    def __init__(self) -> None:
        self._buf = np.zeros(_N, dtype=np.float32)
        self._voiced: deque[bool] = deque(maxlen=_VOICED_HISTORY)
        self._levels: deque[float] = deque(maxlen=_LEVEL_HISTORY)

    def reset(self) -> None:
        """Forget the sample history and feature history."""
        self._buf.fill(0.0)
        self._voiced.clear()
        self._levels.clear()

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        """Take one frame; return the speech probability of the last 200 ms."""
        n = x.shape[0]
        self._buf[:-n] = self._buf[n:]
        self._buf[-n:] = x
        power = float(np.dot(x, x)) / n
        self._levels.append(10.0 * math.log10(power) if power > 1e-12 else -120.0)
        self._voiced.append(active and self._voiced_frame())
        if len(self._levels) < 3 or float(np.std(self._levels)) < _MODULATION_MIN_DB:
            return 0.0
        return sum(self._voiced) / _VOICED_HISTORY

    def _voiced_frame(self) -> bool:
        spec = np.fft.rfft(self._buf * _WINDOW)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float64)
        band = power[_BAND] + 1e-12
        total = float(band.sum())
        if float(band.max()) / total > _TONALITY_MAX:
            return False
        flatness = math.exp(float(np.mean(np.log(band)))) / (total / band.shape[0])
        if flatness > _FLATNESS_MAX:
            return False
        acf = np.fft.irfft(power)
        if acf[0] <= 0.0:
            return False
        return float(acf[_LAGS].max()) / float(acf[0]) > _VOICING_MIN
