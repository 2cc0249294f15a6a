"""G.711 mu-law and PCM helpers. `bytes` <-> numpy only here, at the edges.

Layer: base.

The encoder follows ITU-T G.711 (bias 0x84, clip 32635) bit for bit; decoding goes
through a 256-entry table. Arithmetic widens to int32 and clips before narrowing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law: one Twilio media frame
BYTES_PER_MS = 8
ULAW_SILENCE = 0xFF  # mu-law code of PCM 0

Pcm16 = npt.NDArray[np.int16]

_BIAS = 0x84
_CLIP = 32635


def _build_decode_table() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


ULAW_DECODE = _build_decode_table()
# The same as floats in [-1, 1): what the turn policy hears (one table, so that audio
# decoded in two places is bit for bit the same).
ULAW_FLOAT = (ULAW_DECODE / np.float32(32768.0)).astype(np.float32)
_SEGMENT_ENDS = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF], np.int32)


def ulaw_to_pcm16(data: bytes) -> Pcm16:
    """Decode mu-law bytes to int16 samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_ulaw(samples: npt.NDArray[np.integer]) -> bytes:
    """Encode int16 samples to mu-law bytes (G.711, vectorised)."""
    x = np.asarray(samples, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0x00).astype(np.int32)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.searchsorted(_SEGMENT_ENDS, mag, side="left").astype(np.int32)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8).tobytes()


def to_pcm16(samples: npt.NDArray[np.floating]) -> Pcm16:
    """Convert float samples in [-1, 1] to int16, clipping first."""
    return np.clip(np.rint(samples * 32767.0), -32768, 32767).astype(np.int16)


def rms_dbfs(samples: Pcm16) -> float:
    """Return the RMS level of int16 samples in dBFS (-120 for digital silence)."""
    if samples.size == 0:
        return -120.0
    x = samples.astype(np.float64)
    power = float(np.mean(x * x))
    if power <= 0.0:
        return -120.0
    return max(-120.0, 10.0 * np.log10(power / (32768.0 * 32768.0)))

