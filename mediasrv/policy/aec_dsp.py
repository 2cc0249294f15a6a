"""The echo canceller's building blocks: its 20 ms timelines, band weights, phase-weighted
correlation, coherence, and the ringing tail past its filter.

Layer: policy. Pure numerics, no time, no state beyond a timeline's samples; shared
arrays are read-only (one per process, not per call). Split out of `mediasrv.policy.aec`,
which decides what to do with them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Spectra = npt.NDArray[np.complex128]

FRAME = 160
# Slots kept (20 ms each): the reference and inbound timelines must hold the filter's
# analysis window behind the longest delay (0.4 s + 0.51 s + the filter) and the delay
# search (0.4 s + 0.26 s): 64 slots, 1.28 s.
RING_SLOTS = 64
COH_SEG = 256  # coherence segments: 32 ms, half-overlapping


class SlotRing:
    """The last `slots` slots of a 20 ms sample timeline; missing slots read as zeros."""

    def __init__(self, slots: int = RING_SLOTS) -> None:
        self._n = slots
        # Once, not twice: a read across the wrap is a copy (the rest are slices). Written
        # twice (so that no read wraps), the four rings held 200 kB a call, half of it the
        # second copy (tracemalloc on the benchmark's worker at 50 calls).
        self._buf = np.zeros(slots * FRAME, dtype=np.float32)
        self._ids = np.full(slots, -1, dtype=np.int64)
        self.last = -1  # highest slot written
        # Slots [_run_from, last] were written one after another: reads inside that run
        # (nearly all of them) are a slice, with no per-slot check.
        self._run_from = 0

    def put(self, slot: int, x: Floats) -> None:
        i = (slot % self._n) * FRAME
        self._buf[i : i + FRAME] = x
        self._ids[slot % self._n] = slot
        if slot > self.last + 1:  # a gap: the run starts again here
            self._run_from = slot
        self.last = max(self.last, slot)

    def read(self, start: int, n: int) -> Floats:
        """Return samples [start, start + n) of the timeline (a copy when a slot is gone)."""
        first, last = start // FRAME, (start + n - 1) // FRAME
        out = self._samples(start, n)
        if first >= max(self._run_from, self.last - self._n + 1) and last <= self.last:
            return out
        slots = np.arange(first, last + 1)
        valid = self._ids[slots % self._n] == slots
        if valid.all():
            return out
        # Missing slots read as zeros: one mask over the samples, not a loop over slots.
        keep = np.repeat(valid, FRAME)[start - first * FRAME : start - first * FRAME + n]
        return np.where(keep, out, np.float32(0.0))

    def _samples(self, start: int, n: int) -> Floats:
        size = self._buf.size
        if n > size:
            raise ValueError(f"read of {n} samples from a ring of {size}")
        i = start % size
        if i + n <= size:
            return self._buf[i : i + n]
        return np.concatenate((self._buf[i:], self._buf[: i + n - size]))

    def written_since(self, start: int) -> bool:
        """Tell whether any slot from sample `start` on was written (cheap: no read)."""
        return self.last >= start // FRAME

    def power(self, start: int, n: int) -> float:
        x = self.read(start, n)
        return float(np.dot(x, x)) / n


TAIL_FROM = 6  # 20 ms blocks of the response the filter models (the first 120 ms)
_TAIL_BLOCKS = 15  # ... and how far past them a ringing tail is carried on (300 ms)
_TAIL_FLOOR = 10 ** (-35 / 10)  # a last block this far under the whole is no tail


def tail_beyond(h: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Return the energy of the response past the filter, block by block, extrapolated.

    When the filter's last blocks still hold energy and decay, the path rings on past it
    at that rate (a room); when they are at the filter's noise floor or do not decay,
    nothing is assumed.
    """
    if h.shape[0] < TAIL_FROM * FRAME:
        return np.zeros(0)  # a filter shorter than 120 ms: no blocks to carry on from
    e = (h[: TAIL_FROM * FRAME].astype(np.float64).reshape(TAIL_FROM, FRAME) ** 2).sum(1)
    total = float(e.sum())
    last, before = float(e[-1]), float(e[-3])
    if total <= 0.0 or last < total * _TAIL_FLOOR or last >= before:
        return np.zeros(0)
    ratio = np.sqrt(last / before)  # per block
    return last * ratio ** np.arange(1, _TAIL_BLOCKS + 1)


def band(freqs: npt.NDArray[np.floating[Any]], low: float, high: float) -> Floats:
    """Return 1 for the bins strictly between `low` and `high` Hz, 0 elsewhere."""
    return ((freqs > low) & (freqs < high)).astype(np.float32)


@functools.cache
def phone_band(nfft: int) -> Floats:
    """The delay search's band weights, one array per FFT size for every call (read only)."""
    return read_only(band(np.fft.rfftfreq(nfft, 1 / 8000), 200.0, 3400.0))


def read_only(x: Floats) -> Floats:
    """Mark `x` read-only: it is shared by every call."""
    x.flags.writeable = False
    return x


# Shared by every call's canceller, never written: ~35 KB a call less (with phone_band).
SEG_WINDOW = read_only(np.hanning(COH_SEG).astype(np.float32))
SEG_BAND = read_only(band(np.fft.rfftfreq(COH_SEG, 1 / 8000), 300.0, 3400.0))


def phat_correlation(
    r: Floats, x_spec: Spectra, nfft: int, weights: Floats
) -> npt.NDArray[np.float64]:
    """Return the phase-weighted (PHAT) correlation c[k] = sum_i r[i] x[i + k] over the
    band `weights`, `x_spec` the reference's transform (circular over `nfft`)."""
    cross = np.conj(np.fft.rfft(r, nfft)) * x_spec
    cross *= weights / (np.abs(cross) + 1e-12)
    return np.fft.irfft(cross, nfft)


def best_lag(r: Floats, x_spec: Spectra, nfft: int, weights: Floats, max_lag: int) -> int:
    """Return k maximising the phase-weighted correlation sum_i r[i] x[i + k] (GCC-PHAT,
    `x_spec` the reference's transform, `weights` the band)."""
    return int(np.argmax(phat_correlation(r, x_spec, nfft, weights)[: max_lag + 1]))


def gcc_peak(
    r: Floats, x_spec: Spectra, nfft: int, weights: Floats, max_lag: int
) -> tuple[int, float]:
    """Return `best_lag`'s k and how sharply the correlation stands there (over its RMS
    over lags 0 .. `max_lag`): about 4 for a signal not correlated with the reference."""
    cc = phat_correlation(r, x_spec, nfft, weights)[: max_lag + 1]
    k = int(np.argmax(cc))
    return k, float(cc[k]) / (float(np.sqrt(np.mean(cc * cc))) + 1e-12)


def lag_fit(y: npt.NDArray[np.floating[Any]],
            e: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Return how well `y` is each stretch of `e` as long as it: c[k], the normalised
    correlation of `y` with e[k : k + len(y)], for k = 0 .. len(e) - len(y) (1.0: `y` is
    that stretch, scaled), or 0 where the stretch is not within 10 dB of `y`'s level
    either way (a near-silent stretch correlates with anything once normalised)."""
    n, m = y.shape[0], e.shape[0]
    nfft = 1 << int(np.ceil(np.log2(n + m)))
    ks = np.arange(m - n + 1)
    cross = np.fft.irfft(np.fft.rfft(e, nfft) * np.conj(np.fft.rfft(y, nfft)), nfft)[ks]
    # Sums of squares, not a running sum's differences: those cancel to rounding noise
    # over a quiet stretch after loud ones.
    stretch = np.convolve(e.astype(np.float64) ** 2, np.ones(n), mode="valid")
    own = float(np.dot(y, y))
    level = (stretch >= 0.1 * own) & (stretch <= 10.0 * own) & (own > 0.0)
    return np.where(level, cross / np.sqrt(np.maximum(own * stretch, 1e-30)), 0.0)


def segments(x: Floats) -> Spectra:
    """Return the spectra of `x`'s half-overlapping, windowed `COH_SEG` segments."""
    starts = range(0, x.shape[0] - COH_SEG + 1, COH_SEG // 2)
    return np.fft.rfft(np.stack([x[i : i + COH_SEG] for i in starts]) * SEG_WINDOW, axis=1)


def msc(ys: Spectra, xs: Spectra) -> float:
    """Return the magnitude-squared coherence of two segment sets, over the phone band,
    its bins weighted by `ys`'s amplitude."""
    syy = np.sum(ys.real**2 + ys.imag**2, axis=0)
    sxx = np.sum(xs.real**2 + xs.imag**2, axis=0)
    syx = np.abs(np.sum(ys * np.conj(xs), axis=0)) ** 2
    weight = np.sqrt(syy) * SEG_BAND
    coherence = syx / (sxx * syy + 1e-20)
    return float(np.sum(coherence * weight) / (np.sum(weight) + 1e-20))
