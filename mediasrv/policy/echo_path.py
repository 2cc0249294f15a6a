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
    from mediasrv.policy.aec import EchoCanceller

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
# Weak evidence is no evidence for this long after the last frame that showed it.
_MOVED_HOLD_S = 0.5


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
    """Whether this call's echo path has just moved inside the canceller's filter span.

    The residual follows what we sent best at a delay the delay search sees sharply too,
    away from the filter's (`_MOVED_SEARCH_SURE`); and for `_MOVED_HOLD_S` after. The
    search keeps the filter, which re-learns the new response over seconds; the residual
    is our moved echo meanwhile, and weak evidence is no evidence (`EchoGuard.judge`).
    The 120 ms of `EchoGuard.path_unsure` and the coherence veto did not cover it: 3 + 4
    of the 198 moves of scripts/bargein_eval.py barged in (160 -> 200 ms), 0.7-1.2 s
    after the move. Pure: time comes in as `now`.
    """

    def __init__(self) -> None:
        self._until = -math.inf

    def seen(self, now: float, aec: EchoCanceller | None) -> bool:
        """Look at the canceller's residual now; tell whether the path moved lately."""
        found = None if aec is None else aec.residual_lag()
        if aec is not None and aec.delay is not None and found is not None:
            lag, support = found
            if support >= _MOVED_SEARCH_SURE and abs(lag - aec.delay) > _MOVED_APART:
                self._until = now + _MOVED_HOLD_S
        return now < self._until
