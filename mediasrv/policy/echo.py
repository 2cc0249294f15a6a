"""Echo guard: is an inbound frame possibly the caller, or only the echo of our own voice?

Layer: policy.

The server knows exactly what it sent, so it measures *this* call's echo and decides from
that, instead of assuming the worst echo on every call. Three pieces of evidence, cheapest
first, each on the frames inside the echo window (AI audio playing, and `echo_window_ms`
after the last sent frame); outside it every frame may be the caller:

1. **Level** (Geigel's double-talk test, with a measured loss): the inbound peak is above the
   loudest sent peak of the echo path minus this call's echo return loss bound
   (`mediasrv.policy.echo_path`: `erl_db` until about a second of the bot was heard, then measured).
   Above the *conservative* bound (`erl_db`) it is the caller, full stop: no echo we
   guarantee to survive is that loud. Once the canceller knows this call's delay, the
   same test is also made against only what we sent at that delay (the filter's span):
   in the bot's pauses a caller under its earlier words stands out there, before the
   canceller is trusted -- if the frame also stands above the line's floor in such
   frames (a steady noise does not), and as weak evidence (see `weak_evidence`).
2. **Residual** (with `cancel=True`): once the canceller (`mediasrv.policy.aec`) is trusted (a delay
   found, 0.5 s of the bot learned, >= 10 dB of ERLE), the residual is above what the
   canceller is known to leave of our echo (echo estimate / ERLE, plus a margin; see
   `mediasrv.policy.echo_residual`, the guard's base).
3. **Coherence veto**, asked only of speech frames that 1 or 2 call caller below the
   conservative bound (and, until the bound is learned, of every speech frame): if what we
   sent explains the last 160 ms of the residual -- or of the inbound, when the canceller
   removed nothing -- it is our echo. This is what catches an echo path that got louder or
   moved (the bound is then reset to the conservative start and re-learned), and a caller on
   a line with no echo at all is found at once, before the bound is learned. While the
   echo is learned, power between the harmonics of what we sent at the delay
   (`mediasrv.policy.comb`) is not ours either, however coherent the inbound.

Frames judged echo teach the bound and the canceller; frames judged caller teach nothing.
Pure: time comes in as `now`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mediasrv.errors import ConfigError
from mediasrv.policy.aec import EchoCanceller
from mediasrv.policy.comb import BACK, WINDOW, CombEvidence
from mediasrv.policy.echo_path import EchoPathBound, PathMoveWatch
from mediasrv.policy.echo_residual import TRUST_FRAMES, ResidualEvidence
from mediasrv.policy.sent import SILENT_DBFS, RisingFloor, Samples, SentFrames

# Coherence with what we sent above which a signal is our echo (see mediasrv.policy.aec: callers
# measured <= 0.3, echo through dispersive paths >= 0.7).
_EXPLAINED = 0.5
_NOT_OURS = 0.3  # with no other evidence, only coherence under this (callers' p95 0.25)
# Evidence (`evidence`) that is the caller's level alone: see `heard_on_level`.
_LEVEL_EVIDENCE = frozenset({"outside the echo window", "louder than any echo", "level"})
_COHERENCE_ALONE = "not our echo"  # see `heard_on_coherence_alone`
_OFF_COMB = "off our comb"  # as weak, and asks as much of the VAD (`heard_on_coherence_alone`)
# The last 100 ms of the residual this coherent with what we sent: our echo at a lag the
# filter does not model, a path that just moved (see `EchoGuard._on_weak_evidence`). Measured
# (EchoCanceller.recent_coherence) on the frames callers over an echo were heard on the
# residual: 1 in 682 above 0.7, none above 0.75 (frame harness, issue 9's echo cells); a
# moved path's residual 100 ms after the move: 0.83 through a 42 ms path with a
# reflection, 0.91-0.99 through a hybrid (tests/test_aec.py, tests/test_echo.py).
_MOVED_EXPLAINED = 0.7
# Before the echo is learned: a residual at least this share of the echo estimate's power
# (0.5: 3 dB under it), not coherent with what we sent, while the estimate fits the
# inbound's echo. A caller 10-20 dB under our echo from the bot's first words is in every
# frame learned from, and what the young filter leaves of them sits 3-8 dB under its
# estimate wherever the bot is loud: as loud as it (1.0), the -20 dB bad line's callers
# from 0.3-0.7 s into a prompt were heard 60-840 ms later (bargein_eval.py). At 0.25
# (-6 dB) a room's diffuse tail passed (measured twice: ERL 20 dB, 300 ms tail, 1/1/1).
_COLD_RESIDUAL_SHARE = 0.5
# The cold start lasts past the level bound (learned from 1 s of the bot) while the
# canceller, learned from 0.5-2 s of it, measurably removes our echo (3 dB: half its power)
# and is not yet trusted: on the bad line it is trusted only after 1.5 s of the bot alone,
# and a caller talking from then on holds its measured ERLE at 4-9 dB (their own level)
# for seconds. Not past 2 s (`_COLD_FRAMES`): the rule's evidence is also what a noise
# under the bot from its first word looks like (scripts/bargein_eval.py's noise sweep:
# brown noise barged in 6-8 s into a turn without that limit; brown noise as loud as the
# echo keeps the ERLE at 1.6-2.3 dB). Not before 0.5 s (`TRUST_FRAMES`): a filter just
# re-aligned on a room's ringing tail leaves a residual as loud and as incoherent.
_COLD_ERLE_DB = 3.0
_COLD_FRAMES = 100
# Inbound power off the comb of what we sent at the delay, this far (dB) over what our echo
# and the line put there (`mediasrv.policy.comb`): not our voice, while the echo is learned.
# Measured: echo alone at most 4.2 dB on issue 9's paths, 6.0 through room tails.
_OFF_COMB_DB = 6.5
# ... and only at a delay the search sees sharply (`EchoCanceller.sharpness`): the call's
# first estimate, held though dull, was 4-13 ms on a room's tail (sharpness 4.4-6.9), and
# our echo compared with the wrong comb read up to 14 dB there; the lines' true delays read
# 9.3-25.7 under a caller (frame harness).
_COMB_SHARP = 9.0


class EchoGuard(ResidualEvidence):
    """Judge inbound frames against what we sent: measured level bound, canceller, coherence."""

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
        if not 20 <= echo_path_ms <= 1000:
            raise ConfigError(f"echo_path_ms={echo_path_ms}: must be between 20 and 1000")
        if not 0.0 <= margin_db <= 20.0:
            raise ConfigError(f"margin_db={margin_db}: must be between 0 and 20")
        self.path = EchoPathBound(erl_db)
        self._window_s = echo_window_ms / 1000.0
        self._path_s = echo_path_ms / 1000.0
        self._margin_db = margin_db
        self._sent = SentFrames()
        canceller = EchoCanceller(max_delay_ms=echo_path_ms) if cancel else None
        super().__init__(canceller, residual_margin_db)  # `mediasrv.policy.echo_residual`
        self._loudest = SILENT_DBFS  # the last judged frame's echo-path peak
        self._inbound = SILENT_DBFS  # and its inbound peak
        # The last `judge` said caller on weak evidence: the residual alone, or the level
        # at the delay alone (the turn policy then wants the classifier surer of it).
        self.weak_evidence = False
        # ... and on it, this call's echo path was not known well: it may have just moved,
        # or is still being learned (see `_on_weak_evidence`).
        self.path_unsure = False
        self.evidence = ""  # why the last `judge` said caller (for the log)
        self.coherence: tuple[float, float] | None = None  # the last veto's measurements
        self.vetoes = 0  # frames the coherence veto turned from caller into echo
        self.shifted: int | None = None  # samples the last judged frame moved the filter by
        self._unsure = False  # the last judged frame may hold the caller: learn nothing
        self._pause_floor = RisingFloor()  # inbound power where our echo cannot reach
        self._moved = PathMoveWatch()
        self._comb = CombEvidence()
        self._comb_db: float | None = None  # this frame's off-comb excess, while cold

    def on_sent(self, peak_dbfs: float, now: float, samples: Samples | None = None) -> None:
        """Record one frame just sent to the caller: its peak, and its samples if cancelling
        (floats or the mu-law frame; they join the reference as `SentFrames.release` says)."""
        self._sent.add(now, peak_dbfs, samples)

    def on_cut(self, at: float) -> None:
        """Forget what was sent to play from time `at` on: a `clear` dropped it unplayed."""
        self._sent.cut(at, self.canceller)

    def _release(self, now: float) -> None:
        self._sent.release(now, self.canceller)

    def cancel(
        self, frame: npt.NDArray[np.float32], now: float, ai_playing: bool = False
    ) -> npt.NDArray[np.float32]:
        """Return what the VAD should hear: the inbound minus our echo, once that is known.

        Until the canceller is trusted its estimate may be noise (a line with no echo at
        all never gives it one): subtracting it would only add a faint copy of the bot's
        voice, which the VAD may hear as speech. So the VAD hears the inbound as it came.
        """
        self._release(now)
        aec = self.canceller
        if aec is None:
            return frame
        if not self.in_window(now, ai_playing):
            aec.skip(now)  # keeps the inbound timeline continuous between bot turns
            self._cancelled_at = self.residual = None
            return frame
        self._cancelled_at = now
        self.residual = residual = aec.process(frame, now)
        return residual if self.trusted else frame

    def learn(self, caller: bool) -> None:
        """Learn from the frame last judged, unless it held the caller or may have."""
        if caller or self.canceller is None or self._unsure:
            return
        self.path.learn(self._loudest, self._inbound)
        if self._cancelled_at is not None:
            self.canceller.commit(False)

    def in_window(self, now: float, ai_playing: bool = False) -> bool:
        """Tell whether inbound audio may contain echo of our output right now."""
        self._release(now)
        if ai_playing:
            return True
        last = self._sent.last_at
        return last is not None and now - last <= self._window_s

    def loudest_sent_dbfs(self, now: float) -> float:
        """Return the loudest peak sent within the echo path (-120 if nothing was sent)."""
        return self._sent.loudest_since(now - self._path_s)

    def threshold_dbfs(self, now: float) -> float:
        """Return the loudest level this call's echo could have now (-120 if nothing sent)."""
        loudest = self.loudest_sent_dbfs(now)
        if loudest <= SILENT_DBFS:
            return SILENT_DBFS
        return loudest - self.path.bound_db + self._margin_db

    def judge(
        self,
        inbound_peak_dbfs: float,
        now: float,
        ai_playing: bool = False,
        speech: bool = True,
        noise_floor_dbfs: float = SILENT_DBFS,
    ) -> bool:
        """Tell whether an inbound frame could be caller speech rather than echo.

        `speech`: the VAD hears speech in it. Only then is the coherence veto worth its
        cost: a verdict on a non-speech frame decides nothing but what is learned from it.
        `noise_floor_dbfs`: the line's noise floor (the VAD's), under which nothing counts.
        """
        self._release(now)
        self.weak_evidence = self.path_unsure = False
        self.coherence = self.shifted = None
        self._unsure = False
        self._inbound = inbound_peak_dbfs
        self._loudest = loudest = self.loudest_sent_dbfs(now)
        if not self.in_window(now, ai_playing) or loudest <= SILENT_DBFS:
            self.evidence = "outside the echo window"
            return True
        # dB above the loudest possible echo if the path returned everything, less a margin
        over = inbound_peak_dbfs - loudest - self._margin_db
        if over > -self.path.conservative_db:
            self.evidence = "louder than any echo"
            return True
        if self.canceller is None:
            return False  # no reference samples to measure the path with: worst case only
        level = over > -self.path.bound_db
        self._track_residual_floor()
        self._measure_comb()
        at_delay = not level and self._over_the_echo_at_its_delay(inbound_peak_dbfs)
        residual = self._residual_says_caller(noise_floor_dbfs)
        if residual and not level and self._echo_moved_a_little(now):
            self._unsure = True  # the residual was of the filter as it was: learn nothing
            return False
        if not (level or at_delay or residual):
            if not speech or self.trusted:
                return False  # nothing to hear, or the canceller accounts for it: learn
            return self._judge_by_coherence()
        if not speech:
            return True
        if self._explained(weak_caller=residual and not level):
            self.vetoes += 1
            if level:
                self.path.reset()  # our echo is louder than the bound: the path changed
            return False
        if not level:
            if self._moved.seen(now, self.canceller):
                # Nor is it learned from: it may be the caller too (learned from, hold
                # music at 0 dB on the handset barged in later: tests/test_echo.py).
                self._unsure = True
                return False
            self._on_weak_evidence(cold=False)
        self.evidence = "level" if level else "level at the delay" if at_delay else "residual"
        return True

    def _echo_moved_a_little(self, now: float) -> bool:
        """Tell whether the residual that calls this frame the caller is our echo come a
        few ms later or earlier than the canceller places it (a playout gap at Twilio; see
        `EchoCanceller.path_shift`); the filter is then moved with it. Asked on non-speech
        frames too: the sooner the filter follows, the fewer frames of moved echo the VAD
        hears in the residual."""
        aec = self.canceller
        assert aec is not None
        shift = aec.path_shift()
        if shift is None:
            return False
        if aec.shift(shift):
            self._moved.moved(now, in_burst=aec.moved_in_burst)
        self.shifted = shift
        return True

    def _on_weak_evidence(self, cold: bool) -> None:
        """Note a caller verdict on weak evidence, and whether this call's echo path was
        known well (`path_unsure`): only then may the turn policy take less of it (turns.py).

        Not known: still being learned (`cold`, see `_COLD_FRAMES`: that evidence is also
        what music under the bot from its first word looks like), or just moved. A moved
        path leaves the moved echo in the residual, which the 160 ms coherence veto
        recognises only once its window holds enough of it (~100 ms); the last 100 ms
        alone show it sooner (`_MOVED_EXPLAINED`).
        """
        self.weak_evidence = True
        aec = self.canceller
        self.path_unsure = cold or (aec is not None and self._cancelled_at is not None
                                    and aec.recent_coherence() > _MOVED_EXPLAINED)

    @property
    def over_bound_db(self) -> float:
        """Return how far the last judged frame's peak stood above the level bound (dB,
        negative: under it), for the log and scripts/bargein_eval.py."""
        return self._inbound - (self._loudest - self.path.bound_db + self._margin_db)

    @property
    def heard_on_level(self) -> bool:
        """Tell whether the last frame judged the caller was so on the caller's level alone
        (beyond any echo of ours, or beyond this call's measured echo bound).

        Only such a frame lets the VAD's onset lead count towards a barge-in (turns.py). On
        the other evidence (the residual, the level at the delay, coherence before the path
        is learned) a room's echo tail scored 0.3-0.5 before 0.59 and barged in with its
        lead (frame harness: ERL 10 dB, 200 ms tail)."""
        return self.evidence in _LEVEL_EVIDENCE

    @property
    def heard_on_coherence_alone(self) -> bool:
        """Tell whether the last frame judged the caller was so only because what we sent
        does not explain it, or its power lies off our voice's comb, before this call's
        echo is learned (see `_judge_by_coherence`)."""
        return self.evidence in (_COHERENCE_ALONE, _OFF_COMB)

    def _over_the_echo_at_its_delay(self, inbound_peak_dbfs: float) -> bool:
        """Tell whether the frame is above the echo bound of what we sent *at the delay*.

        The level test looks at everything sent within the longest echo path; once the
        canceller knows this call's delay, only what its filter spans can echo now: in a
        pause of the bot, a caller under the bot's earlier words is above it.
        """
        aec = self.canceller
        if aec is None or self._cancelled_at is None or aec.delay is None:
            return False
        span_db = 20.0 * math.log10(max(aec.span_peak, 1e-6))
        if inbound_peak_dbfs - span_db - self._margin_db <= -self.path.bound_db:
            return False
        # A frame our echo cannot reach is line noise or the caller. The VAD cannot tell
        # which here: its classifier still carries the bot's echo it just heard (measured:
        # 0.86-0.95 on brown noise in the bot's pauses, 0.04 on the same noise alone). So
        # only a frame standing above the floor of such frames counts.
        return self._pause_floor.above(10.0 * math.log10(max(aec.inbound_power, 1e-12)))

    def _judge_by_coherence(self) -> bool:
        """Judge a speech frame the canceller cannot vouch for, on coherence alone.

        What we sent clearly explains it: our echo, learned from. Clearly not ours (below
        callers' p95 coherence) while this call's echo is not yet learned: the caller,
        talking early over the greeting. Anything else is not the caller -- the
        conservative start -- but nothing is learned from it: a caller's syllables must
        not teach the bound or the canceller that our echo is that loud (measured: a
        caller as loud as the echo, learned from, held the bound at 6 dB and the
        canceller untrusted for the rest of that caller's sentence). Until the canceller
        is learned (`_cold`), a residual as loud as the echo estimate and not ours is the
        caller too.
        """
        aec = self.canceller
        assert aec is not None
        self.coherence = residual, _ = aec.coherence()
        if (self._cold(aec) and residual < _NOT_OURS and self._over_residual_floor
                and aec.estimate_fits()
                and aec.residual_power > aec.echo_power * _COLD_RESIDUAL_SHARE):
            # The estimate takes off an echo the inbound holds, and what it leaves -- as
            # loud as that echo -- is not ours: a caller talking from the bot's first words,
            # whom the inbound's coherence (our echo is in it) would call echo.
            self._on_weak_evidence(cold=True)
            self.evidence = "not our echo once cancelled"
            return True
        explained = max(self.coherence)
        if explained < _NOT_OURS and not self.path.learned and self._over_residual_floor:
            # (Steady noise is not ours either: only what stands above it is the caller.)
            self.evidence = _COHERENCE_ALONE
            return True
        if (self._comb_db is not None and self._comb_db > _OFF_COMB_DB
                and self._over_residual_floor):
            # Power between our harmonics that our echo cannot have put there: a caller
            # under the echo, whom coherence (the echo dominates) would call echo.
            self._on_weak_evidence(cold=True)
            self.evidence = _OFF_COMB
            return True
        if explained > _EXPLAINED:
            return False
        self._unsure = True
        return False

    def _measure_comb(self) -> None:
        """Take this frame's off-comb figure while the echo is learned (`_cold`), on every
        frame then so its floor follows the line; after that it is not asked."""
        aec = self.canceller
        self._comb_db = None
        if (aec is None or aec.delay is None or self._cancelled_at is None
                or aec.sharpness < _COMB_SHARP or not self._cold(aec)):
            return
        self._comb_db = self._comb.excess_db(*aec.at_delay(WINDOW, aec.delay, BACK))

    def _cold(self, aec: EchoCanceller) -> bool:
        """Tell whether this call's echo is still being learned (see `_COLD_FRAMES`).

        "Measurably removes our echo" is its best ERLE since the filter was reset, not the
        current one: a caller's first syllables, not yet speech to the VAD, are learned as
        echo and drag that to 0, and the cold start then ended under them -- on the bad
        line a -10 dB caller from 1.1 s into the greeting (1 s of the bot, 4 dB learned)
        was set aside for all of their 1.3 s and never answered (bargein_eval.py
        --only after-caller)."""
        if not self.path.learned:
            return True
        return (TRUST_FRAMES <= aec.learned_frames < _COLD_FRAMES
                and aec.best_erle_db >= _COLD_ERLE_DB)

    def _explained(self, weak_caller: bool) -> bool:
        """Tell whether what we sent explains the frame (residual, or inbound as a whole).

        A caller 10 dB under our echo leaves the inbound 90 % coherent with what we sent:
        when only the residual calls it caller (`weak_caller`) and the canceller did take
        our echo off this frame, the inbound's coherence is no evidence against the caller.
        """
        aec = self.canceller
        if aec is None or self._cancelled_at is None:
            return False  # no reference samples kept: nothing to compare with
        if aec.follows_estimate() > _EXPLAINED:
            return True  # the path only changed its gain: the residual is our echo, scaled
        residual, inbound = self.coherence = aec.coherence()
        if residual > _EXPLAINED:
            return True
        return inbound > _EXPLAINED and not (weak_caller and aec.estimate_fits())
