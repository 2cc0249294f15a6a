"""Is what the echo canceller leaves of a frame speech? A second classifier state on it.

Layer: policy.

The VAD's classifier hears the inbound as it came until the canceller is trusted, our own
echo in it: a sound under the bot is heard *mixed with the bot's voice*. Hold music under
the bot scored 0.5-1.0 there and barged in (scripts/bargein_eval.py: three of 40
noise-sweep conditions and a non-speech row; the cold start's share: `TurnPolicy`), while
silero scores the same two music files heard alone under 0.5 on every window (0 and -15 dB). What
the evidence calls "not our echo" (the music) and what the classifier calls speech (our
echo) were two different sounds.

So a second state of the same model (`SpeechClassifier`; silero's session is shared, the
state is 1 kB) hears the canceller's output on every frame in the echo window, trusted or
not, through a level normaliser of its own (as the VAD hears the inbound). It is started
afresh when the canceller becomes trusted: before that the residual still holds our echo,
and its memory of it outlasted it (the music's residual scored 0.6-0.9 until that restart,
0.01-0.06 after). Outside the echo window it hears nothing and forgets.

The turn policy asks it (`is_speech`) about frames judged the caller on weak evidence only
(see `TurnPolicy.feed`), and holds such frames until one of them is speech here too: this
state hears a caller's onset a frame or three after the VAD's (whose state still carries
our echo's speech), and dropping the frames instead cost 14 of 145 quiet callers (-20 dB,
handset) 20-60 ms. Pure.

Its answer is asked for on few frames (a caller heard on weak evidence), while the bot
talks it hears every frame: silero ran on 273 of 473 frames of the bot's long answer over a
-70 dBFS line that never asked once, ~100 us a frame, more than half the turn policy's CPU
while the bot talks (`scripts/frame_cost.py`). So while the residual is the inbound as it
came (the canceller removes nothing: no echo found, the usual case), its frames wait as
the caller's mu-law (`_PENDING_MAX` at most, the oldest then run) and go through the model,
in order, only when an answer is asked for; leaving the echo window forgets them unheard,
as it forgets the state they would have made. A residual the canceller did change runs at
once, after any that wait. The answers are the same as running every frame at once: the
model sees the same samples in the same order between the same resets, and the level
normaliser (whose state outlives a reset) follows every frame when it comes.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import numpy.typing as npt

from mediasrv.audio import FRAME_BYTES, ULAW_FLOAT
from mediasrv.policy.vad import LevelNormaliser, SpeechClassifier

# What the canceller leaves of a frame is speech from this score on: hold music's residual
# scored 0.00-0.06 after the restart (where the inbound, the music with our echo, scored
# 0.58-1.0). At 0.5, dropping the frames under it cost quiet callers a frame at p50/p95
# (frame harness: -20 dB and -10 dB handset); 0.1 let hold music through (bad line, -10 dB).
_SPEECH_PROB = 0.2
# A residual frame quieter than this is not run through the model (it scores 0): below the
# VAD's own -60 dBFS gate, so the classifier's state keeps hearing a quiet caller's onset.
# It costs model runs: over a 20 s bot turn on the handset 637 (the VAD's: 15, its input
# masked under what the canceller leaves of our echo). Gated as the VAD is (floor + 3 dB,
# -60 dBFS: 15 runs), one caller of 145 at -10 dB on the handset barged in 220 ms later;
# also under that leftover, two (frame harness, p95 492 -> 496 ms).
_ACTIVE_POWER = 1e-7  # -70 dBFS
# Frames that wait for the model at most (8 s: 64 kB of mu-law a call, made at the first
# frame); past it the oldest runs as each new one comes. The greeting (5.5 s) waits whole;
# of the benchmark backend's ~10 s answers, the last 8 s.
_PENDING_MAX = 400
# ... and speech it confirms only if it is voiced: the frame's normalised autocorrelation
# at some pitch lag reaches this. A breath before a word, with the faint leftover of our
# echo in it, scored as speech on both states (VAD 0.8-1.0, this one 0.4-0.8; the breaths
# alone <= 0.09) and barged in before the first word (bargein_eval.py --only breath, and
# the held-out readers). Voicing of the residual frames that counted on weak evidence:
# the breaths' p95 0.72 (the callers' first 200 ms: p10 0.90). At 0.8 a -20 dB caller was
# missed and -10 dB no-echo p95 436 -> 452 ms; at 0.7 every caller cell is as before:
# unvoiced onsets ("hello", "front") are held until their first voiced frame, then count.
_VOICED = 0.7
# Lags of 20-120 samples: pitch 400-67 Hz. Longer lags overlap too little of a 20 ms frame:
# white noise's highest then reaches chance values (p95 over 2,000 frames: 0.39 up to lag
# 120, 0.52 up to 140, 0.82 up to 155).
_PITCH_LAGS = np.arange(20, 121)


def voicing(x: npt.NDArray[np.float32]) -> float:
    """Return the frame's highest normalised autocorrelation over the pitch lags (<= 1)."""
    x = x - x.mean()
    n = x.size
    r = np.correlate(x, x, "full")[n - 1 :]  # r[lag]: ~95 us a frame, asked on few frames
    energy = np.cumsum(x * x)
    lags = _PITCH_LAGS[_PITCH_LAGS < n - 1]
    head, tail = energy[n - 1 - lags], energy[-1] - energy[lags - 1]  # x[:-lag], x[lag:]
    return float(np.max(r[lags] / np.sqrt(np.maximum(head * tail, 1e-20)), initial=0.0))


class ResidualSpeech:
    """The speech probability of the canceller's residual, frame by frame (run on demand)."""

    def __init__(self, classifier: SpeechClassifier) -> None:
        self._classifier = classifier
        self._normalised = LevelNormaliser()
        self._probability = 0.0  # the latest window's score, of the frames run so far
        # The frames waiting for the model, a ring: mu-law, normaliser gain (dB), active.
        self._codes = bytearray()  # _PENDING_MAX frames long from the first frame on
        self._gains = array("d", bytes(8 * _PENDING_MAX))
        self._active = bytearray(_PENDING_MAX)
        self._first = 0  # ring slot of the oldest waiting frame
        self._waiting = 0
        self._hearing = False
        self._trusted = False

    def hear(self, residual: npt.NDArray[np.float32] | None, trusted: bool,
             ulaw: bytes | None = None) -> None:
        """Take the canceller's output for one inbound frame (None: it took none).

        `trusted`: the canceller is trusted now (its residual no longer holds our echo).
        `ulaw`: the inbound frame, when `residual` is it as it came (decoded by ULAW_FLOAT).
        """
        if residual is None:
            if self._hearing:
                self._waiting = 0  # unheard: the reset wipes what they would have made
                self._classifier.reset()
            self._hearing = False
            self._probability = 0.0
            return
        if trusted and not self._trusted:
            # The last score before the restart stands until the next window: the frames
            # before it must run.
            self._run_waiting()
            self._classifier.reset()  # forget the echo it heard while the filter learned
        self._trusted = trusted
        self._hearing = True
        power = float(np.dot(residual, residual)) / residual.size
        gain_db = self._normalised.gain_db(10.0 * math.log10(max(power, 1e-12)))
        active = power > _ACTIVE_POWER
        if ulaw is None or len(ulaw) != FRAME_BYTES:
            self._run_waiting()
            self._run(residual, gain_db, active)
            return
        if self._waiting == _PENDING_MAX:
            self._run_oldest()
        self._wait(ulaw, gain_db, active)

    @property
    def probability(self) -> float:
        """Return the latest window's score (0 outside the echo window)."""
        self._run_waiting()
        return self._probability

    @property
    def is_speech(self) -> bool:
        """Tell whether what the canceller left of the last frame scores as speech."""
        return self.probability >= _SPEECH_PROB

    def confirms(self, residual: npt.NDArray[np.float32] | None) -> bool:
        """Tell whether what the canceller left of the last frame (`residual`) is speech
        that can be the caller's: it scores as speech and it is voiced (`_VOICED`)."""
        return self.is_speech and (residual is None or voicing(residual) >= _VOICED)

    def _wait(self, ulaw: bytes, gain_db: float, active: bool) -> None:
        if not self._codes:
            self._codes = bytearray(_PENDING_MAX * FRAME_BYTES)
        slot = (self._first + self._waiting) % _PENDING_MAX
        self._codes[slot * FRAME_BYTES : (slot + 1) * FRAME_BYTES] = ulaw
        self._gains[slot] = gain_db
        self._active[slot] = active
        self._waiting += 1

    def _run_oldest(self) -> None:
        slot = self._first
        codes = np.frombuffer(self._codes, np.uint8, FRAME_BYTES, slot * FRAME_BYTES)
        self._first = (slot + 1) % _PENDING_MAX
        self._waiting -= 1
        self._run(ULAW_FLOAT[codes], self._gains[slot], bool(self._active[slot]))

    def _run_waiting(self) -> None:
        while self._waiting:
            self._run_oldest()

    def _run(self, residual: npt.NDArray[np.float32], gain_db: float, active: bool) -> None:
        prob = self._classifier.push(self._normalised.apply(residual, gain_db), active)
        if prob is not None:
            self._probability = prob
