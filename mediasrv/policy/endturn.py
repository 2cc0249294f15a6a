"""End-of-turn policy: a short silence, then ask a model if the caller has finished.

Layer: policy.

A fixed silence is both too slow and too fast: every finished sentence waits for it, and a
caller who pauses to think longer than it is cut off. Here the VAD still decides what is
speech, and the silence that ends a turn depends on *how* the speech ended:

    IDLE      --speech frame-->                                   SPEAKING
    SPEAKING  --check_silence_ms of silence-->                    CheckRequest (CHECKING)
    SPEAKING  --the same, less than min_speech_ms of speech-->   IDLE (a click: no event)
    CHECKING  --result >= threshold-->                            TurnEnd("complete")
    CHECKING  --result below it-->                                WAITING
    CHECKING/WAITING --speech frame-->                            SPEAKING (result, if any, dropped)
    any but IDLE --max_silence_ms of silence-->                   TurnEnd("silence")

Pure: no threads and no clock; `now` only stamps events, durations are counted in audio
(20 ms per frame, gaps by their length) like `mediasrv.policy.vad`. The policy never runs the
model itself: it *asks* (`CheckRequest`, carrying the utterance audio) and is told the
answer (`on_result`), so the shell can run the model inline or on another thread. A result
for audio that is no longer the latest (speech came back meanwhile) is ignored, and a
check is asked at most once per pause: the same audio is never scored twice.

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
from mediasrv.errors import ConfigError

Floats = npt.NDArray[np.float32]
_SILENT_FRAME = np.zeros(FRAME_MS * SAMPLE_RATE // 1000, np.float32)


class TurnModel(Protocol):
    def probability(self, audio_8k: Floats) -> float:
        """Return P(the speaker has finished) for one utterance, its end last."""
        ...


@dataclass(frozen=True, slots=True)
class EndTurnConfig:
    # A breath inside a phrase is 100-200 ms; at 200 ms the model hears the phrase's end.
    check_silence_ms: int = 200
    # A pause to think rarely lasts longer; the seed's cascade ends turns after 2 s.
    max_silence_ms: int = 1600
    threshold: float = 0.5  # the model's own decision point (pipecat, smart-turn)
    # Less speech than this is a click or a cough: not worth a check (the VAD's onset).
    min_speech_ms: int = 100
    # Audio kept before the first speech frame: the model was trained on whole phrases,
    # pipecat gives it 500 ms of lead-in.
    pre_speech_ms: int = 500
    max_audio_ms: int = 8000  # the model sees the last 8 s at most

    def __post_init__(self) -> None:
        _check("check_silence_ms", self.check_silence_ms, FRAME_MS, 1000)
        _check("max_silence_ms", self.max_silence_ms, self.check_silence_ms, 5000)
        _check("threshold", self.threshold, 0.01, 0.99)
        _check("min_speech_ms", self.min_speech_ms, 0, 1000)
        _check("pre_speech_ms", self.pre_speech_ms, 0, 2000)
        _check("max_audio_ms", self.max_audio_ms, 1000, 8000)


def _check(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: must be between {low} and {high}")


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
    reason: str  # "complete" (the model said so) | "silence" (the cap)
    silence_ms: int  # audio since the last speech frame
    probability: float | None  # the last check's result for this audio, if any


EndTurnEvent = CheckRequest | TurnEnd


class Phase(Enum):
    IDLE = "idle"
    SPEAKING = "speaking"
    CHECKING = "checking"  # a check is out for the current audio
    WAITING = "waiting"  # the check said "not finished": wait for speech or the cap


class EndTurnPolicy:
    """Per-call end-of-turn decisions over 20 ms frames. Pure: time comes in as `now`."""

    def __init__(self, config: EndTurnConfig | None = None) -> None:
        self.config = cfg = config if config is not None else EndTurnConfig()
        self.phase = Phase.IDLE
        self._pre: deque[Floats] = deque(maxlen=max(1, cfg.pre_speech_ms // FRAME_MS))
        self._audio: deque[Floats] = deque(maxlen=cfg.max_audio_ms // FRAME_MS)
        self._speech_ms = 0
        self._silence_ms = 0
        self._seq = 0
        self._probability: float | None = None

    def feed(self, frame: Floats, speech: bool, now: float) -> EndTurnEvent | None:
        """Take one 20 ms frame (8 kHz floats) and the VAD's verdict on it."""
        frame = frame.copy()  # callers reuse their buffers
        if self.phase is Phase.IDLE:
            if not speech:
                self._pre.append(frame)
                return None
            self._audio.extend(self._pre)
            self._pre.clear()
        self._audio.append(frame)
        return self._step(speech, frame.shape[0] * 1000 // SAMPLE_RATE, now)

    def feed_gap(self, ms: int, now: float) -> EndTurnEvent | None:
        """Count `ms` of frames that never came (Twilio omits some silence) as silence."""
        if ms <= 0 or self.phase is Phase.IDLE:
            return None
        for _ in range(min(ms, self.config.max_audio_ms) // FRAME_MS):
            self._audio.append(_SILENT_FRAME)  # the model must hear the pause as silence
        return self._step(False, ms, now)

    def on_result(self, seq: int, probability: float, now: float) -> TurnEnd | None:
        """Take a check's result; end the turn if it is current and says "finished"."""
        if self.phase is not Phase.CHECKING or seq != self._seq:
            return None  # speech came back since, or the turn already ended: stale
        self._probability = probability
        if probability >= self.config.threshold:
            return self._end(now, "complete")
        self.phase = Phase.WAITING
        return None

    def _step(self, speech: bool, ms: int, now: float) -> EndTurnEvent | None:
        cfg = self.config
        if speech:
            self.phase = Phase.SPEAKING  # a check in flight is now stale
            self._speech_ms += ms
            self._silence_ms = 0
            self._probability = None
            return None
        before = self._silence_ms
        self._silence_ms += ms
        if self._silence_ms >= cfg.max_silence_ms:
            return self._end(now, "silence")
        if self.phase is Phase.SPEAKING and before < cfg.check_silence_ms <= self._silence_ms:
            if self._speech_ms < cfg.min_speech_ms:
                self._reset()  # a click, not an utterance: as the VAD drops an onset
                return None
            self.phase = Phase.CHECKING
            self._seq += 1
            audio = np.concatenate(self._audio)
            return CheckRequest(self._seq, audio, now, self._silence_ms)
        return None

    def _end(self, now: float, reason: str) -> TurnEnd:
        event = TurnEnd(now, reason, self._silence_ms, self._probability)
        self._reset()
        return event

    def _reset(self) -> None:
        self.phase = Phase.IDLE
        self._audio.clear()
        self._pre.clear()
        self._speech_ms = 0
        self._silence_ms = 0
        self._probability = None
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
