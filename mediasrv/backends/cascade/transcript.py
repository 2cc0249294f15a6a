"""The caller's turns, from Deepgram's results. Pure: time comes in as `now`.

Layer: backends.

Deepgram stamps its results in seconds of audio received on *its* connection. That is
not the call's time: the echo guard withholds the caller's line while the AI plays (a
whole answer can pass without a byte reaching Deepgram), local turn detection sends no
padding for frames Twilio omitted, and a reconnect starts the clock at zero again. So
every append is anchored (`Timeline`): audio second x of this connection was captured
at call time y. Times below are call times unless named `dg_`.

A turn's transcript is the concatenation of the `is_final` results for it:

- local turn detection: the call's `commit` ends the turn at the audio sent so far (the
  *boundary*) and we send `Finalize`. The turn is complete once Deepgram has finalized
  up to the boundary: a result marked `from_finalize`, or any final reaching the
  boundary; failing that `UtteranceEnd` (`utterance_end_ms=2000`, the seed's fallback);
  failing that `finalize_wait_s` after the commit (logged: what is final so far is used);
- server turn detection (`TURN_DETECTION=server`): Deepgram's endpointing is the server
  VAD. `SpeechStarted` is the caller starting (barge-in), a final with `speech_final`
  (or `UtteranceEnd` when noise kept endpointing from firing) commits the turn.

The 2 s rule: speech separated by a gap of 2 s or more never merges into one turn. Our
turn policy ends a turn after `END_SILENCE_MS` of silence, so finals of one turn with
such a gap inside can only hold speech the policy skipped (too short, a cough, said
while the call was closing): the turn keeps what follows the last such gap, and what
came before is dropped, logged.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

from mediasrv.audio import BYTES_PER_MS
from mediasrv.backends import base
from mediasrv.backends.cascade import stt_wire as wire

log = logging.getLogger(__name__)

GAP_S = 2.0  # the seed's rule: speech this far apart is never one turn
# A final this close to the boundary covers it: Deepgram rounds times to the ms and may
# hold back a partial frame.
BOUNDARY_SLACK_S = 0.05
ANCHORS = 3000  # appends remembered: 5 min of 100 ms appends, far more than a result lags


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn, ready to be answered."""

    number: int
    text: str  # "" when Deepgram heard no words in it
    start: float  # call time of its first word (the commit time when it has none)
    end: float
    completed_at: float  # when its transcript became complete (pipeline latency)
    dropped: str = ""  # earlier speech cut off by the 2 s rule


@dataclass(frozen=True, slots=True)
class _Final:
    text: str
    start: float
    end: float
    dg_start: float


@dataclass(frozen=True, slots=True)
class _Pending:
    number: int
    boundary: float  # dg seconds: audio sent before the commit
    committed_at: float
    deadline: float


class Timeline:
    """Seconds of audio sent on the current connection -> call time."""

    def __init__(self) -> None:
        self.sent_s = 0.0
        self._dg: deque[float] = deque(maxlen=ANCHORS)  # dg second where an append starts
        self._call: deque[float] = deque(maxlen=ANCHORS)  # the call time it was captured

    def reset(self) -> None:
        """A new connection: its clock starts at zero."""
        self.sent_s = 0.0
        self._dg.clear()
        self._call.clear()

    def sent(self, nbytes: int, now: float) -> None:
        """Anchor an append of `nbytes` that ends at `now` (its last frame just arrived)."""
        seconds = nbytes / BYTES_PER_MS / 1000.0
        self._dg.append(self.sent_s)
        self._call.append(now - seconds)
        self.sent_s += seconds

    def at(self, dg_s: float, default: float) -> float:
        """Return the call time of connection second `dg_s` (`default` before any audio)."""
        if not self._dg:
            return default
        i = max(0, bisect_right(self._dg, dg_s) - 1)
        return self._call[i] + (dg_s - self._dg[i])


class Transcripts:
    """Deepgram's finals grouped into the caller's turns; one per call."""

    def __init__(self, *, server_turns: bool, finalize_wait_s: float,
                 logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log) -> None:
        self._server_turns = server_turns
        self._wait_s = finalize_wait_s
        self._log = logger
        self.timeline = Timeline()
        self._finals: list[_Final] = []  # finals not yet in a turn, in order
        self._pending: deque[_Pending] = deque()  # committed turns not yet complete
        self._ready: deque[Turn] = deque()  # complete turns not yet taken
        self._turns = 0  # turns numbered so far
        self._last_dg_end = 0.0  # where the last final of this connection ends (dg s)
        self._in_speech = False  # server mode: SpeechStarted seen since the last commit

    # --- inputs --------------------------------------------------------------------------

    def audio(self, nbytes: int, now: float) -> None:
        self.timeline.sent(nbytes, now)

    def new_connection(self, now: float) -> None:
        """A new Deepgram connection: nothing sent before it will be finalized any more."""
        while self._pending:
            self._complete(now, "deepgram reconnected: the turn keeps what was final")
        self._finals.clear()
        self._last_dg_end = 0.0
        self._in_speech = False
        self.timeline.reset()

    def commit(self, now: float) -> bool:
        """End the caller's turn at the audio sent so far; True if `Finalize` must go out."""
        self._turns += 1
        turn = _Pending(self._turns, self.timeline.sent_s, now, now + self._wait_s)
        self._pending.append(turn)
        if not self._finals_reach(turn.boundary):
            return True
        self._complete(now)  # Deepgram already finalized all of it
        return False

    def on_message(self, msg: wire.SttMessage, now: float) -> list[base.BackendEvent]:
        """Take one Deepgram message; return the server-mode turn events it makes."""
        if isinstance(msg, wire.Results):
            return self._on_results(msg, now)
        if isinstance(msg, wire.UtteranceEnd):
            if self._pending:
                self._complete(now, "no Finalize reply: UtteranceEnd ended the turn")
            elif self._server_turns and any(f.text for f in self._finals):
                return self._server_commit(now)
        elif isinstance(msg, wire.SpeechStarted) and self._server_turns and not self._in_speech:
            self._in_speech = True
            return [base.CallerSpeechStarted(f"caller_turn_{self._turns + 1}")]
        return []

    def tick(self, now: float) -> None:
        """Complete turns whose Finalize went unanswered for `finalize_wait_s`."""
        while self._pending and now >= self._pending[0].deadline:
            self._complete(now, f"no Finalize reply within {self._wait_s:g} s: what is "
                                "final so far is the turn")

    def next_deadline(self) -> float | None:
        return self._pending[0].deadline if self._pending else None

    # --- outputs -------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Tell whether a committed turn still waits for its transcript."""
        return bool(self._pending)

    def take_ready(self) -> list[Turn]:
        """Return the complete turns not taken yet, oldest first."""
        turns = list(self._ready)
        self._ready.clear()
        return turns

    # --- helpers -------------------------------------------------------------------------

    def _finals_reach(self, boundary: float) -> bool:
        return self._last_dg_end >= boundary - BOUNDARY_SLACK_S

    def _on_results(self, msg: wire.Results, now: float) -> list[base.BackendEvent]:
        if not msg.is_final:
            return []
        self._last_dg_end = max(self._last_dg_end, msg.end)
        start = msg.words_start if msg.words_start is not None else msg.start
        end = msg.words_end if msg.words_end is not None else msg.end
        final = _Final(msg.transcript, self.timeline.at(start, now), self.timeline.at(end, now),
                       msg.start)
        if final.text:
            self._forget_before(final)
        self._finals.append(final)
        if self._pending and msg.from_finalize:
            self._complete(now)  # Deepgram's answer to our Finalize
        while self._pending and self._finals_reach(self._pending[0].boundary):
            self._complete(now)
        if self._server_turns and msg.speech_final and any(f.text for f in self._finals):
            return self._server_commit(now)
        return []

    def _forget_before(self, final: _Final) -> None:
        """Drop speech no turn can hold: 2 s or more before `final`, no turn pending.

        It would be dropped when the next turn completes anyway (the 2 s rule); dropping
        it now bounds a call of speech that is never a turn (lyrics of music on hold).
        """
        spoken = [f for f in self._finals if f.text]
        if self._pending or not spoken or final.start - spoken[-1].end < GAP_S:
            return
        self._log.info("[TRANSCRIPT] %r dropped: %.0f s or more before the caller's next "
                       "speech (the 2 s rule)", " ".join(f.text for f in spoken), GAP_S)
        self._finals.clear()

    def _server_commit(self, now: float) -> list[base.BackendEvent]:
        self._turns += 1
        self._pending.append(_Pending(self._turns, self.timeline.sent_s, now, now))
        self._complete(now)
        self._in_speech = False
        item = f"caller_turn_{self._turns}"
        return [base.CallerSpeechStopped(item), base.CallerTurnCommitted(item)]

    def _complete(self, now: float, why: str = "") -> None:
        turn = self._pending.popleft()
        mine = [f for f in self._finals if f.dg_start < turn.boundary]
        self._finals = [f for f in self._finals if f.dg_start >= turn.boundary]
        if why:
            self._log.warning("[TRANSCRIPT] turn %d: %s", turn.number, why)
        kept, dropped = split_at_gaps([f for f in mine if f.text])
        text = " ".join(f.text for f in kept)
        if dropped:
            self._log.info("[TRANSCRIPT] turn %d: %r dropped: %.0f s or more before the turn's "
                           "speech (the 2 s rule)", turn.number, dropped, GAP_S)
        start = kept[0].start if kept else turn.committed_at
        end = kept[-1].end if kept else turn.committed_at
        self._ready.append(Turn(turn.number, text, start, end, now, dropped))


def split_at_gaps(finals: list[_Final]) -> tuple[list[_Final], str]:
    """Return the finals after the last gap of GAP_S or more, and the text before it."""
    cut = 0
    for i in range(1, len(finals)):
        if finals[i].start - finals[i - 1].end >= GAP_S:
            cut = i
    return finals[cut:], " ".join(f.text for f in finals[:cut])
