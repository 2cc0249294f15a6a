"""Echo canceller on the exact outbound reference: inbound minus an estimate of our own echo.

Layer: policy.

The server knows every sample it sent, so the echo in the inbound audio is (close to) a
delayed, filtered copy of it: y = h * x(t - d) + caller + noise. Three parts, all per frame
and pure (time comes in as `now`):

1. **Timelines.** Sent and received frames are placed on one grid of 20 ms slots. A sent
   frame follows its predecessor directly unless the pacer paused (Twilio plays queued
   audio back to back), so the sender's scheduling jitter never misaligns the reference;
   inbound frames are counted (network jitter on their arrival time is irrelevant), and the
   count is re-anchored to the clock only after a long stall (`mediasrv.policy.aec_timeline`,
   the canceller's base).
2. **Bulk delay.** GCC-PHAT between the last 256 ms of inbound and the reference over lags
   0 .. `max_delay_ms`, smoothed over successive estimates, refreshed every 100 ms. Phase
   weighting makes the peak sharp for speech, and a caller talking over the echo only
   lowers it (the caller is not correlated with what we sent), so it never freezes.
3. **Filter around that delay** (`taps`: 64 ms, starting `_PRE` samples before it, room
   for a hybrid's ringing and a reflection): the Wiener solution H = S_yx / S_xx from
   cross- and auto-spectra averaged over frames, 256 ms windows. Unlike NLMS it cannot
   diverge when the caller talks (S_yx stays unbiased, only noisier), it converges as fast
   as the spectra fill, and the per-bin normalisation suits coloured input (speech). The
   averages are still frozen while the caller is judged present (`commit(caller=True)`),
   so the noise they add stays out.

4. **Past the filter.** A room (a speakerphone) rings longer than 128 ms: when the
   filter's last blocks still hold energy and decay, the response is carried on at that
   decay for 300 ms more; what we sent that long ago times it is `tail_power`.

It reports what the double-talk decision in `mediasrv.policy.echo` needs, and decides nothing
itself: the achieved echo return loss enhancement (ERLE: echo estimate power over residual
power on frames judged echo), whether this frame's estimate matched an echo that was there
(`estimate_fits`), and how much of the recent residual and inbound what we sent explains
(`coherence`, `follows_estimate`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mediasrv.policy.aec_dsp import (
    FRAME,
    TAIL_FROM,
    Floats,
    Spectra,
    best_lag,
    gcc_peak,
    lag_fit,
    msc,
    phat_correlation,
    phone_band,
    read_only,
    segments,
    tail_beyond,
)
from mediasrv.policy.aec_timeline import ACTIVE, Timelines

# Analysis window of the filter estimate: 512 ms. Measured ERLE on a 30 ms ringing path with
# a reflection 40 ms later (a 70 ms response): 18 dB with 256 ms windows, 25 dB with 512;
# on a pure delay 31 dB either way.
_WIN = 4096
# The filter: 128 ms of taps (G.168 plans network cancellers for 64-128 ms tails); applied
# by overlap-save FFT, cheaper than a direct 1024-tap convolution per frame.
_TAPS = 1024
_CONV = 2048
# Spectra and filter are updated every 4th frame: 512 ms windows 80 ms apart still overlap
# by 84 %; measured ERLE was the same as updating every frame (within 0.1 dB on four
# paths), at a third of the cost.
_UPDATE_EVERY = 4
_PRE = 32  # filter taps before the estimated delay (4 ms): the delay estimate's error
_GCC_LEN = 2048  # inbound samples per delay estimate (256 ms)
_GCC_EVERY = 5  # frames between delay estimates (100 ms)
_GCC_KEEP = 0.75  # smoothing of successive correlations: ~0.4 s of memory
_GCC_SHARP = 7.0  # peak over the correlation's RMS: below this the delay is unknown
# A delay held through this many estimates (1 s) with no sharp peak, while the filter
# removes less than _DULL_ERLE_DB, was never an echo and is let go: the first estimate (one
# unsmoothed correlation) reaches 7.5-9.3 on every line, and with no echo locked onto hiss.
_DULL_ESTIMATES = 10
_DULL_ERLE_DB = 1.0
# Spectra forgetting per update (every 80 ms): ~1.3 s memory, 1.5 dB more ERLE than 0.65 s
_SPEC_KEEP = 0.94
# A spectrum spans the last `_WIN` samples (26 slots): one that holds a frame judged the
# caller is not learned from, even when the frame that takes it is echo. Learned, a
# caller's first syllables and the frames after their barge-in left the filter noisy (its
# residual 20 dB under the echo, not 30), and the next answer's echo barged in "on the
# residual" (bargein_eval.py --only after-caller).
_WIN_SLOTS = -(-_WIN // FRAME)
# ERLE is measured as average echo-estimate power over average residual power (so loud
# frames, where it matters, weigh most; an average of per-frame dB was dominated by quiet
# frames at the noise floor and lagged the truth by 2-5 dB while converging), with ~0.4 s of
# memory. A frame's residual counts at most 6 dB above what the canceller is known to
# leave: a caller's onset, not yet detected, must not undo a second of measurements.
_ERLE_KEEP = 0.9
# ... but a frame worse than what the filter is known to leave weighs in with ~1.3 s of
# memory: most are a caller's onset the VAD has not confirmed. At 0.4 s a -20 dB caller on
# the bad line took a trusted ERLE from 18 to 7 dB in 0.2 s, under the guard's 10 dB
# (bargein_eval.py 132 -> 138 of 145; a worse path is still caught by the coherence veto).
_ERLE_KEEP_WORSE = 0.97
_ERLE_CAP = 4.0
# The call's first filter (its first 2 s of learning) is also measured as it is now on the
# recent frames the ERLE was measured on: a caller talking on from a pause of the bot held
# that at their level (bad line: 4 dB while the filter took off 18-20 dB). Not after a filter
# learned for 0.5 s is re-aligned (a moved path read 29 dB and barged in: --only moves). Less
# 4 dB: on the frames it learned from, a filter reads high (tests/test_aec.py: 20.6 dB, 16.8
# on the echo after; 0-3 dB barged in, docs/turn-taking.md); and on the 10 after it (`held_out`).
_REMEASURE_FRAMES = 100
_REMEASURE_LEARNED = 25
_REMEASURE_BIAS_DB = 4.0
# "Is this our echo?" is asked of the last 160 ms: magnitude-squared coherence over 9
# half-overlapping 32 ms segments, bins weighted by the signal's amplitude. Measured on our
# recordings (160 ms windows every 250 ms): callers p95 0.25, max 0.39; our echo p5 0.70
# through a 30 ms ringing path with a reflection, 0.88 through a saturated loudspeaker
# (weighting by power instead let one caller window reach 0.50). A linear path keeps
# coherence whatever its shape; ncc at a single lag fell to 0.5 there, as low as callers.
_COH_LEN = 1280
# ... and over the last 100 ms of the residual only (`recent_coherence`): 5 segments.
_RECENT_LEN = 800
_ZERO_FRAME = np.zeros(FRAME, dtype=np.float32)  # the estimate while no delay is known
# The echo moved a little against the filter (`path_shift`): Twilio's playout ran dry for a
# few ms that the server's own playout clock did not see (network jitter beyond the
# prebuffer, a late send), or ran on where the server counted a gap. The whole response
# then comes that much later (earlier), the filter still takes off the echo where it was,
# and its residual -- our echo, as loud as the echo itself -- was heard as the caller: 12 of
# the 216 playout gaps of scripts/bargein_eval.py (+2..+60, -12, -20 ms) barged in. The last
# 20 ms of the inbound are compared with the echo estimate at shifts up to
# `_SHIFT_LATER` later (the delay search resets the filter beyond half its span) and
# `_SHIFT_EARLIER` earlier: our echo, moved, follows the estimate at its shift at 0.98-1.0
# while it follows it where the filter places it at -0.5..0.6. Callers over an echo, on the
# frames only the residual called caller: none of 6,331 above 0.95 at any shift with 0.3
# over the filter's own (the highest: 0.91 over 0.63; scripts/bargein_eval.py's callers).
_SHIFT_LEN = FRAME
_SHIFT_LATER = 512
_SHIFT_EARLIER = 160
_SHIFT_FIT = 0.95
_SHIFT_OVER = 0.3
# A move this small (samples: 5 ms) is the network's jitter on when Twilio began to play a
# burst or ran dry, not a path that changed: the ERLE measured stays (end to end, the
# first frame of each answer moved the echo 0.1-3.4 ms against the greeting's filter).
_SHIFT_SAME_PATH = 40


class ResidualLag(NamedTuple):
    """Where the residual follows what we sent best (`EchoCanceller.residual_lag`)."""

    delay: int  # echo delay, samples
    search: float  # the delay search's smoothed correlation there, over its RMS
    own: float  # the residual's own correlation there, over its RMS (~4: nothing of ours)


class EchoCanceller(Timelines):
    """Estimate and subtract the echo of what we sent from each inbound frame."""

    def __init__(self, *, max_delay_ms: int = 400, taps: int = _TAPS) -> None:
        if not 0 < taps <= _CONV - FRAME + 1:
            raise ValueError(f"taps={taps}: must be between 1 and {_CONV - FRAME + 1}")
        self.max_lag = max_delay_ms * 8 + _PRE
        self.taps = taps
        super().__init__()  # the timelines (`mediasrv.policy.aec_timeline`)
        # Delay search: FFT long enough that the circular correlation never wraps.
        self._nfft = 1 << int(np.ceil(np.log2(2 * _GCC_LEN + self.max_lag)))
        self._band = phone_band(self._nfft)
        self._cc = np.zeros(self.max_lag + 1, dtype=np.float32)
        self._frames = 0
        self.delay: int | None = None  # bulk echo delay in samples, once known
        self.sharpness = 0.0
        self._dull = 0  # estimates in a row without a sharp peak while a delay is held
        self._window = _WINDOW  # shared, read only
        # The filter and the spectra it is learned from (72 kB) exist while a delay is
        # known (`_realign`): most lines never show one (no echo found, the usual case).
        self._sxx = np.zeros(0, dtype=np.float64)
        self._syx = np.zeros(0, dtype=np.complex128)
        self._hf = np.zeros(0, dtype=np.complex128)  # the filter, transformed
        self._h = np.zeros(0)  # ... and as taps (echo delays from `delay - _PRE` on)
        self._learned = 0  # frames of spectra behind the filter since the last reset
        self._caller_slot = -_WIN_SLOTS  # the last inbound slot judged the caller
        self._spec: tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128]] | None = None
        self._erle = 0.0
        self.best_erle_db = 0.0  # the highest ERLE since the filter was last reset
        self._echo_avg = 0.0
        self._res_avg = 0.0
        self._first_filter = True  # see `_REMEASURE_FRAMES`
        self.echo_power = 0.0  # of the last frame's echo estimate
        # Echo the filter does not model: its response still ringing at its end, carried
        # on at the same decay (a room's tail), times what we sent that long ago.
        self.tail_power = 0.0
        self._tail = np.zeros(0)
        # Peak of what we sent that the filter places in the last frame's echo (full scale
        # 1.0; 0 while no delay is known): the loudest our echo can be in that frame.
        self.span_peak = 0.0
        self.residual_power = 0.0
        self.inbound_power = 0.0
        # The last `shift` was inside a burst of sent audio (Twilio's playout ran dry
        # mid-answer), not at a burst's start.
        self.moved_in_burst = False

    @property
    def erle_db(self) -> float:
        """Return the echo return loss enhancement achieved on recent echo-only frames."""
        return self._erle

    def process(self, y: Floats, now: float) -> Floats:
        """Take one inbound frame (floats); return the residual: y minus the echo estimate."""
        self._advance(now)
        self._in.put(self._in_slot, y)
        end = (self._in_slot + 1) * FRAME  # one past the last inbound sample
        self._frames += 1
        if self._frames % _GCC_EVERY == 0:
            self._estimate_delay(end)
        self.inbound_power = float(np.dot(y, y)) / FRAME
        self._spec = None
        if self.delay is None:
            self.echo_power = self.span_peak = 0.0
            self.residual_power = self.inbound_power
            self._res.put(self._in_slot, y)
            self._est.put(self._in_slot, _ZERO_FRAME)
            return y
        start = end - (self.delay - _PRE)  # the reference sample aligned with `end`
        update = self._frames % _UPDATE_EVERY == 0
        if update and self._ref.power(start - _WIN, _WIN) > ACTIVE:
            xs = self._ref.read(start - _WIN, _WIN) * self._window
            ys = self._in.read(end - _WIN, _WIN) * self._window
            self._spec = (np.fft.rfft(xs), np.fft.rfft(ys))
        x = self._ref.read(start - _CONV, _CONV)
        self.span_peak = float(np.abs(x[-(self.taps + FRAME) :]).max())
        echo = np.fft.irfft(np.fft.rfft(x) * self._hf, _CONV)[-FRAME:].astype(np.float32)
        residual = y - echo
        self._res.put(self._in_slot, residual)
        self._est.put(self._in_slot, echo)
        self.echo_power = float(np.dot(echo, echo)) / FRAME
        self.residual_power = float(np.dot(residual, residual)) / FRAME
        self.tail_power = 0.0
        if self._tail.size:
            n = self._tail.size
            past = self._ref.read(start - (TAIL_FROM + n) * FRAME, n * FRAME)
            powers = (past.reshape(n, FRAME) ** 2).mean(axis=1)[::-1]
            self.tail_power = float(np.dot(powers, self._tail))
        return residual

    def commit(self, caller: bool) -> None:
        """Learn from the frame just processed unless the caller was judged present (nor,
        for the filter, in the spectrum's window: `_WIN_SLOTS`)."""
        if caller:
            self._caller_slot = self._in_slot
            return
        if self.delay is None:
            return
        if self.echo_power > ACTIVE:
            # Measured with the filter that made this frame's estimate, before the update.
            left = self.echo_power * 10 ** (-self._erle / 10)  # what it is known to leave
            residual = min(self.residual_power, _ERLE_CAP * left)
            keep = _ERLE_KEEP if residual <= left else _ERLE_KEEP_WORSE
            self._echo_avg = keep * self._echo_avg + (1 - keep) * self.echo_power
            self._res_avg = keep * self._res_avg + (1 - keep) * residual
            self._erle = 10.0 * np.log10(self._echo_avg / max(self._res_avg, 1e-12))
            self.best_erle_db = max(self.best_erle_db, self._erle)
            self._measured.append(self._in_slot)
        if self._spec is None or self._in_slot - self._caller_slot < _WIN_SLOTS:
            return
        fx, fy = self._spec
        keep = _SPEC_KEEP
        self._sxx *= keep
        self._sxx += (1 - keep) * (fx.real**2 + fx.imag**2)
        self._syx *= keep
        self._syx += (1 - keep) * fy * np.conj(fx)
        self._learned += _UPDATE_EVERY
        reg = 1e-3 * float(self._sxx.mean()) + 1e-12
        # A copy of the taps: a slice would keep the whole 32 kB transform alive (4x).
        self._h = h = np.fft.irfft(self._syx / (self._sxx + reg), _WIN)[: self.taps].copy()
        self._hf = np.fft.rfft(h, _CONV)
        self._tail = tail_beyond(h)
        self._first_filter = self._first_filter and self._learned < _REMEASURE_FRAMES
        lag, first = self.delay - _PRE, self._first_filter
        for powers, bias in ((self.remeasure(h, lag) if first else None, _REMEASURE_BIAS_DB),
                             (self.held_out(h if first else None, lag), 0.0)):
            if powers and powers[0] > powers[1] * 10 ** ((self._erle + bias) / 10):
                self._echo_avg, self._res_avg = powers[0], powers[1] * 10 ** (bias / 10)
                self._erle = 10.0 * np.log10(self._echo_avg / max(self._res_avg, 1e-12))
                self.best_erle_db = max(self.best_erle_db, self._erle)

    @property
    def learned_frames(self) -> int:
        """Return how many frames the current filter was learned from."""
        return self._learned

    def coherence(self) -> tuple[float, float]:
        """Return how much of the last 160 ms our own audio explains: (residual, inbound).

        Magnitude-squared coherence with the reference, averaged over the phone band and
        weighted by the signal's amplitude: near 1 when the signal is a linear function of
        what we sent (echo through any path the 32 ms segments cover, including a path
        the filter does not model yet), near 0 for a caller. Taken at the best of a few
        candidate lags -- the GCC-PHAT peaks of the residual and of the inbound, and the
        known delay -- since a residual holds two echoes after a path change (the new
        one, and the old estimate subtracted) and whitening may favour the weaker.
        About 5 FFTs of 8k points: callers ask only where it decides something.
        """
        end, n = (self._in_slot + 1) * FRAME, _COH_LEN
        r, y = self._res.read(end - n, n), self._in.read(end - n, n)
        explained = self._explained_by_reference(end, (r, y))
        return (explained[0], explained[1]) if explained else (0.0, 0.0)

    def recent_coherence(self) -> float:
        """Return how much of the last 100 ms of the residual what we sent explains.

        Just after the echo path moved, the residual is the moved echo alone (the filter
        still takes off the old one), but it fills only part of `coherence`'s 160 ms
        and the reference's power over the rest dilutes the figure: 0.05-0.35 for the
        first 100 ms of a move (tests/test_echo.py's Call, 160 -> 40-100 ms), as low as
        a caller's. Over the last 100 ms alone it reached 0.91-0.99 within 80 ms of
        every move, and callers over an echo stayed at or under 0.79 (frame harness,
        issue 9's cells). Callers ask only on the residual's evidence, where it decides.
        """
        end = (self._in_slot + 1) * FRAME
        explained = self._explained_by_reference(end, (self._res.read(end - _RECENT_LEN,
                                                                     _RECENT_LEN),))
        return explained[0] if explained else 0.0

    def residual_lag(self) -> ResidualLag | None:
        """Return where the last 256 ms of the residual follow what we sent best, and how
        sharply the delay search's smoothed correlation of the inbound and the residual's
        own stand there; None before a delay is known.

        A caller is not correlated with what we sent: the residual's best lag is then
        anywhere, and the delay search, which hears the inbound, sees little there. After
        the path moved to a delay inside the filter's span, the search sees the new delay
        but keeps the filter (a ringing path's peak hops inside it too), which re-learns
        the new response over seconds: meanwhile the residual's best lag is the new delay,
        and the search's correlation stands sharp there. After it moved out of the span,
        the search is slow to see it (its smoothing), the residual's own correlation not.
        """
        if self.delay is None:
            return None
        end = (self._in_slot + 1) * FRAME
        n, lag = _GCC_LEN, self.max_lag
        x = self._ref.read(end - n - lag, n + lag)
        k, own = gcc_peak(self._res.read(end - n, n), np.fft.rfft(x, self._nfft), self._nfft,
                          self._band, lag)
        best, cc = lag - k, self._cc  # indexed by delay
        rms = float(np.sqrt(np.mean(cc * cc))) + 1e-12
        return ResidualLag(best, float(cc[max(best - 2, 0) : best + 3].max()) / rms, own)

    def path_shift(self) -> int | None:
        """Return how many samples later (negative: earlier) our echo now comes than the
        filter places it, when the last inbound frame follows the echo estimate at that
        shift and not where it is (see `_SHIFT_FIT`); else None."""
        if self.delay is None or not self._learned:
            return None
        end = (self._in_slot + 1) * FRAME
        lead = self.delay - _PRE  # the reference sample of the filter's first tap, back
        earlier = min(_SHIFT_EARLIER, lead)
        # The estimate over inbound samples [t0, t1): the filter over the reference that
        # far back, its first `taps - 1` outputs incomplete.
        t0, t1 = end - _SHIFT_LEN - _SHIFT_LATER, end + earlier
        x = self._ref.read(t0 - lead - self.taps + 1, t1 - t0 + self.taps - 1)
        nfft = 1 << int(np.ceil(np.log2(x.shape[0])))
        hf = self._hf if nfft == _CONV else np.fft.rfft(self._h, nfft)
        e = np.fft.irfft(np.fft.rfft(x, nfft) * hf, nfft)[self.taps - 1 :]
        fit = lag_fit(self._in.read(end - _SHIFT_LEN, _SHIFT_LEN), e[: t1 - t0])
        k = int(np.argmax(fit))  # e[k:] lines up with the inbound `_SHIFT_LATER - k` later
        here = float(fit[_SHIFT_LATER])
        if k == _SHIFT_LATER or fit[k] < _SHIFT_FIT or fit[k] - here < _SHIFT_OVER:
            return None
        return _SHIFT_LATER - k

    def shift(self, samples: int) -> bool:
        """Move the filter `samples` later (negative: earlier) along with our echo, its
        response kept: the path itself did not change, only when it starts. Tell whether
        the echo may still hold, for the length of the filter's span, what played before
        the move: a move inside a burst of sent audio (Twilio's playout ran dry), or at a
        burst's start within that span of the one before. A move at the start of a burst
        after a pause (when Twilio began to play it, with the network's jitter) has
        nothing before it to mix with."""
        if self.delay is None:
            return False
        moved = min(max(self.delay + samples, _PRE), self.max_lag) - self.delay
        self.delay += moved
        # The delay search's memory moves too: it would see the old delay for ~0.4 s more
        # and reset the filter back there.
        self._cc = np.roll(self._cc, moved)
        if moved > 0:
            self._cc[:moved] = 0.0
        elif moved < 0:
            self._cc[moved:] = 0.0
        self._forget_measured()  # measured at the old delay: no figure for the new one
        if abs(moved) > _SHIFT_SAME_PATH:
            # Nor is its ERLE this filter's any more: a path that moved changes its shape
            # too (160 -> 200 ms through a reflection: the response moved kept 9-14 dB off,
            # not the 24-27 measured before, and the rest was heard as the caller).
            # Measured again from the next echo frames on: untrusted until then.
            self._erle = self._echo_avg = self._res_avg = 0.0
        reach = (self._in_slot + 1) * FRAME - (self.delay - _PRE) - self.taps
        self.moved_in_burst = self.burst_at <= reach
        return self.moved_in_burst or self._ref.power(reach, self.burst_at - reach) > ACTIVE

    def response_at(self, delay: int) -> float:
        """Return the filter's largest tap within `_PRE` of echo delay `delay`, over its
        largest tap: how much of an echo there it models (0 outside its span)."""
        if self.delay is None:
            return 0.0
        t = delay - self.delay + _PRE
        peak = float(np.abs(self._h).max())
        if not 0 <= t < self.taps or peak <= 0.0:
            return 0.0
        return float(np.abs(self._h[max(t - _PRE, 0) : t + _PRE + 1]).max()) / peak

    def _explained_by_reference(self, end: int, signals: tuple[Floats, ...]) -> list[float]:
        """Return each signal's coherence with what we sent, at the best candidate lag:
        the GCC-PHAT peaks of each signal, and the known delay. Empty if nothing was sent."""
        n, lag = signals[0].shape[0], self.max_lag
        x = self._ref.read(end - n - lag, n + lag)
        if float(np.dot(x, x)) <= (n + lag) * ACTIVE * 1e-2:
            return []  # nothing sent: nothing of ours to hear
        spec = np.fft.rfft(x, self._nfft)
        lags = {self._best_lag(s, spec) for s in signals}
        if self.delay is not None:
            lags.add(min(max(lag - self.delay, 0), lag))
        xs = [segments(x[k : k + n]) for k in lags]
        return [self._best_msc(s, xs) for s in signals]

    def _best_msc(self, r: Floats, xs: list[Spectra]) -> float:
        if float(np.dot(r, r)) <= r.shape[0] * ACTIVE * 1e-2:
            return 0.0  # digital silence: nothing to explain
        rs = segments(r)
        return max(msc(rs, seg) for seg in xs)

    def _best_lag(self, r: Floats, x_spec: Spectra) -> int:
        return best_lag(r, x_spec, self._nfft, self._band, self.max_lag)

    def _estimate_delay(self, end: int) -> None:
        n, lag = _GCC_LEN, self.max_lag
        # Cheapest first: on a quiet line (most frames of most calls) the inbound decides.
        y = self._in.read(end - n, n)
        if float(np.dot(y, y)) / n <= ACTIVE * 1e-2:
            return
        span = end - n - lag
        if not self._ref.written_since(span) or self._ref.power(span, n + lag) <= ACTIVE:
            return  # nothing sent in the search span: no evidence, keep what we know
        x = self._ref.read(end - n - lag, n + lag)
        # cc[k] = sum_i y[i] x[i + k]: the echo delay is lag - k.
        cc = phat_correlation(y, np.fft.rfft(x, self._nfft), self._nfft,
                              self._band)[lag::-1].astype(np.float32)
        self._cc *= _GCC_KEEP
        self._cc += cc
        best = int(np.argmax(self._cc))
        self.sharpness = float(self._cc[best]) / (float(np.sqrt(np.mean(self._cc**2))) + 1e-12)
        if self.sharpness < _GCC_SHARP:
            self._dull += self.delay is not None
            if self._dull >= _DULL_ESTIMATES and self._erle < _DULL_ERLE_DB:
                self._realign(None)  # nothing of ours in the inbound: no filter to run
            return
        self._dull = 0
        # The strongest lag of a ringing path hops between its peaks (measured: 17 samples
        # apart, 5-9 times a turn): a lag the filter already spans is no reason to reset it.
        if self.delay is None or (not -_PRE // 2 <= best - self.delay <= self.taps // 2
                                  and self.sent_at(end - n, n, best, self.delay)):
            self._realign(best)

    def _realign(self, delay: int | None) -> None:
        self._first_filter &= self.delay is None or self._learned < _REMEASURE_LEARNED
        self.delay = delay
        self._dull = 0
        n = 0 if delay is None else 1  # no delay: no filter to run, nor to keep
        self._sxx = np.zeros(n * (_WIN // 2 + 1), dtype=np.float64)
        self._syx = np.zeros(n * (_WIN // 2 + 1), dtype=np.complex128)
        self._hf = np.zeros(n * (_CONV // 2 + 1), dtype=np.complex128)
        self._h = np.zeros(n * self.taps)
        self._learned = 0
        self._erle = self.best_erle_db = 0.0
        self._echo_avg = 0.0
        self._res_avg = 0.0
        self._forget_measured()


_WINDOW = read_only(np.hanning(_WIN).astype(np.float32))
