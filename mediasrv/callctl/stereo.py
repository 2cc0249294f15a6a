"""Place a call's two voices on the call clock for a stereo recording. Pure.

Left: the caller as received (each inbound frame at its Twilio `media.timestamp`);
right: the AI as sent (each frame at the moment the paced tx loop sent it). Both times
are seconds on the call clock (0 = the stream started), so the two channels line up the
way the handset heard them, and time nobody spoke is silence.

A frame goes where its time says, except that a frame up to SNAP_SAMPLES after the end
of the previous one, or overlapping it (network jitter), follows it directly: audio is
never overwritten and no click-sized gaps are invented. Output is released `hold_s`
behind the newest frame of either channel, because the two channels are fed by
different threads and one may be a little behind; a frame for time already released is
late, counted and dropped (with the default 1 s hold only a stalled thread does that).

Layer: call control (pure: no threads, no I/O).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mediasrv.audio import SAMPLE_RATE, Pcm16, ulaw_to_pcm16

Channel = Literal["caller", "ai"]
CHANNELS: tuple[Channel, Channel] = ("caller", "ai")  # left, right
SNAP_SAMPLES = 16  # 2 ms: below one frame's jitter, far below a pause anyone hears
HOLD_S = 1.0


class _Track:
    """One channel: samples from `start` (absolute sample index) on, not yet released."""

    def __init__(self) -> None:
        self.samples: Pcm16 = np.zeros(0, dtype=np.int16)
        self.cursor = 0  # absolute index just after the last placed sample


class StereoAligner:
    """Feed frames of either channel; `take()` returns interleaved PCM16 (left, right)."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self._hold = round(hold_s * SAMPLE_RATE)
        self._tracks: dict[Channel, _Track] = {"caller": _Track(), "ai": _Track()}
        self._released = 0  # absolute sample index up to which output was taken
        self._newest = 0  # absolute sample index of the newest frame end on any channel
        self.late_frames = 0

    def add(self, channel: Channel, ulaw: bytes, t: float) -> None:
        """Place one mu-law frame of `channel` whose first sample is at call time `t`."""
        track = self._tracks[channel]
        start = max(0, round(t * SAMPLE_RATE))
        at = track.cursor if start - track.cursor <= SNAP_SAMPLES else start
        if at < self._released:
            self.late_frames += 1
            return
        pcm = ulaw_to_pcm16(ulaw)
        offset = at - self._released
        end = offset + len(pcm)
        if end > len(track.samples):
            track.samples = np.concatenate(
                [track.samples, np.zeros(end - len(track.samples), dtype=np.int16)])
        track.samples[offset:end] = pcm
        track.cursor = at + len(pcm)
        self._newest = max(self._newest, track.cursor)

    def cut(self, channel: Channel, t: float) -> None:
        """Silence `channel` from call time `t` on: what was placed there never played (a
        `clear` dropped the audio the pacer had sent ahead of it). Time already released
        stays as written."""
        track = self._tracks[channel]
        start = max(self._released, round(t * SAMPLE_RATE))
        if start >= track.cursor:
            return
        track.samples[start - self._released : track.cursor - self._released] = 0
        track.cursor = start

    def take(self, final: bool = False) -> bytes:
        """Return the interleaved 16-bit stereo released so far (all of it if `final`)."""
        upto = self._newest if final else self._newest - self._hold
        n = upto - self._released
        if n <= 0:
            return b""
        out = np.zeros((n, 2), dtype="<i2")
        for column, channel in enumerate(CHANNELS):
            track = self._tracks[channel]
            have = min(n, len(track.samples))
            out[:have, column] = track.samples[:have]
            track.samples = track.samples[have:]
        self._released = upto
        return out.tobytes()

    @property
    def released_s(self) -> float:
        return self._released / SAMPLE_RATE
