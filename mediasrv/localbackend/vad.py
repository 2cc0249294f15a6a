"""Energy voice-activity detector for the backend's server VAD. Pure, no I/O, no time.

Layer: stand-ins.

Time here is the *input-audio clock*: ms of audio appended to the session so far (8 mu-law
bytes per ms), exactly what the Realtime API reports in `audio_start_ms`/`audio_end_ms`.
Audio is cut into 20 ms frames; a frame is "loud" when its RMS level is
`threshold_db` above a tracked noise floor. Rules:

  - speech starts after `min_speech_ms` of consecutive loud frames; the reported start
    is the first loud frame minus `prefix_padding_ms` (never before 0 or the last stop);
  - speech stops after `silence_duration_ms` of consecutive quiet frames; the reported end
    is the end of that silence (the real API also includes the silence duration);
  - the floor follows quieter frames at once and louder ones slowly (outside speech only),
    so steady line noise raises it but speech does not. It never goes below
    FLOOR_MIN_DB, so digital silence does not make the detector hair-triggered.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediasrv.audio import BYTES_PER_MS, FRAME_BYTES, FRAME_MS, rms_dbfs, ulaw_to_pcm16

FLOOR_MIN_DB = -70.0  # below any real line noise; digital silence is clamped up to this
FLOOR_START_DB = -60.0  # a typical quiet phone line before the first frame is measured
FLOOR_RISE_DB = 0.05  # per 20 ms frame = 2.5 dB/s: adapts to noise, not to a sentence
SPEECH_MIN_DBFS = -45.0  # quieter frames never count in a turn's length (mediasrv.emulator too)


@dataclass(frozen=True)
class EnergyVadConfig:
    """Detector settings; the timing fields come from the session's turn_detection."""

    threshold_db: float = 15.0
    min_speech_ms: int = 100
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True)
class VoiceStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class VoiceStopped:
    audio_end_ms: int


VadEvent = VoiceStarted | VoiceStopped


class EnergyVad:
    """Speech/silence state machine over 20 ms frames of appended mu-law."""

    def __init__(self, config: EnergyVadConfig, position_ms: int = 0) -> None:
        self._config = config
        self._position_ms = position_ms  # input clock at the end of the last whole frame
        self._carry = b""  # bytes of an incomplete frame, kept for the next feed
        self._floor_db = FLOOR_START_DB
        self._speaking = False
        self._run_ms = 0  # length of the current run of loud (idle) or quiet (speaking) frames
        self._last_stop_ms = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def pending_ms(self) -> int:
        """Return how far back a not-yet-reported speech start may reach from now."""
        return self._run_ms + self._config.prefix_padding_ms

    def feed(self, ulaw: bytes) -> list[VadEvent]:
        """Consume appended audio; return the speech starts and stops it completes."""
        data = self._carry + ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._carry = data[whole:]
        events: list[VadEvent] = []
        for offset in range(0, whole, FRAME_BYTES):
            event = self._frame(data[offset : offset + FRAME_BYTES])
            if event is not None:
                events.append(event)
        return events

    def _frame(self, frame: bytes) -> VadEvent | None:
        level = rms_dbfs(ulaw_to_pcm16(frame))
        self._position_ms += len(frame) // BYTES_PER_MS
        loud = level >= self._floor_db + self._config.threshold_db
        if not self._speaking:
            self._track_floor(level)
        if loud == self._speaking:
            self._run_ms = 0  # the current state is confirmed; nothing pending
            return None
        self._run_ms += FRAME_MS
        if not self._speaking and self._run_ms >= self._config.min_speech_ms:
            return self._start()
        if self._speaking and self._run_ms >= self._config.silence_duration_ms:
            return self._stop()
        return None

    def _start(self) -> VoiceStarted:
        onset = self._position_ms - self._run_ms
        start = max(self._last_stop_ms, onset - self._config.prefix_padding_ms, 0)
        self._speaking = True
        self._run_ms = 0
        return VoiceStarted(start)

    def _stop(self) -> VoiceStopped:
        self._speaking = False
        self._run_ms = 0
        self._last_stop_ms = self._position_ms
        return VoiceStopped(self._position_ms)

    def _track_floor(self, level: float) -> None:
        if level < self._floor_db:
            self._floor_db = max(level, FLOOR_MIN_DB)
        else:
            self._floor_db = min(self._floor_db + FLOOR_RISE_DB, level)


def speech_span_ms(ulaw: bytes, threshold_db: float = EnergyVadConfig.threshold_db) -> int:
    """Return ms from the first to the last loud 20 ms frame of `ulaw` (all of it if none is).

    What the backend reports as the length of a caller's turn: the speech, not the silence
    committed around it, so it agrees with the bridge's END OF UTTERANCE line. "Loud" is
    SPEECH_MIN_DBFS (the emulator's speech onset level) or, on a noisy line,
    `threshold_db` above the quietest frame.
    """
    frames = range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)
    levels = [rms_dbfs(ulaw_to_pcm16(ulaw[i : i + FRAME_BYTES])) for i in frames]
    floor = max(min(levels, default=FLOOR_MIN_DB), FLOOR_MIN_DB)
    loud = [i for i, level in enumerate(levels)
            if level >= max(SPEECH_MIN_DBFS, floor + threshold_db)]
    if not loud:
        return len(ulaw) // BYTES_PER_MS
    return (loud[-1] - loud[0] + 1) * FRAME_MS
