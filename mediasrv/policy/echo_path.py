"""What this call's echo path is: how far below what we sent our own echo comes back.

Layer: policy.

A fixed worst case (the bot's peak minus 6 dB) is deaf to every caller quieter than the bot,
while most real lines return far less: handsets and mobile networks cancel echo (3GPP TS
26.131 asks a handset for >= 46 dB of terminal coupling loss), a network hybrid without a
canceller returns 6-20 dB (ITU-T G.168 plans for an ERL of at least 6 dB). So the bound is
measured per call, from the frames judged to be echo while the bot was talking:

    sample = loudest sent peak over the echo path - inbound peak      (dB, one per frame)

Echo never comes back louder than the path lets it, so on echo-only frames the sample is at
least the echo return loss; frames with only line noise give larger samples (the echo, if
any, hides under the noise). A low quantile of recent samples is therefore a safe bound on
this call's echo; until enough frames were seen (about a second of the bot), and after the
path changed, the conservative start (`ECHO_ERL_DB`) applies. Pure: no time, no I/O.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediasrv.policy.aec import EchoCanceller, ResidualLag

_ACTIVE_SENT_DBFS = -40.0  # the bot was talking in the window: a frame is evidence
_MAX_BOUND_DB = 60.0  # beyond this the inbound is line noise whatever we send
# 50 frames: one second of the bot (the greeting's first second). 150 kept: 3 s, so a path
# that got quieter is trusted again within a few seconds of echo.
_MIN_SAMPLES = 50
_KEEP = 150
_QUANTILE = 5.0  # percent (lower order statistic): a few outliers cannot lower it much
_SAFETY_DB = 3.0  # below the quantile, for peaks of the echo that the window never showed
# An echo path that moved inside the filter's span (see `PathMoveWatch`): the delay
# search's correlation stands this sharp (over its RMS) at the residual's best lag, more
# than 4 ms from the filter's delay. Measured on the 2,164 frames that callers over an echo
# were heard on weak evidence in (frame harness, -10/-20 dB, handset and bad line, 580
# runs): never (up to 9 at the bad line's reflection, 60 ms on; 12-13 at 1-2 ms from the
# delay, where a ringing path's peak hops); on a move from 160 to 200 ms, 13-34 from the
# first frames after it to the barge-in it made 0.3-2.7 s later.
_MOVED_SEARCH_SURE = 10.0
_MOVED_APART = 32  # samples
# An echo path that moved out of the filter's span, or to a delay inside it where the
# filter models nothing (see `PathMoveWatch`): the residual's own correlation with what we
# sent stands this sharp at its best lag, there, on two looks in a row at the same lag
# (within `_MOVED_SAME` samples, `_MOVED_AGAIN_S` apart at most). Measured on the 2,550
# frames callers over an echo were heard on weak evidence in (frame harness at 9bba3d9,
# -10/-20 dB, handset and bad line, 580 runs, 30/30 ms transit): at such lags, once alone
# up to 9.5, twice in a row never over 7.3 (7.0-7.3 three times, all at one lag of one
# recording); at lags under 20 ms, where no echo comes back from a phone line, up to
# 11.6; at the bad line's reflection, which the filter models, up to 10.3. On the moves
# out of the span that barged in (scripts/bargein_eval.py --only moves, 80/35 ms transit;
# tests/test_echo.py's `Call`): 7.2-10.6 from 40-160 ms after the move, then 8-14.
_MOVED_OWN_SURE = 7.5
_MOVED_SAME = 2
_MOVED_AGAIN_S = 0.1
_MOVED_MIN_DELAY = 160  # samples: 20 ms
_MOVED_UNMODELLED = 0.1  # the filter's taps there under a tenth of its largest (-20 dB)
# Weak evidence is no evidence for this long after the last frame that showed it.
_MOVED_HOLD_S = 0.5
# ... and this long after the canceller moved its filter with our echo (`moved`), while the
# echo may still hold what played before the move: the filter's span (128 ms) and the move,
# with margin. As long as 0.5 s, it held a -10 dB caller 77 ms longer end to end (the
# continuation of a sentence into an answer that had just begun); 0.2 s, the harness's
# moves and playout gaps read the same.
_SHIFT_HOLD_S = 0.2
# ... and this long after a move inside a burst (Twilio's playout ran dry mid-answer: a
# stall of ours past `TX_LEAD_MS`): while the lead is rebuilt the network's jitter can
# starve the phone again, and a second gap the server's playout model does not see left
# an echo that fitted no single shift, heard as the caller 420 ms after the first move
# (scripts/stall_eval.py --hog-ms 130 --every 0.3,1: 2 such calls of 48, both held by
# 0.6 s on their tapes, 0.4 s held one; docs/turn-taking.md, "Stalls of the tx thread").
_GAP_HOLD_S = 0.6


class EchoPathBound:
    """Per-call lower bound on the echo return loss, learned from echo-only frames."""

    def __init__(self, conservative_db: float = 6.0) -> None:
        self.conservative_db = conservative_db
        # The last _KEEP samples in arrival order, and the same kept sorted: the quantile is
        # read every frame, and numpy's percentile of 150 values cost ~180 us a call.
        self._samples: deque[float] = deque()
        self._sorted: list[float] = []
        self.resets = 0

    @property
    def learned(self) -> bool:
        """Tell whether enough of this call's echo was seen to replace the conservative start."""
        return len(self._samples) >= _MIN_SAMPLES

    @property
    def bound_db(self) -> float:
        """Return how far below the loudest sent peak our echo stays, in dB (>= the start)."""
        if not self.learned:
            return self.conservative_db
        low = self._sorted[int(_QUANTILE / 100.0 * (len(self._sorted) - 1))]
        return min(max(low - _SAFETY_DB, self.conservative_db), _MAX_BOUND_DB)

    def learn(self, sent_dbfs: float, inbound_dbfs: float) -> None:
        """Take one frame judged to be echo (or silence) while we may be echoing."""
        if sent_dbfs < _ACTIVE_SENT_DBFS:
            return  # the bot was quiet: the frame says nothing about the path
        sample = min(sent_dbfs - inbound_dbfs, _MAX_BOUND_DB + _SAFETY_DB)
        if len(self._samples) == _KEEP:
            old = self._samples.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        self._samples.append(sample)
        insort(self._sorted, sample)

    def reset(self) -> None:
        """Forget the path (it got louder or moved): conservative until re-learned."""
        self._samples.clear()
        self._sorted.clear()
        self.resets += 1


class PathMoveWatch:
    """Whether this call's echo path has just moved (and for `_MOVED_HOLD_S` after).

    Inside the canceller's filter span: the residual follows what we sent best at a delay
    the delay search sees sharply too, away from the filter's (`_MOVED_SEARCH_SURE`). The
    search keeps the filter, which re-learns the new response over seconds; the residual
    is our moved echo meanwhile, and weak evidence is no evidence (`EchoGuard.judge`).
    The 120 ms of `EchoGuard.path_unsure` and the coherence veto did not cover it: 3 + 4
    of the 198 moves of scripts/bargein_eval.py barged in (160 -> 200 ms), 0.7-1.2 s
    after the move.

    Out of the span (or to where the filter models nothing): the search, smoothed over
    ~0.4 s, sees the new delay only 0.3-0.5 s later, and meanwhile the residual is the
    moved echo -- through a path with a reflection, too spread for the coherence veto's
    32 ms segments (0.25-0.6). The residual's own correlation stands sharp at the new
    delay, on two looks in a row (`_MOVED_OWN_SURE`): 1 + 4 of those moves barged in at
    80/35 ms transit, 125-245 ms after the move. Pure: time comes in as `now`.
    """

    def __init__(self) -> None:
        self._until = -math.inf
        self._unmodelled: tuple[int, float] | None = None  # (delay, now) of the last look

    def moved(self, now: float, in_burst: bool = False) -> None:
        """Note a move found otherwise (`EchoCanceller.path_shift`): the filter follows it
        at once, but for the length of the response the echo still holds what played
        before the move, where neither place fits (`_SHIFT_HOLD_S`); inside a burst,
        playout may run dry again while the lead is rebuilt (`_GAP_HOLD_S`)."""
        self._until = max(self._until, now + (_GAP_HOLD_S if in_burst else _SHIFT_HOLD_S))

    def seen(self, now: float, aec: EchoCanceller | None) -> bool:
        """Look at the canceller's residual now; tell whether the path moved lately."""
        found = None if aec is None else aec.residual_lag()
        if aec is not None and aec.delay is not None and found is not None:
            unmodelled = self._unmodelled_again(now, aec, found)
            apart = abs(found.delay - aec.delay) > _MOVED_APART
            if apart and (found.search >= _MOVED_SEARCH_SURE or unmodelled):
                self._until = now + _MOVED_HOLD_S
        return now < self._until

    def _unmodelled_again(self, now: float, aec: EchoCanceller, found: ResidualLag) -> bool:
        """Tell whether the residual is our echo at a delay the filter does not model, as
        on the last look: a caller's residual stands that sharp at some lag now and then,
        but not at the same lag again."""
        last = self._unmodelled
        self._unmodelled = None
        if (found.own < _MOVED_OWN_SURE or found.delay < _MOVED_MIN_DELAY
                or aec.response_at(found.delay) >= _MOVED_UNMODELLED):
            return False
        self._unmodelled = (found.delay, now)
        return (last is not None and abs(found.delay - last[0]) <= _MOVED_SAME
                and now - last[1] <= _MOVED_AGAIN_S)
