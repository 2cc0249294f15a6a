"""Echo guard: is an inbound frame possibly the caller, or only the echo of our own voice?

Phone lines in this path have no echo canceller, and on a speakerphone the bot hears itself
back 100-300 ms later. The server knows exactly what it sent, so this is the classic Geigel
double-talk test on that reference:

    caller  <=>  inbound_peak_db > max(sent_peak_db over the echo path) - erl_db + margin_db

An echo is the sent signal delayed and attenuated by at least the echo return loss (ERL),
so its peak can never exceed the loudest recent sent peak minus the ERL. Peaks, not RMS:
an inbound frame that straddles two delayed sent frames has a peak no higher than theirs,
whereas its RMS can be up to 3 dB above either.

The test applies while AI audio plays and for `echo_window_ms` after the last sent frame
(the echo tail); outside that window every frame may be the caller. Pure: time comes in as
`now`.

With `cancel=True` the guard also runs an echo canceller (`mediasrv.aec`) inside the window,
and once it is *trusted* (a delay found, 0.5 s of the bot learned, >= 10 dB of ERLE) the
decision moves to the residual, which lets a caller far below the worst-case ERL through:

    caller  <=>  residual_power > echo_estimate_power / ERLE * residual_margin
                 and (the Geigel test also says caller, or the residual is not our echo)

"Not our echo": an echo path that got louder or moved leaves a residual that looks like a
caller to the level test; it is correlated with what we sent, a caller is not (max |ncc|
over all lags, measured 0.64-1.0 for a path change, 0.1-0.6 for callers). Until trusted,
and whenever the ERLE falls under 10 dB (a path change, noise), the Geigel test decides.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from mediasrv.aec import EchoCanceller
from mediasrv.audio import ULAW_DECODE
from mediasrv.errors import ConfigError

SILENT_DBFS = -120.0

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
# The residual decides once the filter was learned from 0.5 s of the bot and removes 10 dB.
_TRUST_FRAMES = 25
_TRUST_ERLE_DB = 10.0
_RESIDUAL_FLOOR = 10 ** (-65 / 10)  # power: below this a residual is line noise
_EXPLAINED = 0.5  # max |ncc| of residual vs reference above which it is our echo


def ulaw_peak_dbfs(frame: bytes) -> float:
    """Return the peak level of a mu-law frame in dBFS (-120 for silence)."""
    if not frame:
        return SILENT_DBFS
    return _PEAK_DB[min(frame.translate(_LOW7))]


class EchoGuard:
    """Judge inbound frames against the recent outbound reference (Geigel test, canceller)."""

    def __init__(
        self,
        *,
        echo_window_ms: int = 500,
        erl_db: float = 6.0,
        echo_path_ms: int = 400,
        margin_db: float = 1.5,
        cancel: bool = False,
        residual_margin_db: float = 10.0,
    ) -> None:
        if not 0 <= echo_window_ms <= 5000:
            raise ConfigError(f"echo_window_ms={echo_window_ms}: must be between 0 and 5000")
        if not 0.0 <= erl_db <= 60.0:
            raise ConfigError(f"erl_db={erl_db}: must be between 0 and 60")
        if not 20 <= echo_path_ms <= 1000:
            raise ConfigError(f"echo_path_ms={echo_path_ms}: must be between 20 and 1000")
        if not 0.0 <= margin_db <= 20.0:
            raise ConfigError(f"margin_db={margin_db}: must be between 0 and 20")
        self._window_s = echo_window_ms / 1000.0
        self._path_s = echo_path_ms / 1000.0
        self._offset_db = margin_db - erl_db
        self._sent: deque[tuple[float, float]] = deque(maxlen=_RING_FRAMES)
        self._last_sent: float | None = None
        self.canceller = EchoCanceller(max_delay_ms=echo_path_ms) if cancel else None
        self._residual_ratio = 10 ** (residual_margin_db / 10)
        self._cancelled_at: float | None = None  # `now` of the frame `cancel` last took
        self.residual_only = False  # the last `judge` said caller on the residual alone

    def on_sent(
        self, peak_dbfs: float, now: float, samples: npt.NDArray[np.float32] | None = None
    ) -> None:
        """Record one frame just sent to the caller: its peak, and its samples if cancelling."""
        self._sent.append((now, peak_dbfs))
        self._last_sent = now
        if self.canceller is not None and samples is not None:
            self.canceller.on_sent(samples, now)

    def cancel(
        self, frame: npt.NDArray[np.float32], now: float, ai_playing: bool = False
    ) -> npt.NDArray[np.float32]:
        """Return the inbound frame minus the estimated echo (the frame itself if none)."""
        aec = self.canceller
        if aec is None:
            return frame
        if not self.in_window(now, ai_playing):
            aec.skip(now)  # keeps the inbound timeline continuous between bot turns
            self._cancelled_at = None
            return frame
        self._cancelled_at = now
        return aec.process(frame, now)

    def gap(self, ms: int) -> None:
        """Count inbound audio that never came."""
        if self.canceller is not None:
            self.canceller.gap(ms)

    def learn(self, caller: bool) -> None:
        """Let the canceller learn from the frame `cancel` took, unless it held the caller."""
        if self.canceller is not None and self._cancelled_at is not None:
            self.canceller.commit(caller)

    @property
    def trusted(self) -> bool:
        """Tell whether the canceller has converged well enough to judge on its residual."""
        aec = self.canceller
        return (
            aec is not None
            and aec.delay is not None
            and aec.learned_frames >= _TRUST_FRAMES
            and aec.erle_db >= _TRUST_ERLE_DB
        )

    def in_window(self, now: float, ai_playing: bool = False) -> bool:
        """Tell whether inbound audio may contain echo of our output right now."""
        if ai_playing:
            return True
        return self._last_sent is not None and now - self._last_sent <= self._window_s

    def threshold_dbfs(self, now: float) -> float:
        """Return the loudest level an echo could have now (-120 if nothing was sent)."""
        cutoff = now - self._path_s
        loudest = SILENT_DBFS
        for sent_at, peak in reversed(self._sent):
            if sent_at < cutoff:
                break
            if peak > loudest:
                loudest = peak
        if loudest <= SILENT_DBFS:
            return SILENT_DBFS
        return loudest + self._offset_db

    def masked_dbfs(self) -> float:
        """Return the residual level that our own echo may still reach in the last frame."""
        aec = self.canceller
        if aec is None or self._cancelled_at is None or not self.trusted:
            return SILENT_DBFS
        return 10.0 * math.log10(max(self._expected_residual(aec), 1e-12))

    def _expected_residual(self, aec: EchoCanceller) -> float:
        # What the canceller leaves of an echo on echo-only frames: the estimate / ERLE.
        return aec.echo_power * 10 ** (-aec.erle_db / 10) * self._residual_ratio

    def judge(
        self, inbound_peak_dbfs: float, now: float, ai_playing: bool = False, explain: bool = True
    ) -> bool:
        """Tell whether an inbound frame could be caller speech rather than echo."""
        self.residual_only = False
        if not self.in_window(now, ai_playing):
            return True
        geigel = inbound_peak_dbfs > self.threshold_dbfs(now)
        aec = self.canceller
        if aec is None or self._cancelled_at != now or not self.trusted:
            return geigel
        if aec.residual_power <= max(self._expected_residual(aec), _RESIDUAL_FLOOR):
            return False
        if geigel:
            return True
        self.residual_only = True
        # Only the residual calls it caller: an echo path that changed looks the same,
        # unless the residual is something we sent. Unchecked (no speech), it is not
        # learned from: that is all the verdict is used for then.
        return not explain or aec.explained() < _EXPLAINED
