"""8 kHz <-> 16 kHz resampling with a band-limiting FIR (numpy only).

Layer: models.

The Smart Turn model (see `mediasrv.models.turn_model`) hears 16 kHz audio; a phone line gives
8 kHz. Doubling the rate puts a mirror image of the 0-4 kHz band at 4-8 kHz (a 3 kHz
tone gets a 5 kHz twin); linear interpolation only dents those images by ~10-20 dB. The
model would hear speech with fake high-frequency energy that no 16 kHz training recording
has. Here the zero-stuffed signal goes through a linear-phase low-pass so that the model
sees what a phone carries (0-4 kHz) and, above 4.2 kHz, nothing but filter leakage.

The filter is a Kaiser-windowed sinc, designed once at import:

    rate 16 kHz, cut-off 3.85 kHz, 101 taps, Kaiser beta 7.0
    -> passband flat to +-0.005 dB up to 3.5 kHz (the phone band ends at 3.4 kHz),
       -6 dB at 3.85 kHz, -17.6 dB at 4 kHz, >= 65 dB down from 4.2 kHz on

(computed from the taps; `tests/test_resample.py` checks the levels that matter on real
signals). 101 taps is odd, so the delay is a whole 50 samples at 16 kHz and is cut off
exactly. Cost: ~2.3 ms to upsample 8 s of audio on this machine.

Upsampling runs as two polyphase branches (the even and odd taps) over the 8 kHz input,
so no multiply is spent on the stuffed zeros. The same filter decimates 16 -> 8 kHz
(used by the evaluation to make the phone band of wideband speech).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

_TAPS = 101
_CUTOFF_HZ = 3850.0
_RATE_HZ = 16000.0
_KAISER_BETA = 7.0
_DELAY = (_TAPS - 1) // 2  # samples at 16 kHz: linear phase


def _design() -> npt.NDArray[np.float64]:
    n = np.arange(_TAPS) - _DELAY
    cutoff = _CUTOFF_HZ / _RATE_HZ  # cycles per sample
    ideal = 2.0 * cutoff * np.sinc(2.0 * cutoff * n)
    taps = ideal * np.kaiser(_TAPS, _KAISER_BETA)
    return taps / taps.sum()  # unity gain at DC


LOWPASS = _design()
# Zero-stuffing halves the level; the branches carry the factor 2 back.
_EVEN = (2.0 * LOWPASS[0::2]).astype(np.float32)  # output samples 2n: taps 0, 2, 4 ...
_ODD = (2.0 * LOWPASS[1::2]).astype(np.float32)  # output samples 2n+1: taps 1, 3, 5 ...


def upsample_8k_to_16k(x: npt.NDArray[np.floating]) -> Floats:
    """Return `x` (8 kHz) at 16 kHz, 2 * len(x) samples, band-limited to 0-4 kHz, no delay.

    Samples before and after `x` count as zero, so the first and last 3 ms ring a little
    on a signal that starts or stops abruptly; speech starts and ends in silence.
    """
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    out = np.empty(2 * n, dtype=np.float32)
    if n == 0:
        return out
    # With h the 101-tap filter and u the zero-stuffed input (u[2m] = x[m]),
    #   y[k] = sum_j h[j] u[k + DELAY - j]   (delay removed).
    # DELAY = 50 is even, so for k = 2i only even j hit stuffed samples: x[i + 25 - j/2];
    # for k = 2i + 1 only odd j: x[i + 25 - (j - 1)/2]. Both are plain convolutions of x.
    half = _DELAY // 2
    even = np.convolve(x, _EVEN)  # index i + 25 holds output sample 2i
    odd = np.convolve(x, _ODD)  # index i + 25 holds output sample 2i + 1
    out[0::2] = even[half : half + n]
    out[1::2] = odd[half : half + n]
    return out


def downsample_16k_to_8k(x: npt.NDArray[np.floating]) -> Floats:
    """Return `x` (16 kHz) at 8 kHz, low-passed first so nothing above 4 kHz folds down."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    filtered = np.convolve(x, LOWPASS.astype(np.float32))[_DELAY : _DELAY + x.shape[0]]
    return np.ascontiguousarray(filtered[0::2])
