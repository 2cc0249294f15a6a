"""Local voice activity detection over 20 ms frames. Pure: time comes in as `now`.

Layer: policy.

Two stages, both run on every frame:

1. a cheap level stage: RMS dBFS against an adaptive noise floor. A frame is *active* when
   it stands `snr_gate_db` above the floor and above `abs_min_dbfs`. The floor follows the
   quietest recent frames down at once and creeps up only through frames the classifier
   calls non-speech, so a stationary noise or music bed is absorbed, a voice is not;
2. a speech classifier (silero by default, see `vad_silero`) that is only *run* on audio
   with active frames. Energy alone cannot tell speech from music, tones or noise bursts.
   It hears the audio through a bounded level normaliser (a 2:1 compressor towards -16
   dBFS, at most +12 dB, fast attack, 10 dB/s release): silero is slow on quiet speech
   (measured on our recordings: a caller 20 dB under the bot's level took up to 120 ms
   longer to score as speech, 30 dB under up to 1 s), and a real caller is often that
   quiet. Only 2:1: silero hears speech by its syllables' rise and fall, and a limiter
   (every frame brought to -24 dBFS, as this was until 2026-11-30) flattened the onsets of
   callers between -36 and -24 dBFS -- a caller 10 dB under their natural level scored
   0.2-0.4 for up to 600 ms where any fixed gain scored 0.7-0.9 (docs/turn-taking.md).

A frame counts as speech when it is active and the classifier's latest probability is above
`threshold` (`neg_threshold` from the first speech frame on, in MAYBE_SPEECH as in SPEECH:
hysteresis; an onset that reaches 0.5 and dips to 0.46 on its next frames is still
rising, and those frames count towards `onset_ms` and a barge-in). The state machine:

    SILENCE      --speech frame-->                             MAYBE_SPEECH
    MAYBE_SPEECH --onset_ms of speech-->                       SPEECH   (emits SpeechStart)
    MAYBE_SPEECH --onset_hangover_ms without speech-->         SILENCE
    SPEECH       --end_silence_ms without speech-->            SILENCE  (emits SpeechEnd)
    SPEECH       --end_now() (the end-of-turn model decided)--> SILENCE  (returns SpeechEnd)

An utterance is dated back by its onset's lead (`Vad.onset_lead_ms`, on its first speech
frame): how long the classifier was already rising towards `threshold` (from
`lead_threshold`, at most `lead_max_ms`, and only if that rise took at most `onset_ms`).
Silero reaches 0.5 late on some onsets; the lead counts towards `onset_ms` and the
utterance's length here, and towards a barge-in in the turn policy.

Durations are counted in audio (20 ms per frame, gaps by their length), not from `now`,
so bursty frame delivery does not stretch or shrink an utterance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import FRAME_MS, Pcm16
from mediasrv.errors import ConfigError

_INV_FULL_SCALE = np.float32(1.0 / 32768.0)
_FLOOR_DBFS = -120.0
# A frame at L dBFS is heard halfway to -16 dBFS ((L - 16) / 2), never cut, boosted at
# most 12 dB (from -40 dBFS down): quiet callers louder, their syllables' shape kept.
_NORM_TARGET_DBFS = -16.0
_NORM_RATIO = 0.5  # the share of the distance to the target the gain makes up
_NORM_MAX_DB = 12.0
_NORM_RELEASE_DB = 0.2  # per 20 ms frame: 10 dB/s
_LOWEST_FLOOR_DBFS = -90.0  # far below any gate: tracking lower only slows recovery


class LevelNormaliser:
    """The classifier's bounded level normaliser (see the module docstring): 2:1 towards
    -16 dBFS, up to +12 dB, fast attack, 10 dB/s release. One per audio stream it hears."""

    def __init__(self) -> None:
        self._envelope = _FLOOR_DBFS  # fast-attack level the gain follows
        self._out: npt.NDArray[np.float32] = np.empty(FRAME_MS * 8, dtype=np.float32)  # reused

    def __call__(self, x: npt.NDArray[np.float32], level: float) -> npt.NDArray[np.float32]:
        """Return `x` (its level in dBFS: `level`) as the classifier should hear it."""
        return self.apply(x, self.gain_db(level))

    def gain_db(self, level: float) -> float:
        """Follow one frame at `level` dBFS; return the gain its samples get (`apply`).

        Apart from `apply` so that a caller may defer the samples' part (ResidualSpeech).
        """
        env = self._envelope
        self._envelope = env = level if level > env else env - _NORM_RELEASE_DB
        return min(max(_NORM_RATIO * (_NORM_TARGET_DBFS - env), 0.0), _NORM_MAX_DB)

    def apply(self, x: npt.NDArray[np.float32], gain_db: float) -> npt.NDArray[np.float32]:
        """Return `x` at `gain_db` (from `gain_db`), clipped to full scale."""
        if gain_db <= 0.0:
            return x
        out = self._out if x.shape == self._out.shape else np.empty_like(x)
        np.multiply(x, np.float32(10.0 ** (gain_db / 20.0)), out=out)
        return np.clip(out, -1.0, 1.0, out=out)


class VadState(Enum):
    SILENCE = "silence"
    MAYBE_SPEECH = "maybe_speech"
    SPEECH = "speech"


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech confirmed; `speech_ms` of it were heard before this frame (onset)."""

    at: float
    speech_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech over after the trailing silence; `duration_s` excludes that silence."""

    at: float
    duration_s: float


VadEvent = SpeechStart | SpeechEnd


class SpeechClassifier(Protocol):
    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        """Take one frame of floats in [-1, 1) (reused by the caller: copy, do not keep)."""
        ...

    def reset(self) -> None:
        """Forget buffered audio and state."""
        ...


@dataclass(frozen=True, slots=True)
class VadConfig:
    end_silence_ms: int = 500  # a breath between sentences is shorter; a turn end longer
    onset_ms: int = 100  # speech to confirm: 60 ms let a hold-music phrase through
    onset_hangover_ms: int = 100  # gaps tolerated while an onset is still unconfirmed
    threshold: float = 0.5  # silero's own recommended operating point
    neg_threshold: float = 0.35  # ... and its recommended release point
    snr_gate_db: float = 3.0  # above the floor by this much before the model runs
    abs_min_dbfs: float = -60.0  # below this nothing is speech (line hiss, comfort noise)
    floor_init_dbfs: float = -60.0
    floor_rise_db_per_s: float = 10.0  # absorbs a new noise/music bed in a few seconds
    # An onset's lead (see `Vad.onset_lead_ms`): scores at least `lead_threshold` straight
    # before the first speech frame, counted up to `lead_max_ms` (0: off).
    lead_threshold: float = 0.3
    lead_max_ms: int = 60

    def __post_init__(self) -> None:
        for name in ("onset_ms", "onset_hangover_ms"):  # (end_silence_ms: a setting)
            value = getattr(self, name)
            if value < FRAME_MS or value > 5000:
                raise ConfigError(f"{name}={value}: must be between {FRAME_MS} and 5000 ms")
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ConfigError(
                f"threshold={self.threshold}, neg_threshold={self.neg_threshold}: "
                "need 0 < neg_threshold <= threshold < 1"
            )
        if not 0.0 < self.lead_threshold <= self.threshold:
            raise ConfigError(f"lead_threshold={self.lead_threshold}: need 0 < it <= threshold")
        if self.lead_max_ms < 0:  # (above onset_ms, an onset's lead alone confirms it)
            raise ConfigError(f"lead_max_ms={self.lead_max_ms}: must be >= 0")
        if not 0.0 <= self.snr_gate_db <= 30.0:
            raise ConfigError(f"snr_gate_db={self.snr_gate_db}: must be between 0 and 30")
        if self.floor_rise_db_per_s <= 0.0:
            raise ConfigError(f"floor_rise_db_per_s={self.floor_rise_db_per_s}: must be > 0")


def default_classifier() -> SpeechClassifier:
    """Return a new silero state over the process's shared session (imported here, so
    onnxruntime loads only when a classifier is first needed)."""
    from mediasrv.models.vad_silero import SileroClassifier

    return SileroClassifier()


class Vad:
    """Speech/silence state machine over 20 ms frames. Pure: time comes in as `now`."""

    def __init__(
        self, config: VadConfig | None = None, classifier: SpeechClassifier | None = None
    ) -> None:
        self.config = cfg = config if config is not None else VadConfig()
        self._classifier = classifier if classifier is not None else default_classifier()
        self.state = VadState.SILENCE
        self.level_dbfs = _FLOOR_DBFS  # of the last frame, for callers that also need it
        self.floor_dbfs = cfg.floor_init_dbfs
        self.is_speech = False  # the last frame's verdict
        self._prob = 0.0  # the frame's score: the classifier's, or a surer second opinion
        self._own = 0.0  # the classifier's latest window score
        self._x: npt.NDArray[np.float32] = np.empty(FRAME_MS * 8, dtype=np.float32)  # reused
        self._normalised = LevelNormaliser()
        self._rise = cfg.floor_rise_db_per_s * FRAME_MS / 1000.0
        self._speech_ms = 0  # speech heard in the current MAYBE_SPEECH/SPEECH
        self._quiet_ms = 0  # non-speech since the last speech frame
        self._span_ms = 0  # audio from the first speech frame to the last
        self._lead_ms = 0  # active frames since the last one under `lead_threshold`
        self.onset_lead_ms = 0  # see `_track_lead`

    def feed(self, frame: Pcm16, now: float) -> VadEvent | None:
        """Take one 20 ms frame of int16 samples; return a state change, if any."""
        x = self._x if frame.shape == self._x.shape else np.empty(frame.shape, np.float32)
        np.multiply(frame, _INV_FULL_SCALE, out=x)  # widen to float before arithmetic
        return self.feed_float(x, now)

    def feed_float(
        self, x: npt.NDArray[np.float32], now: float, masked_dbfs: float = _FLOOR_DBFS,
        second_opinion: float = 0.0,
    ) -> VadEvent | None:
        """Take one 20 ms frame of floats in [-1, 1) (e.g. echo-cancelled audio).

        `masked_dbfs`: a level the frame must exceed to be active, besides the noise floor
        (what an echo canceller is known to leave of our own speech: not the caller's).
        `second_opinion`: another state's latest score of the same audio (the turn policy's
        `ResidualSpeech`); the frame's probability is the surer of the two. Silero's score
        of an onset depends on where its 32 ms windows fall and on what its state heard
        before, so two states on one residual can disagree for hundreds of ms.
        """
        power = float(np.dot(x, x)) / x.size
        level = 10.0 * math.log10(power) if power > 1e-12 else _FLOOR_DBFS
        self.level_dbfs = level
        cfg = self.config
        active = (
            level > self.floor_dbfs + cfg.snr_gate_db
            and level > cfg.abs_min_dbfs
            and level > masked_dbfs
        )
        prob = self._classifier.push(self._normalised(x, level), active)
        if prob is not None:
            self._own = prob
        self._prob = max(self._own, second_opinion)
        limit = cfg.neg_threshold if self.state is not VadState.SILENCE else cfg.threshold
        speech = active and self._prob >= limit
        self.is_speech = speech
        self._track_lead(active, speech)
        self._track_floor(level, active, speech)
        return self._step(speech, FRAME_MS, now)

    @property
    def probability(self) -> float:
        """Return the latest frame's speech probability (with any second opinion)."""
        return self._prob

    @property
    def own_probability(self) -> float:
        """Return this VAD's classifier's latest score, without the second opinion."""
        return self._own

    def feed_gap(self, ms: int, now: float) -> VadEvent | None:
        """Count `ms` of missing frames as silence (Twilio may omit silent frames)."""
        if ms <= 0:
            return None
        self._classifier.reset()
        self._prob = self._own = 0.0
        self.is_speech = False
        self._lead_ms = self.onset_lead_ms = 0
        return self._step(False, ms, now)

    def end_now(self, now: float) -> SpeechEnd | None:
        """End confirmed speech now (an end-of-turn model decided); None if there is none.

        Back to SILENCE, so the same utterance never ends twice; the classifier and the
        noise floor keep their state: the audio goes on.
        """
        if self.state is not VadState.SPEECH:
            return None
        self.state = VadState.SILENCE
        return SpeechEnd(at=now, duration_s=self._span_ms / 1000.0)

    def _track_lead(self, active: bool, speech: bool) -> None:
        """Note how much of an onset the classifier was already rising through.

        `onset_lead_ms` is non-zero only on the first speech frame of an utterance: the
        run of active frames straight before it that scored at least `lead_threshold`,
        at most `lead_max_ms`. Silero is slow on some onsets: the voiced start of
        tests/audio's "hello world", 30 dB over the floor, scores 0.31-0.49 for 60-80 ms
        before 0.88, depending on where its 32 ms windows fall. A run longer than
        `onset_ms` is not an onset on its way up but a sound the classifier is unsure of
        (hold music hovered at 0.38-0.46 for 160 ms, then 0.51): it earns nothing. The
        utterance is dated back by the lead, here and in the turn policy (silero's own
        streaming iterator dates a start back too, by its `speech_pad_ms`).
        """
        cfg = self.config
        self.onset_lead_ms = 0
        if speech:
            if self.state is VadState.SILENCE and self._lead_ms <= cfg.onset_ms:
                self.onset_lead_ms = min(self._lead_ms, cfg.lead_max_ms)
            self._lead_ms = 0
        elif active and self._prob >= cfg.lead_threshold:
            self._lead_ms += FRAME_MS
        else:
            self._lead_ms = 0

    def _track_floor(self, level: float, active: bool, speech: bool) -> None:
        floor = self.floor_dbfs
        if level < floor:
            # Follow quiet frames down fast, but a single dip of a fluctuating noise (20 ms
            # frames of brown noise vary by 10 dB) must not drag the floor to its minimum.
            self.floor_dbfs = max(floor + 0.2 * (level - floor), _LOWEST_FLOOR_DBFS)
        elif not speech and self._prob < self.config.neg_threshold:
            # Loud but not speech (noise, music, tones): absorb it into the floor.
            self.floor_dbfs = min(floor + self._rise, level)

    def _step(self, speech: bool, ms: int, now: float) -> VadEvent | None:
        cfg = self.config
        if self.state is VadState.SILENCE:
            if speech:
                self.state = VadState.MAYBE_SPEECH
                self._speech_ms = self._span_ms = ms + self.onset_lead_ms
                self._quiet_ms = 0
            return None
        if speech:
            self._span_ms += self._quiet_ms + ms
            self._speech_ms += ms
            self._quiet_ms = 0
        else:
            self._quiet_ms += ms
        if self.state is VadState.MAYBE_SPEECH:
            if self._speech_ms >= cfg.onset_ms:
                self.state = VadState.SPEECH
                return SpeechStart(at=now, speech_ms=self._speech_ms)
            if self._quiet_ms >= cfg.onset_hangover_ms:
                self.state = VadState.SILENCE
            return None
        if self._quiet_ms >= cfg.end_silence_ms:
            self.state = VadState.SILENCE
            return SpeechEnd(at=now, duration_s=self._span_ms / 1000.0)
        return None
