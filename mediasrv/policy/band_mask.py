"""Is a residual under the broadband echo mask still above it in some bands? (issue 9)

Layer: policy. Pure numerics and one per-call state (a per-bin floor); no time.

Once the canceller is trusted, a residual quieter in total than what it is known to leave
of our echo (`EchoGuard.masked_dbfs`: the echo estimate / ERLE, the ringing tail past the
filter, + 10 dB) is taken for our own. A quiet caller over a loud echo often is: in total
power they are under it, but in the bins where the bot is quiet at that instant (another
pitch, other formants, a fricative under a vowel) they stand far above what the canceller
leaves there. Traced on the frame harness (scripts/bargein_eval.py, the four quiet-over-
echo cells, 580 runs): of the 107 runs heard after 300 ms or never, 56 had frames under
the broadband mask between the onset and the barge-in (27 at least three).

So the same comparison is made per FFT bin over the last 32 ms: the residual's power
against (the estimate's power / ERLE + the tail's) * 10 dB, where the tail's spectrum is
that of what we sent 120-420 ms ago (the tail *is* our past audio: a room's ringing tail
was the trap -- its residual stands near the broadband mask and, spread by the current
estimate's spectrum instead, above it in many bins), and against 6 dB over the bin's own
floor of recent residuals (line hiss, steady noise). The figure is the power of the
residual in the bins that stand above both (`BandMask.caller_in_bands`). Measured on the
frames under the broadband mask (a trace of the same harness; dBFS): callers between onset
and barge-in p50 -61 / p90 -44 / max -31 (the slow runs' p90 -39); echo alone on the nine
hard paths max -38, the room tails -38 (-39 and -38 where the residual's classifier
scores 0.2, as weak evidence needs); hold music under the bot on the bad line -35 (-38 at
0.2), over it on the handset -30 (-61 at 0.2); the noise sweep -43; tones -54. The
separation is thin: from `_EXCESS_DBFS` every echo, tail, music and noise row of the
harness stays at 0; at -54 dBFS a room tail (6 dB / 200 ms, 10 dB / 300 ms) and the
saturated bad line barged in (docs/turn-taking.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mediasrv.policy.aec_dsp import FRAME, Floats, read_only

LOOK_SAMPLES = _N = 256  # samples per look: 32 ms, the classifier's window
_WINDOW = read_only(np.hanning(_N).astype(np.float32))
# Per-bin power scaled so that the bins of a signal sum to its mean square (Parseval).
_SCALE = 1.0 / (_N / 2 * float(np.sum(_WINDOW.astype(np.float64) ** 2)))
_TAIL_WINDOW = read_only(np.hanning(FRAME).astype(np.float32))
_BINS = slice(7, 108)  # 219-3344 Hz: the phone band, as the other tests of the guard
_MARGIN = 10.0  # over what the canceller leaves in a bin, as the broadband mask
_TAIL_MARGIN = 4.0  # the tail's estimate (the filter's last blocks carried on) runs low:
# the broadband tail_power stood 8-10 dB under a 300 ms room tail's residual.
_OVER_FLOOR = 4.0  # 6 dB over the bin's floor of recent residuals
_FLOOR_RISE = 10 ** 0.02  # per frame: 10 dB/s, as the guard's other floors
# The residual's power in the bins above both, from which the frame is the caller's (see
# the module docstring for the measurements behind it).
_EXCESS_DBFS = -44.0
_EXCESS_POWER = 10 ** (_EXCESS_DBFS / 10)


def bin_powers(x: Floats) -> npt.NDArray[np.float64]:
    """Return the per-bin power of the last `_N` samples of `x` (bins sum to its mean square)."""
    spectrum = np.fft.rfft(x[-_N:] * _WINDOW)
    return (spectrum.real**2 + spectrum.imag**2) * _SCALE


def tail_powers(past: Floats, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Return the per-bin power of the echo past the filter: each 20 ms block of what we sent
    (`past`, newest first) with the block's power spectrum shaped to its mean square, times
    its weight (the tail's energy at that age, `EchoCanceller.tail_past`)."""
    blocks = past.reshape(-1, FRAME)
    spectra = np.abs(np.fft.rfft(blocks * _TAIL_WINDOW, _N, axis=1)) ** 2
    shares = spectra / np.maximum(spectra.sum(axis=1, keepdims=True), 1e-20)
    power = (blocks.astype(np.float64) ** 2).mean(axis=1, keepdims=True)
    return np.asarray((shares * power * weights[:, None]).sum(axis=0))


class BandMask:
    """Per call: the residual's per-bin floor, and the last frame's excess over the mask."""

    def __init__(self) -> None:
        self._floor = np.full(_N // 2 + 1, np.inf)
        self._powers = self._floor  # the last residual looked at, per bin
        self._before = self._floor  # ... and the floor before it
        self.excess_dbfs = -120.0  # of the last frame judged (`caller_in_bands`)

    def look(self, residual: Floats) -> None:
        """Take the residual of one frame (at least its last 32 ms): the floor follows every
        frame of a trusted canceller, whether or not the frame needs judging by band."""
        self._before = floor = self._floor
        self._powers = powers = bin_powers(residual)
        self._floor = np.minimum(floor * _FLOOR_RISE, powers)

    def could_be_heard(self) -> bool:
        """Tell whether the residual last looked at holds enough power in the phone band to
        pass `caller_in_bands` at all (most echo frames do not: then it costs nothing)."""
        return float(self._powers[_BINS].sum()) > _EXCESS_POWER

    def caller_in_bands(
        self, estimate: Floats, erle_db: float, tail: npt.NDArray[np.float64] | None
    ) -> bool:
        """Tell whether the residual last looked at stands above what the canceller leaves
        of our echo in enough of its bins (`_EXCESS_DBFS`).

        `estimate`: the echo estimate over the same samples; `tail`: `tail_powers`, or
        None when the filter rings on past nothing.
        """
        left = bin_powers(estimate) * 10 ** (-erle_db / 10)
        if tail is not None:
            left = left + _TAIL_MARGIN * tail
        mask = np.maximum(left * _MARGIN, self._before * _OVER_FLOOR)[_BINS]
        band = self._powers[_BINS]
        excess = float(band[band > mask].sum())
        self.excess_dbfs = 10.0 * math.log10(max(excess, 1e-12))
        return excess > _EXCESS_POWER
