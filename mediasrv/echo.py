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
(the echo tail); outside that window every frame may be the caller. The reference kept is
one peak per sent 20 ms frame in a small ring, not audio. Pure: time comes in as `now`.
"""

from __future__ import annotations

import math
from collections import deque

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


def ulaw_peak_dbfs(frame: bytes) -> float:
    """Return the peak level of a mu-law frame in dBFS (-120 for silence)."""
    if not frame:
        return SILENT_DBFS
    return _PEAK_DB[min(frame.translate(_LOW7))]


class EchoGuard:
    """Judge inbound frames against the recent outbound reference (Geigel test)."""

    def __init__(
        self,
        *,
        echo_window_ms: int = 500,
        erl_db: float = 6.0,
        echo_path_ms: int = 400,
        margin_db: float = 1.5,
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

    def on_sent(self, peak_dbfs: float, now: float) -> None:
        """Record the peak level of one frame just sent to the caller."""
        self._sent.append((now, peak_dbfs))
        self._last_sent = now

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

    def judge(self, inbound_peak_dbfs: float, now: float, ai_playing: bool = False) -> bool:
        """Tell whether an inbound frame could be caller speech rather than echo."""
        if not self.in_window(now, ai_playing):
            return True
        return inbound_peak_dbfs > self.threshold_dbfs(now)
