"""Speech levels as the telephone standards measure them. Pure numpy.

Layer: emulator.

dBov: dB relative to the overload point of the digital system (ITU-T G.100.1): a
full-scale square wave is 0 dBov, a full-scale sine -3 dBov. Samples here are floats
with full scale 1.0 (int16 / 32768), so a level is 10 log10(mean square).

Active speech level: ITU-T P.56 method B, the level over the time speech is active,
so pauses do not lower it. Its parts, as P.56 specifies them: the rectified signal is
smoothed twice with a 30 ms time constant (the envelope); for each threshold c the
activity is the time the envelope is at or above c, plus a 200 ms hangover; the active
level is the one whose activity-weighted power lies 15.9 dB (the margin M) above its
threshold, interpolated between thresholds.

For scale: ITU-T G.169 and G.115 recommend an active level of -19 dBm0 on the line
(RFC 7874 section 4: an RMS of 2600 in 16-bit PCM), i.e. about -22 dBov, and G.711's
mu-law overload point is +3.17 dBm0. The shipped recordings measure -17 to -21 dBov,
the bot's prompts -21 to -23 dBov.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mediasrv.audio import SAMPLE_RATE

Float = npt.NDArray[np.float64]

P56_TIME_CONSTANT_S = 0.03
P56_HANGOVER_S = 0.2
P56_MARGIN_DB = 15.9
_THRESHOLDS_DB = np.arange(-100.0, 0.5, 0.5)  # c_j: 0.5 dB steps, finer than P.56's 6 dB
_BLOCK = 2048  # one-pole filter in blocks: g**-2048 stays far inside float64
SILENT_DBOV = -120.0


def level_dbov(x: Float) -> float:
    """Return the RMS level of `x` (full scale 1.0) in dBov; -120 for silence."""
    if x.size == 0:
        return SILENT_DBOV
    power = float(np.mean(np.square(x, dtype=np.float64)))
    return max(SILENT_DBOV, 10.0 * np.log10(power)) if power > 0 else SILENT_DBOV


def _one_pole(x: Float, g: float) -> Float:
    """y[n] = g y[n-1] + (1 - g) x[n], vectorised block by block."""
    out = np.empty_like(x)
    k = np.arange(_BLOCK, dtype=np.float64)
    up, down = g ** -k, g ** k  # g**-k * cumsum(...) rebuilds the recursion inside a block
    state = 0.0
    for lo in range(0, x.size, _BLOCK):
        block = x[lo : lo + _BLOCK]
        n = block.size
        acc = np.cumsum(block * up[:n]) * down[:n] * (1.0 - g)
        out[lo : lo + n] = acc + state * g * down[:n]
        state = out[lo + n - 1]
    return out


def envelope(x: Float, rate: int = SAMPLE_RATE) -> Float:
    """Return P.56's envelope: |x| smoothed twice with a 30 ms time constant."""
    g = float(np.exp(-1.0 / (rate * P56_TIME_CONSTANT_S)))
    return _one_pole(_one_pole(np.abs(x), g), g)


def active_level_dbov(x: Float, rate: int = SAMPLE_RATE) -> float:
    """Return the P.56 (method B) active speech level of `x` in dBov."""
    x = np.asarray(x, np.float64)
    energy = float(np.sum(x * x))
    if energy <= 0.0:
        return SILENT_DBOV
    env = envelope(x, rate)
    hang = int(P56_HANGOVER_S * rate)
    idx = np.arange(x.size)
    prev: tuple[float, float] | None = None  # (level, level minus threshold) one step lower
    for c_db in _THRESHOLDS_DB:
        above = env >= 10.0 ** (c_db / 20.0)
        if not above.any():
            break
        last = np.maximum.accumulate(np.where(above, idx, -hang - 1))
        active = int(np.count_nonzero(idx - last <= hang))
        level = 10.0 * np.log10(energy / active)
        diff = level - c_db
        if diff <= P56_MARGIN_DB:
            if prev is None:
                return level
            # interpolate where level - threshold crosses the margin
            frac = (prev[1] - P56_MARGIN_DB) / (prev[1] - diff)
            return prev[0] + frac * (level - prev[0])
        prev = (level, diff)
    return level_dbov(x)


def activity(x: Float, rate: int = SAMPLE_RATE) -> float:
    """Return the fraction of `x` that P.56 counts as active speech."""
    level = active_level_dbov(x, rate)
    return float(10.0 ** ((level_dbov(x) - level) / 10.0)) if level > SILENT_DBOV else 0.0
