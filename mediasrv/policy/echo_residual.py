"""The echo guard's evidence from the canceller's output: is the residual more than our echo?

Layer: policy. Pure: no time, no I/O; the guard's `cancel` sets what the last frame was.

Once the canceller (`mediasrv.policy.aec`) is trusted -- a delay found, 0.5 s of the bot
learned, >= 10 dB of ERLE -- what it leaves of an inbound frame is judged against what it
is known to leave of our echo: the echo estimate / ERLE, plus the echo ringing on past its
filter, plus a margin (`masked_dbfs`); against the line's noise floor; and against the
floor of recent residuals (steady noise under the bot).

Split out of `mediasrv.policy.echo` (the base of its `EchoGuard`, which weighs this with
the level and the coherence veto): these read only the canceller's output and their own
floors, never the level bound or what the guard last decided.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mediasrv.policy.aec import EchoCanceller
from mediasrv.policy.sent import SILENT_DBFS, RisingFloor

# The residual decides once the filter was learned from 0.5 s of the bot and removes 10 dB.
TRUST_FRAMES = 25
_TRUST_ERLE_DB = 10.0
_RESIDUAL_FLOOR = 10 ** (-65 / 10)  # power: below this a residual is line noise
# ... and so is a residual within this much of the line's noise floor (the VAD's): the
# canceller's own estimate of what it leaves falls below the noise in quiet echo frames.
_OVER_NOISE_DB = 6.0


class ResidualEvidence:
    """What the canceller's output of the last frame says: trusted, masked, over the mask."""

    def __init__(self, canceller: EchoCanceller | None, residual_margin_db: float) -> None:
        self.canceller = canceller
        self._residual_ratio = 10 ** (residual_margin_db / 10)
        self._cancelled_at: float | None = None  # `now` of the frame `cancel` last took
        # The canceller's output for that frame, trusted or not (None: it took none).
        self.residual: npt.NDArray[np.float32] | None = None
        self._residual_floor = RisingFloor()  # the canceller's recent residuals
        self._over_residual_floor = True  # this frame's residual stands above that floor

    @property
    def trusted(self) -> bool:
        """Tell whether the canceller has converged well enough to judge on its residual."""
        aec = self.canceller
        return (
            aec is not None
            and aec.delay is not None
            and aec.learned_frames >= TRUST_FRAMES
            and aec.erle_db >= _TRUST_ERLE_DB
        )

    def masked_dbfs(self) -> float:
        """Return the residual level that our own echo may still reach in the last frame."""
        aec = self.canceller
        if aec is None or self._cancelled_at is None or not self.trusted:
            return SILENT_DBFS
        return 10.0 * math.log10(max(self._expected_residual(aec), 1e-12))

    def _expected_residual(self, aec: EchoCanceller) -> float:
        # What the canceller leaves of an echo on echo-only frames: the estimate / ERLE,
        # and the echo ringing on past its filter (a room), which it cannot take off.
        left = aec.echo_power * 10 ** (-aec.erle_db / 10)
        return (left + aec.tail_power) * self._residual_ratio

    def _track_residual_floor(self) -> None:
        """Follow the floor of recent residuals; note whether this frame stands above it.

        For steady noise under the bot (a fan, a street, hold music): the VAD's own floor
        cannot learn it there, since the bot's echo makes it call those frames speech, so
        the noise stood above that floor all turn long and, once the bot paused, was
        taken for the caller ("residual", or "not our echo" before the echo is learned).
        """
        aec = self.canceller
        self._over_residual_floor = True
        if aec is None or self._cancelled_at is None:
            return
        power_db = 10.0 * math.log10(max(aec.residual_power, 1e-12))
        self._over_residual_floor = self._residual_floor.above(power_db)

    def _residual_says_caller(self, noise_floor_dbfs: float) -> bool:
        """Tell whether the residual is more than our echo leaves, more than the line's
        noise, and above the floor of recent residuals."""
        aec = self.canceller
        if aec is None or self._cancelled_at is None or not self.trusted:
            return False
        noise = 10 ** ((noise_floor_dbfs + _OVER_NOISE_DB) / 10)
        return (aec.residual_power > max(self._expected_residual(aec), _RESIDUAL_FLOOR, noise)
                and self._over_residual_floor)

    def gap(self, ms: int) -> None:
        """Count inbound audio that never came."""
        if self.canceller is not None:
            self.canceller.gap(ms)

    def caller_speech(self) -> None:
        """Note that the frame last judged counts as the caller's speech: the canceller then
        learns no spectrum that holds it (they span 512 ms, see aec.py `_WIN_SLOTS`).

        Only such frames, not every caller verdict, and only once the canceller is
        trusted (its ERLE is then what the residual is judged by): a room's echo tail
        taken for the caller while the filter was still being learned kept it from
        learning and barged in (bargein_eval.py, the 20 dB / 300 ms room tail)."""
        if self.canceller is not None and self._cancelled_at is not None and self.trusted:
            self.canceller.commit(True)
