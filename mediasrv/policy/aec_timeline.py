"""The echo canceller's timelines: what we sent and what came in, on one grid of 20 ms slots.

Layer: policy. Pure: time comes in as `now`.

A sent frame follows its predecessor directly unless the pacer paused (Twilio plays queued
audio back to back), so the sender's scheduling jitter never misaligns the reference;
inbound frames are counted (network jitter on their arrival time is irrelevant), and the
count is re-anchored to the clock only after a long stall. Beside the reference and the
inbound, the canceller's output (the residual) and its echo estimate are kept on the
inbound's slots, and the cheap 60 ms checks of how they relate are made here.

Split out of `mediasrv.policy.aec` (the base of its `EchoCanceller`, which estimates and
subtracts the echo on these timelines): the placement of frames and the reads over the
last few frames need nothing of the filter or the delay search.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from mediasrv.policy.aec_dsp import FRAME, RING_SLOTS, Floats, SlotRing

ACTIVE = 1e-6  # frame power (of 1.0 full scale) below which the reference is silent
_SHORT_RING = 16  # slots of residual and estimate kept (320 ms; coherence reads the last 160)
_FOLLOW_FRAMES = 3  # residual vs estimate correlation window (60 ms)
_REANCHOR_SLOTS = 1  # inbound count vs clock: more than a frame apart, restart the count
# Frames a new filter is measured on again (`remeasure`): the last 40 the ERLE was measured
# on (0.8 s of the bot at most), as far as the rings reach behind the echo's delay.
_MEASURED_SLOTS = 40
_MEASURED_MIN = 10  # fewer in reach: no figure
# New filters waiting for `_MEASURED_MIN` frames measured after them (`held_out`): 8 is
# 0.64 s of updates, longer than the bot's pauses in our prompts (64 kB at most).
_HELD_FITS = 8
_ZEROS = np.zeros(FRAME, dtype=np.float32)


class Timelines:
    """Sent and inbound frames on one 20 ms slot grid, with the residual and the estimate."""

    def __init__(self) -> None:
        self._ref = SlotRing()
        self._in = SlotRing()
        self._sent_slot = -1
        self.burst_at = 0  # the reference sample the current burst of sent frames began at
        self._sent_at = -1.0
        # Samples after its slot's start at which the current burst of sent frames began,
        # and the last frame's samples that spill into the next slot. Placed on the
        # nearest slot instead, each response's echo moved by up to +-10 ms against the
        # reference: the filter learned on one answer no longer fit the next (its ERLE,
        # a slow average, still said 10-21 dB), and the answer's echo barged in "on the
        # residual" (bargein_eval.py --only repeated; end to end, three_interruptions).
        self._phase = 0
        self._carry = np.zeros(0, dtype=np.float32)
        self._in_slot = -1
        self._res = SlotRing(_SHORT_RING)  # the residual on the inbound timeline
        self._est = SlotRing(_SHORT_RING)  # and the echo estimate
        self._measured: deque[int] = deque(maxlen=_MEASURED_SLOTS)  # see `remeasure`
        # Recent filters and the slot each was learned up to (see `held_out`).
        self._fits: deque[tuple[npt.NDArray[np.float64], int]] = deque(maxlen=_HELD_FITS)

    def on_sent(self, x: Floats, now: float) -> None:
        """Place one sent frame (floats, full scale 1.0) on the reference timeline."""
        # Back to back unless the pacer paused: Twilio plays its queue without gaps.
        if self._sent_slot >= 0 and now - self._sent_at < 0.030:
            slot = self._sent_slot + 1
        else:  # a burst starts: at its own sample, not the nearest slot's (see below)
            slot, self._phase = divmod(round(now * 8000), FRAME)
            self._carry = np.zeros(self._phase, dtype=np.float32)
            slot = max(slot, self._sent_slot + 1)
            self.burst_at = slot * FRAME + self._phase
        self._sent_slot, self._sent_at = slot, now
        if not self._phase:
            self._ref.put(slot, x)
            return
        # A burst that starts `_phase` samples into a slot runs that late through every
        # slot: the frame's last `_phase` samples open the next one (written now, in case
        # nothing follows, and again with the next frame).
        run = np.concatenate((self._carry, x))
        self._ref.put(slot, run[:FRAME])
        self._carry = run[FRAME:]
        self._ref.put(slot + 1, np.concatenate((self._carry, _ZEROS[self._phase :])))

    def cut(self, at: float) -> None:
        """Take what was placed from time `at` on off the reference: a `clear` emptied
        Twilio's buffer then, so it never played (and never echoes).

        The pacer keeps up to `TX_LEAD_MS` queued at Twilio; placed on the reference, that
        much audio that never played, with the caller talking after their barge-in, gave
        the delay search a sharp peak 2-16 ms away: it reset a filter trusted at 21 dB,
        and the next answer's echo was heard as the caller (end to end, three_interruptions
        with a 160 ms lead: 3 of 32 calls; scripts/stall_eval.py)."""
        start = round(at * 8000)
        if self._sent_slot < 0 or start >= (self._sent_slot + 1) * FRAME + self._phase:
            return  # nothing placed that late
        slot, keep = divmod(start, FRAME)
        for s in range(max(slot, self._ref.last - RING_SLOTS + 1), self._ref.last + 1):
            x = self._ref.read(s * FRAME, FRAME).copy()
            x[keep if s == slot else 0 :] = 0.0
            self._ref.put(s, x)
        # The next frame sent starts a burst at its own sample, after what was kept.
        self._sent_slot = slot if keep else slot - 1
        self._sent_at = -1.0
        self._carry = np.zeros(0, dtype=np.float32)

    def sent_at(self, start: int, n: int, *delays: int) -> bool:
        """Tell whether inbound samples [start, start + n) can hold our echo at each of
        the echo delays `delays`: something was sent over that span so much earlier.

        The delay search asks it of a new peak and the delay it holds, before moving that
        (not of the call's first delay: there a peak is all it has): against a
        silent reference GCC-PHAT whitens whatever is there, and a caller talking as the
        bot paused, or the line's hiss, peaked 8-3,976 samples away and reset a trusted
        filter (bargein_eval.py --only repeated: -10 dB callers heard 1.9 s late)."""
        return all(self._ref.power(start - d, n) > ACTIVE for d in delays)

    def at_delay(self, n: int, delay: int, back: int) -> tuple[Floats, Floats]:
        """Return the last `n` inbound samples, and the `n + back` reference samples up to
        `delay` samples before their end (what could echo in them through that delay)."""
        end = (self._in_slot + 1) * FRAME
        return self._in.read(end - n, n), self._ref.read(end - delay - n - back, n + back)

    def gap(self, ms: int) -> None:
        """Skip `ms` of inbound audio that never came (read as silence)."""
        if self._in_slot >= 0:
            self._in_slot += max(0, ms) // 20

    def skip(self, now: float) -> None:
        """Count one inbound frame that is not processed (outside the echo window)."""
        self._advance(now)

    def _advance(self, now: float) -> None:
        clock = round(now / 0.020)
        self._in_slot += 1
        if self._in_slot <= 0 or abs(self._in_slot - clock) > _REANCHOR_SLOTS:
            self._in_slot = clock

    def estimate_fits(self) -> bool:
        """Tell whether the recent echo estimate matches an echo the inbound really holds.

        Over the last 60 ms, the inbound's projection on the estimate: about 1 when the
        estimate is right (a caller in the frames is not correlated with it), about 0 when
        the echo path moved and the estimate is of an echo no longer there. Half-way is
        the line.
        """
        end = (self._in_slot + 1) * FRAME
        n = _FOLLOW_FRAMES * FRAME
        e = self._est.read(end - n, n)
        energy = float(np.dot(e, e))
        if energy <= n * ACTIVE * 1e-2:
            return False
        return float(np.dot(self._in.read(end - n, n), e)) > 0.5 * energy

    def _forget_measured(self) -> None:
        self._measured.clear()
        self._fits.clear()

    def held_out(self, h: npt.NDArray[np.float64] | None,
                 lag: int) -> tuple[float, float] | None:
        """Keep new filter `h` (learned up to this slot); return `remeasure`'s figure of
        the newest kept filter that `_MEASURED_MIN` frames were measured on since, on
        those frames alone -- frames it did not learn from -- or None. `h` None: no more
        are measured so, let the kept ones go."""
        if h is None:
            self._fits.clear()
            return None
        self._fits.append((h, self._in_slot))
        due = None
        while self._fits and sum(s > self._fits[0][1] for s in self._measured) >= _MEASURED_MIN:
            due = self._fits.popleft()
        return self.remeasure(due[0], lag, since=due[1]) if due else None

    def remeasure(self, h: npt.NDArray[np.float64], lag: int,
                  since: int = -1) -> tuple[float, float] | None:
        """Return the mean power of filter `h`'s echo estimate and of what it leaves, over
        the recent inbound frames the ERLE was measured on (after slot `since`); None if
        too few are in reach.

        `lag`: the echo delay of `h`'s first tap (the estimate of inbound sample i is
        sum_k h[k] ref[i - lag - k]). One FFT convolution over at most 0.8 s.
        """
        taps = h.shape[0]
        oldest = max(self._in.last, self._ref.last) - RING_SLOTS + 1  # both rings hold it
        slots = sorted({s for s in self._measured if (s * FRAME - lag - taps) // FRAME > oldest
                        and since < s <= self._in_slot})
        if len(slots) < _MEASURED_MIN:
            return None
        first, n = slots[0], (slots[-1] - slots[0] + 1) * FRAME
        x = self._ref.read(first * FRAME - lag - taps + 1, n + taps - 1).astype(np.float64)
        nfft = 1 << int(np.ceil(np.log2(x.shape[0] + taps)))
        est = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[taps - 1 :][:n]
        left = self._in.read(first * FRAME, n) - est
        rows = np.asarray(slots) - first
        e, r = est.reshape(-1, FRAME)[rows], left.reshape(-1, FRAME)[rows]
        return float(np.mean(e * e)), float(np.mean(r * r))

    def follows_estimate(self) -> float:
        """Return |correlation| of the last 60 ms of residual with the echo estimate.

        Near 1 when the echo path only changed its gain (louder or quieter, same shape):
        the residual is then a scaled copy of the estimate. A caller is not correlated
        with what we sent, so in double talk it stays small. Cheap: three frames.
        """
        end = (self._in_slot + 1) * FRAME
        n = _FOLLOW_FRAMES * FRAME
        r, e = self._res.read(end - n, n), self._est.read(end - n, n)
        energy = float(np.dot(r, r)) * float(np.dot(e, e))
        if energy <= (n * ACTIVE * 1e-2) ** 2:
            return 0.0
        return abs(float(np.dot(r, e))) / float(np.sqrt(energy))
