"""End-of-turn policy: a short silence, then ask a model if the caller has finished.

Layer: policy.

A fixed silence is both too slow and too fast: every finished sentence waits for it, and a
caller who pauses to think longer than it is cut off. Here the VAD still decides what is
speech, and the silence that ends a turn depends on *how* the speech ended:

    IDLE      --speech frame-->                                   SPEAKING
    SPEAKING  --early_check_ms of silence (if set; after
                early_min_speech_ms of speech)-->                 CheckRequest (early)
    early result >= threshold-->                                  WAITING (until check_silence_ms)
    SPEAKING  --check_silence_ms of silence-->                    CheckRequest (CHECKING)
    SPEAKING  --the same, less than min_speech_ms of speech-->   IDLE (a click: no event)
    CHECKING  --result >= threshold-->                            TurnEnd("complete")
    CHECKING  --result below it-->                                WAITING (until its wait)
    CHECKING  --the check failed (queue full, model error)-->     WAITING (fallback_silence_ms)
    WAITING   --the silence its wait asked for-->                 TurnEnd("likely" | "fallback")
    CHECKING/WAITING --speech frame-->                            SPEAKING (result, if any, dropped)
    any but IDLE --max_silence_ms of silence-->                   TurnEnd("cap")

The wait after an answer below `threshold`: without `threshold_at_cap` (the server's
setting) every such turn waits for the cap; with it, the threshold falls in a straight
line from `threshold` at the check to `threshold_at_cap` at the cap, so a turn the model
calls fairly likely finished ends sooner (measured with scripts/eot_eval.py --sweep: on
our material it only adds splits, the model's mid-phrase answers are as high as its
finished ones). The model is not asked again as the silence grows: its answer for the
same phrase barely moves between 0.2 and 1.2 s of silence (measured in phase 1), so a
second check costs CPU and decides nothing. A failed check falls back to today's fixed
silence (`fallback_silence_ms`, END_SILENCE_MS): a caller never waits longer because the
model is busy.

What the model hears: the utterance so far with 500 ms of lead-in, its last 8 s, and
(`max_pause_heard_ms`) each pause inside it cut short -- a pause it already judged "not
the end" lowered its answer for the finished sentence after it (0.97 -> 0.70 for a
1.2 s pause, measured), so it hears that pause no longer than the check silence.

Pure: no threads and no clock; `now` only stamps events, durations are counted in audio
(20 ms per frame, gaps by their length) like `mediasrv.policy.vad`. The policy never runs the
model itself: it *asks* (`CheckRequest`, carrying the utterance audio) and is told the
answer (`on_result`), so the shell can run the model inline or on another thread. A result
for audio that is no longer the latest (speech came back meanwhile) is ignored, and a
check is asked at most twice per pause (early, then at the check silence) and the same
audio is never scored twice.

`InlineTurnEnder` is the synchronous shell (scripts, tests): it feeds every request to a
`TurnModel` at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import FRAME_MS, SAMPLE_RATE
from mediasrv.errors import ConfigError, check_range

Floats = npt.NDArray[np.float32]
_SILENT_FRAME = np.zeros(FRAME_MS * SAMPLE_RATE // 1000, np.float32)


class TurnModel(Protocol):
    def probability(self, audio_8k: Floats) -> float:
        """Return P(the speaker has finished) for one utterance, its end last."""
        ...


@dataclass(frozen=True, slots=True)
class EndTurnConfig:
    # Defaults: the model's own operating point (phase 1). The server's come from the
    # TURN_* settings (mediasrv.web.wiring.end_turn_config), measured on our material.
    # A breath inside a phrase is 100-200 ms; at 200 ms the model hears the phrase's end.
    check_silence_ms: int = 200
    # A pause to think rarely lasts longer; the seed's cascade ends turns after 2 s.
    max_silence_ms: int = 1600
    threshold: float = 0.5  # the model's own decision point (pipecat, smart-turn)
    # None: below `threshold` the cap ends the turn; else the threshold falls to this at
    # the cap (see the module docstring).
    threshold_at_cap: float | None = None
    fallback_silence_ms: int = 500  # a failed check: today's END_SILENCE_MS
    # Less speech than this is a click or a cough: not worth a check (the VAD's onset).
    min_speech_ms: int = 100
    # Audio kept before the first speech frame: the model was trained on whole phrases,
    # pipecat gives it 500 ms of lead-in.
    pre_speech_ms: int = 500
    max_audio_ms: int = 8000  # the model sees the last 8 s at most
    # None: the model hears the utterance as spoken; else each pause inside it is cut to
    # this many ms (the trailing silence is kept whole).
    max_pause_heard_ms: int | None = None
    # None: one check per pause, at `check_silence_ms`. Else a first check at this much
    # silence, whose "complete" ends the turn once `check_silence_ms` is reached: the
    # check's own time (60-140 ms end to end) is then spent while the silence grows.
    early_check_ms: int | None = None
    # The early check is asked only once the turn holds this much speech. A caller's short
    # opening ("Yes, | I would like...") is where a brief pause is followed by more, and
    # the model calls it finished (p=0.98 after 0.36 s, tests/test_e2e_turns.py): there
    # only the check at `check_silence_ms` decides, its own time (60-140 ms) part of the
    # silence, as without the early check (scripts/eot_eval.py, openings).
    early_min_speech_ms: int = 600

    def __post_init__(self) -> None:
        # The fields that come from settings (the silences, the threshold) were checked
        # there (mediasrv.web.settings), once; these are the policy's own, and the one
        # relation the state machine needs.
        if not self.check_silence_ms < self.max_silence_ms:
            raise ConfigError(f"check_silence_ms={self.check_silence_ms} must be below "
                              f"max_silence_ms={self.max_silence_ms}")
        if self.threshold_at_cap is not None:
            check_range("threshold_at_cap", self.threshold_at_cap, 0.0, self.threshold)
        check_range("min_speech_ms", self.min_speech_ms, 0, 1000)
        check_range("early_min_speech_ms", self.early_min_speech_ms, 0, self.max_audio_ms)
        check_range("pre_speech_ms", self.pre_speech_ms, 0, 2000)
        check_range("max_audio_ms", self.max_audio_ms, 1000, 8000)
        if self.early_check_ms is not None:
            check_range("early_check_ms", self.early_check_ms, FRAME_MS, self.check_silence_ms - 1)


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """Score `audio` (8 kHz floats, the utterance so far) and report it with `seq`."""

    seq: int
    audio: Floats
    at: float
    silence_ms: int


@dataclass(frozen=True, slots=True)
class TurnEnd:
    at: float
    # "complete": the model said so at the check; "likely": the wait its answer earned
    # (threshold_at_cap); "fallback": the fixed silence after a failed check;
    # "cap": TURN_MAX_SILENCE_MS
    reason: str
    silence_ms: int  # audio since the last speech frame
    probability: float | None  # the last check's result for this audio, if any


EndTurnEvent = CheckRequest | TurnEnd


class Phase(Enum):
    IDLE = "idle"
    SPEAKING = "speaking"
    CHECKING = "checking"  # a check is out for the current audio
    WAITING = "waiting"  # the check said "not finished" (or failed): wait for speech or its wait


class EndTurnPolicy:
    """Per-call end-of-turn decisions over 20 ms frames. Pure: time comes in as `now`."""

    def __init__(self, config: EndTurnConfig | None = None) -> None:
        self.config = cfg = config if config is not None else EndTurnConfig()
        self.phase = Phase.IDLE
        self._pre: deque[Floats] = deque(maxlen=max(1, cfg.pre_speech_ms // FRAME_MS))
        self._audio: deque[Floats] = deque(maxlen=cfg.max_audio_ms // FRAME_MS)
        self._speech: deque[bool] = deque(maxlen=cfg.max_audio_ms // FRAME_MS)  # per frame
        self._speech_ms = 0
        self._silence_ms = 0
        self._seq = 0
        self._probability: float | None = None
        self._end_ms = cfg.max_silence_ms  # the silence that ends this turn, and why
        self._end_reason = "cap"
        self._early_seq = -1  # the early check of this pause, while it may still count

    def feed(self, frame: Floats, speech: bool, now: float) -> EndTurnEvent | None:
        """Take one 20 ms frame (8 kHz floats) and the VAD's verdict on it."""
        frame = frame.copy()  # callers reuse their buffers
        if self.phase is Phase.IDLE:
            if not speech:
                self._pre.append(frame)
                return None
            self._audio.extend(self._pre)
            self._speech.extend([False] * len(self._pre))
            self._pre.clear()
        self._audio.append(frame)
        self._speech.append(speech)
        return self._step(speech, frame.shape[0] * 1000 // SAMPLE_RATE, now)

    def feed_gap(self, ms: int, now: float) -> EndTurnEvent | None:
        """Count `ms` of frames that never came (Twilio omits some silence) as silence."""
        if ms <= 0 or self.phase is Phase.IDLE:
            return None
        for _ in range(min(ms, self.config.max_audio_ms) // FRAME_MS):
            self._audio.append(_SILENT_FRAME)  # the model must hear the pause as silence
            self._speech.append(False)
        return self._step(False, ms, now)

    def on_result(self, seq: int, probability: float, now: float) -> TurnEnd | None:
        """Take a check's result; end the turn if it is current and says "finished"."""
        if seq == self._early_seq and self.phase is not Phase.IDLE:
            return self._on_early(probability, now)
        if self.phase is not Phase.CHECKING or seq != self._seq:
            return None  # speech came back since, or the turn already ended: stale
        self._probability = probability
        if probability >= self.config.threshold:
            return self._end(now, "complete")
        wait = self._wait_ms(probability)
        return self._wait(wait, "likely" if wait < self.config.max_silence_ms else "cap", now)

    def _on_early(self, probability: float, now: float) -> TurnEnd | None:
        """Take the early check's answer: "complete" ends the turn at the check silence."""
        self._early_seq = -1
        if probability < self.config.threshold:
            return None  # the check at `check_silence_ms` decides, as without it
        self._probability = probability
        self._seq += 1  # a later check still out no longer matters
        return self._wait(self.config.check_silence_ms, "complete", now)

    def on_failure(self, seq: int, now: float) -> TurnEnd | None:
        """Take a check that could not be run: end the turn at the fixed silence."""
        if seq == self._early_seq:
            self._early_seq = -1  # the check at `check_silence_ms` decides
            return None
        if self.phase is not Phase.CHECKING or seq != self._seq:
            return None
        wait = min(self.config.fallback_silence_ms, self.config.max_silence_ms)
        return self._wait(wait, "fallback", now)

    def reset(self) -> None:
        """Forget the utterance (the VAD gave it up, or ended it first)."""
        self._reset()

    def _wait_ms(self, probability: float) -> int:
        """Return the silence at which the falling threshold reaches `probability`."""
        cfg = self.config
        floor = cfg.threshold_at_cap
        if floor is None or probability < floor or cfg.threshold <= floor:
            return cfg.max_silence_ms
        share = (cfg.threshold - probability) / (cfg.threshold - floor)
        wait = cfg.check_silence_ms + share * (cfg.max_silence_ms - cfg.check_silence_ms)
        return -(-int(wait) // FRAME_MS) * FRAME_MS  # a whole frame: it is counted in frames

    def _wait(self, wait_ms: int, reason: str, now: float) -> TurnEnd | None:
        self.phase = Phase.WAITING
        self._end_ms, self._end_reason = wait_ms, reason
        if self._silence_ms >= wait_ms:
            return self._end(now, reason)
        return None

    def _step(self, speech: bool, ms: int, now: float) -> EndTurnEvent | None:
        cfg = self.config
        if speech:
            self.phase = Phase.SPEAKING  # a check in flight is now stale
            self._early_seq = -1
            self._speech_ms += ms
            self._silence_ms = 0
            self._probability = None
            self._end_ms, self._end_reason = cfg.max_silence_ms, "cap"
            return None
        before = self._silence_ms
        self._silence_ms += ms
        if self._silence_ms >= cfg.max_silence_ms:
            return self._end(now, "cap")
        if self.phase is Phase.WAITING and self._silence_ms >= self._end_ms:
            return self._end(now, self._end_reason)
        early = cfg.early_check_ms
        if (self.phase is Phase.SPEAKING and early is not None
                and before < early <= self._silence_ms < cfg.check_silence_ms
                and self._speech_ms >= max(cfg.min_speech_ms, cfg.early_min_speech_ms)):
            self._seq += 1
            self._early_seq = self._seq
            return CheckRequest(self._seq, self._check_audio(), now, self._silence_ms)
        if self.phase is Phase.SPEAKING and before < cfg.check_silence_ms <= self._silence_ms:
            if self._speech_ms < cfg.min_speech_ms:
                self._reset()  # a click, not an utterance: as the VAD drops an onset
                return None
            self.phase = Phase.CHECKING
            self._seq += 1
            audio = self._check_audio()
            return CheckRequest(self._seq, audio, now, self._silence_ms)
        return None

    def _check_audio(self) -> Floats:
        keep = self.config.max_pause_heard_ms
        if keep is None:
            return np.concatenate(self._audio)
        keep_frames = keep // FRAME_MS
        out: list[Floats] = []
        pause: list[Floats] = []
        heard_speech = False
        for frame, speech in zip(self._audio, self._speech, strict=True):
            if not speech:
                pause.append(frame)
                continue
            out.extend(pause[-keep_frames:] if heard_speech and keep_frames else
                       pause if not heard_speech else [])
            pause.clear()
            heard_speech = True
            out.append(frame)
        out.extend(pause)  # the trailing silence, whole: the model judges how speech ended
        return np.concatenate(out)

    def _end(self, now: float, reason: str) -> TurnEnd:
        event = TurnEnd(now, reason, self._silence_ms, self._probability)
        self._reset()
        return event

    def _reset(self) -> None:
        self.phase = Phase.IDLE
        self._audio.clear()
        self._speech.clear()
        self._pre.clear()
        self._speech_ms = 0
        self._silence_ms = 0
        self._probability = None
        self._end_ms, self._end_reason = self.config.max_silence_ms, "cap"
        self._early_seq = -1
        self._seq += 1  # any check still out belongs to the turn that just ended


class InlineTurnEnder:
    """Synchronous shell: runs every check at once on the caller's thread."""

    def __init__(self, model: TurnModel, config: EndTurnConfig | None = None) -> None:
        self.policy = EndTurnPolicy(config)
        self._model = model
        self.checks: list[tuple[CheckRequest, float]] = []

    def feed(self, frame: Floats, speech: bool, now: float) -> TurnEnd | None:
        """Take one frame; return the turn's end if this frame (or its check) ends it."""
        return self._settle(self.policy.feed(frame, speech, now), now)

    def feed_gap(self, ms: int, now: float) -> TurnEnd | None:
        """Count a gap of missing frames as silence."""
        return self._settle(self.policy.feed_gap(ms, now), now)

    def _settle(self, event: EndTurnEvent | None, now: float) -> TurnEnd | None:
        if isinstance(event, CheckRequest):
            probability = self._model.probability(event.audio)
            self.checks.append((event, probability))
            return self.policy.on_result(event.seq, probability, now)
        return event
