"""What we sent, as the echo guard sees it: frame peaks, the reference's timing, levels.

Layer: policy. Pure: time comes in as `now`.

The echo guard (`mediasrv.policy.echo`) judges each inbound frame against what was sent
within the echo path before it. This module keeps that record -- the peaks of the last
1.3 s of sent frames, and the frames sent but not yet due on the reference -- and the
level helpers the guard measures with. Split out of `mediasrv.policy.echo`, which decides.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mediasrv.audio import FRAME_MS, SAMPLE_RATE, ULAW_DECODE, ULAW_FLOAT

if TYPE_CHECKING:
    from mediasrv.policy.aec import EchoCanceller

SILENT_DBFS = -120.0
# A sent frame's samples: floats (full scale 1.0), or the mu-law frame itself, decoded as it
# joins the reference -- the frame is alive anyway, and 160 bytes are not 750 (the floats
# and their array): frames wait here ~1 s on a loaded machine (tracemalloc: 55 a call).
Samples = npt.NDArray[np.float32] | bytes

# mu-law keeps the magnitude in the low 7 bits, inverted: a *smaller* (code & 0x7F) is a
# *larger* magnitude. So the frame peak is the minimum of those bits, found in C with
# bytes.translate + min(), then looked up in dB. No numpy array per frame.
_LOW7 = bytes(code & 0x7F for code in range(256))
_PEAK_DB = tuple(
    20.0 * math.log10(abs(int(ULAW_DECODE[low7])) / 32768.0)
    if int(ULAW_DECODE[low7]) != 0
    else SILENT_DBFS
    for low7 in range(128)
)
# Enough entries for 1.3 s of real-time output; more than any echo path we consider, and
# bursts of faster-than-real-time sends only shorten what the ring covers.
_RING_FRAMES = 64
# Sent frames reach the judge only up to this far past the inbound frame it judges (`now`):
# nothing later can echo in it, and the reference kept (the ring above, the canceller's
# 1.28 s) must reach back over the echo path and its analysis windows (~1.05 s) however
# far the rx loop runs behind real time. Frames waiting: up to 5 s of them.
_LEAD_S = 0.1
_PENDING_FRAMES = 256
# Where our echo cannot reach (see `EchoGuard._over_the_echo_at_its_delay`), a frame is
# evidence of the caller only this far above the quietest such frames, a floor that rises
# 10 dB/s; the same for a residual above the quietest recent residuals.
_OVER_PAUSE_FLOOR_DB = 6.0
_PAUSE_FLOOR_RISE_DB = 0.2


def _floats(samples: Samples) -> npt.NDArray[np.float32]:
    """Return a sent frame's samples as floats (a mu-law frame decoded)."""
    if isinstance(samples, bytes):
        return ULAW_FLOAT[np.frombuffer(samples, dtype=np.uint8)]
    return samples


def ulaw_peak_dbfs(frame: bytes) -> float:
    """Return the peak level of a mu-law frame in dBFS (-120 for silence)."""
    if not frame:
        return SILENT_DBFS
    return _PEAK_DB[min(frame.translate(_LOW7))]


class RisingFloor:
    """The quietest recent level of some frames (dB), rising 10 dB/s between them."""

    def __init__(self) -> None:
        self.db = math.inf

    def above(self, power_db: float) -> bool:
        """Take one frame's level; tell whether it stands `_OVER_PAUSE_FLOOR_DB` above
        the floor as it was before it."""
        floor = self.db
        self.db = min(floor + _PAUSE_FLOOR_RISE_DB, power_db)
        return power_db > floor + _OVER_PAUSE_FLOOR_DB


class SentFrames:
    """The frames sent to the caller: their peaks, and the reference samples still due."""

    def __init__(self) -> None:
        self._sent: deque[tuple[float, float]] = deque(maxlen=_RING_FRAMES)
        self._pending: deque[tuple[float, float, Samples | None]] = deque(maxlen=_PENDING_FRAMES)
        self.last_at: float | None = None  # when the last frame released was sent

    def add(self, now: float, peak_dbfs: float, samples: Samples | None) -> None:
        """Record one frame just sent: its peak, and its samples if cancelling.

        It joins the reference when an inbound frame up to `_LEAD_S` before it is judged
        (`release`): an rx loop behind real time hands over everything sent up to the
        moment it reads, which may be long after the frames it is judging. Measured: 1.1 s
        behind, with six calls in one process, the echo being judged had lost its
        reference from the 1.3 s kept, read as "nothing of ours", and barged in.
        """
        self._pending.append((now, peak_dbfs, samples))

    def release(self, now: float, canceller: EchoCanceller | None) -> None:
        """Put the frames sent up to `_LEAD_S` after `now` on the reference, oldest first."""
        pending = self._pending
        while pending and pending[0][0] <= now + _LEAD_S:
            sent_at, peak, samples = pending.popleft()
            self._sent.append((sent_at, peak))
            self.last_at = sent_at
            if canceller is not None and samples is not None:
                canceller.on_sent(_floats(samples), sent_at)

    def cut(self, at: float, canceller: EchoCanceller | None) -> None:
        """Forget what was sent to play from time `at` on: a `clear` emptied Twilio's
        buffer then (see `Timelines.cut`). A frame playing at `at` keeps its peak."""
        pending = self._pending
        while pending and pending[-1][0] >= at:
            pending.pop()
        if pending and pending[-1][0] + FRAME_MS / 1000 > at:
            sent_at, peak, samples = pending[-1]
            if samples is not None:  # the frame playing at `at`: its rest never played
                x = _floats(samples).copy()
                x[max(0, round((at - sent_at) * SAMPLE_RATE)) :] = 0.0
                pending[-1] = (sent_at, peak, x)
        while self._sent and self._sent[-1][0] >= at:
            self._sent.pop()
        if self.last_at is not None and self.last_at >= at:
            self.last_at = self._sent[-1][0] if self._sent else None
        if canceller is not None:
            canceller.cut(at)

    def loudest_since(self, cutoff: float) -> float:
        """Return the loudest peak released that was sent at or after `cutoff` (-120 if
        none)."""
        loudest = SILENT_DBFS
        for sent_at, peak in reversed(self._sent):
            if sent_at < cutoff:
                break
            if peak > loudest:
                loudest = peak
        return loudest
