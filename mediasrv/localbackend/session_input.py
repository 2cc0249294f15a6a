"""The session's input audio buffer and server VAD turns. Pure, no I/O, no time.

Layer: stand-ins.

Positions are on the input-audio clock (bytes appended this session; 8 bytes = 1 ms).
With server VAD on, the buffer between turns is trimmed to what a coming speech start
may still reach back to (prefix padding), so an idle caller costs no memory; a speech
stop commits exactly [audio_start_ms, audio_end_ms) as the user item's audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mediasrv.audio import BYTES_PER_MS

from .options import BackendOptions
from .vad import EnergyVad, EnergyVadConfig, VoiceStarted
from .wire import new_id

IDLE_SLACK_MS = 200  # kept beyond the VAD's look-back, so a start never lands before the buffer
MAX_BUFFER_MS = 300_000  # 5 min: bounds memory if a noisy line never "stops speaking"


@dataclass(frozen=True)
class Turn:
    """A VAD edge: speech started (`started_ms`) or stopped (`stopped_ms` + its audio)."""

    item_id: str
    started_ms: int | None = None
    stopped_ms: int | None = None
    audio: bytes = b""


class InputAudio:
    """`input_audio_buffer` plus the energy VAD that segments it."""

    def __init__(self, options: BackendOptions) -> None:
        self._options = options
        self._buffer = bytearray()
        self._buffer_start = 0  # input-clock byte offset of self._buffer[0]
        self._total = 0  # bytes appended this session: the input-audio clock
        self._vad: EnergyVad | None = None
        self._vad_config: EnergyVadConfig | None = None
        self._item_id: str | None = None  # user item of the speech in progress
        self._speech_start = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def configure(self, turn_detection: dict[str, Any] | None) -> None:
        """Follow the session's `audio.input.turn_detection` (None = VAD off)."""
        if turn_detection is None:
            self._vad, self._vad_config, self._item_id = None, None, None
            return
        config = EnergyVadConfig(
            threshold_db=self._options.server_vad_threshold_db,
            min_speech_ms=self._options.server_vad_min_speech_ms,
            prefix_padding_ms=turn_detection["prefix_padding_ms"],
            silence_duration_ms=turn_detection["silence_duration_ms"],
        )
        if config != self._vad_config:  # keep the detector's state across no-op updates
            self._vad_config = config
            self._reset_vad()

    def append(self, audio: bytes) -> list[Turn]:
        """Buffer appended audio; return the VAD turns it completes."""
        self._buffer += audio
        self._total += len(audio)
        if self._vad is None:
            return []
        turns = [self._turn(edge) for edge in self._vad.feed(audio)]
        if not self._vad.speaking:
            self._keep_last((self._vad.pending_ms + IDLE_SLACK_MS) * BYTES_PER_MS)
        self._keep_last(MAX_BUFFER_MS * BYTES_PER_MS)
        return turns

    def take_all(self) -> tuple[str, bytes]:
        """Empty the buffer for a manual commit; return the user item id and its audio."""
        item_id = self._item_id or new_id("item")
        audio = bytes(self._buffer)
        self.clear()
        return item_id, audio

    def clear(self) -> None:
        """Drop buffered audio and any speech in progress."""
        self._buffer_start += len(self._buffer)
        self._buffer.clear()
        self._item_id = None
        self._reset_vad()

    def _turn(self, edge: Any) -> Turn:
        if isinstance(edge, VoiceStarted):
            self._item_id = new_id("item")
            self._speech_start = edge.audio_start_ms * BYTES_PER_MS
            return Turn(self._item_id, started_ms=edge.audio_start_ms)
        item_id = self._item_id or new_id("item")
        self._item_id = None
        end = edge.audio_end_ms * BYTES_PER_MS
        start = max(self._speech_start, self._buffer_start)
        audio = bytes(self._buffer[start - self._buffer_start : end - self._buffer_start])
        del self._buffer[: max(0, end - self._buffer_start)]
        self._buffer_start = max(self._buffer_start, end)
        return Turn(item_id, stopped_ms=edge.audio_end_ms, audio=audio)

    def _keep_last(self, nbytes: int) -> None:
        drop = len(self._buffer) - nbytes
        if drop > 0:
            del self._buffer[:drop]
            self._buffer_start += drop

    def _reset_vad(self) -> None:
        if self._vad_config is not None:
            self._vad = EnergyVad(self._vad_config, position_ms=self._total // BYTES_PER_MS)

