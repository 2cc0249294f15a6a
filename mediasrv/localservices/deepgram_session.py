"""One Deepgram live connection as a pure state machine: audio in, Results out.

Layer: stand-ins.

Time has two clocks here. The *audio clock* (seconds of audio received on this
connection, 8 mu-law bytes per ms) stamps every message, as Deepgram's do. The *wall
clock* (`now`) only drives the no-audio timeout: 10 s without audio or a text message
closes the socket with 1011 and Deepgram's NET-0001 reason.

Audio is cut into 20 ms frames and run through the energy VAD of the local Realtime
backend. Its onset opens a *segment* (with 200 ms of look-back) that the recogniser
hears; the segment ends, giving one `is_final` Results, when:
  - `endpointing` ms of silence follow the speech -> `speech_final: true` (with
    `endpointing=false`, 500 ms of silence and `speech_final: false`);
  - speech runs past `max_segment_ms` -> `speech_final: false`, a new segment opens;
  - the client sends `Finalize` -> `from_finalize: true` (an empty final when no
    segment is open but audio came since the last final: the confirmation pipecat expects);
  - the client sends `CloseStream` -> the final, then `Metadata`, then close 1000.
`interim_results` adds an interim per second of speech; `vad_events` adds SpeechStarted;
`utterance_end_ms` (only with interim results, as on the real service) sends UtteranceEnd
once the audio clock passes the last final word's end by that much with no new speech.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from mediasrv.audio import BYTES_PER_MS, FRAME_BYTES, FRAME_MS
from mediasrv.localbackend.vad import EnergyVad, EnergyVadConfig, VoiceStarted

from . import deepgram_wire as wire
from .common import Outbox, Stats, Step, request_id
from .recognizer import Recognizer, Word

log = logging.getLogger(__name__)

LOOKBACK_MS = 200  # audio before the VAD's onset that the recogniser also hears
NO_ENDPOINT_SILENCE_MS = 500  # with endpointing=false: silence that still ends a segment
CONTROL_TYPES = frozenset({"KeepAlive", "Finalize", "CloseStream"})


@dataclass(frozen=True)
class SessionConfig:
    """The stand-in's own timing knobs (not Deepgram parameters)."""

    no_audio_timeout_s: float = 10.0
    interim_interval_ms: int = 1000
    max_segment_ms: int = 5000
    vad_threshold_db: float = 15.0
    vad_min_speech_ms: int = 60


class DeepgramSession:
    """Deepgram `/v1/listen` over one socket: pure, `now` comes in from the shell."""

    def __init__(self, params: wire.ListenParams, recognizer: Recognizer,
                 config: SessionConfig, stats: Stats, now: float, created: str) -> None:
        self.request_id = request_id()
        self._params = params
        self._rec = recognizer
        self._config = config
        self._stats = stats
        self._created = created
        silence = params.endpointing_ms if params.endpointing_ms is not None \
            else NO_ENDPOINT_SILENCE_MS
        # No VAD prefix padding: SpeechStarted reports the onset itself; the segment's
        # look-back is added here, never reaching into the previous final.
        self._vad = EnergyVad(EnergyVadConfig(config.vad_threshold_db, config.vad_min_speech_ms,
                                        0, max(FRAME_MS, silence)))
        self._out = Outbox()
        self._sha = hashlib.sha256()
        self._carry = b""
        self._recent = bytearray()  # the last LOOKBACK_MS of audio (segment look-back)
        self._pos_ms = 0  # audio clock at the end of the last whole frame
        self._segment_ms: int | None = None  # start of the open segment, None if none
        self._interim_ms = 0  # audio clock of the last interim (or segment start)
        self._final_ms = 0  # audio clock at the end of the last final
        self._last_word_end: float | None = None  # UtteranceEnd pending while not None
        self._deadline = now + config.no_audio_timeout_s
        self._closed = False
        stats.add("sessions")

    # -- inputs from the shell ----------------------------------------------------------

    def on_binary(self, data: bytes, now: float) -> Step:
        if self._closed:
            return self._out.take()
        self._deadline = now + self._config.no_audio_timeout_s
        if not data:  # the deprecated way to close: an empty binary message
            self._close_stream()
            return self._out.take()
        self._stats.add("audio_bytes", len(data))
        self._sha.update(data)
        data = self._carry + data
        whole = len(data) - len(data) % FRAME_BYTES
        self._carry = data[whole:]
        for offset in range(0, whole, FRAME_BYTES):
            self._frame(data[offset : offset + FRAME_BYTES])
        return self._out.take()

    def on_text(self, text: str, now: float) -> Step:
        if self._closed:
            return self._out.take()
        self._deadline = now + self._config.no_audio_timeout_s
        kind = _control_type(text)
        if kind is None:
            log.info("deepgram %s: undecodable text message (%d chars): closing 1008",
                     self.request_id, len(text))
            self._stats.add("bad_messages")
            self._close(1008, wire.DATA_REASON)
        elif kind == "KeepAlive":
            self._stats.add("keepalive")
        elif kind == "Finalize":
            self._stats.add("finalize")
            self._finalize()
        else:
            self._stats.add("close_stream")
            self._close_stream()
        return self._out.take()

    def tick(self, now: float) -> Step:
        if not self._closed and now >= self._deadline:
            log.info("deepgram %s: no audio or text for %.1f s: closing 1011", self.request_id,
                     self._config.no_audio_timeout_s)
            self._stats.add("timeouts")
            self._close(1011, wire.NO_AUDIO_REASON)
        return self._out.take()

    def next_deadline(self) -> float | None:
        return None if self._closed else self._deadline

    def ended(self) -> None:
        self._rec.close()
        self._stats.add("sessions_ended")

    # -- audio --------------------------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        before_ms = self._pos_ms
        events = self._vad.feed(frame)
        self._pos_ms += FRAME_MS
        for ev in events:
            if isinstance(ev, VoiceStarted):
                self._open_segment(ev.audio_start_ms, before_ms)
        if self._segment_ms is not None:
            self._rec.feed(frame)
        self._recent.extend(frame)
        del self._recent[: max(0, len(self._recent) - LOOKBACK_MS * BYTES_PER_MS)]
        for ev in events:
            if not isinstance(ev, VoiceStarted) and self._segment_ms is not None:
                self._end_segment(speech_final=self._params.endpointing_ms is not None)
        self._maybe_interim()
        self._maybe_split()
        self._maybe_utterance_end()

    def _open_segment(self, onset_ms: int, before_ms: int) -> None:
        if self._params.vad_events:
            self._stats.add("speech_started")
            self._out.send(wire.speech_started(onset_ms / 1000))
        if self._segment_ms is not None:
            return  # a segment split by max_segment_ms is still open
        start_ms = max(onset_ms - LOOKBACK_MS, self._final_ms, 0)
        self._segment_ms = start_ms
        self._interim_ms = start_ms
        self._last_word_end = None  # new speech: any pending UtteranceEnd waits for it
        self._rec.begin()
        back = min(before_ms - start_ms, len(self._recent) // BYTES_PER_MS)
        if back > 0:
            self._rec.feed(bytes(self._recent[-back * BYTES_PER_MS :]))

    def _maybe_interim(self) -> None:
        start = self._segment_ms
        if (start is None or not self._params.interim_results
                or self._pos_ms - self._interim_ms < self._config.interim_interval_ms):
            return
        self._interim_ms = self._pos_ms
        duration = (self._pos_ms - start) / 1000
        text = self._rec.partial().split()
        step = duration / max(len(text), 1)
        words = [Word(w, start / 1000 + i * step, start / 1000 + (i + 1) * step)
                 for i, w in enumerate(text)]
        self._stats.add("results_interim")
        self._send_results(words, start, duration, is_final=False)

    def _maybe_split(self) -> None:
        start = self._segment_ms
        if start is not None and self._pos_ms - start >= self._config.max_segment_ms:
            self._end_segment(speech_final=False)
            self._segment_ms = self._interim_ms = self._pos_ms
            self._rec.begin()

    def _maybe_utterance_end(self) -> None:
        wait_ms = self._params.utterance_end_ms
        last = self._last_word_end
        if (wait_ms is None or last is None or not self._params.interim_results
                or self._segment_ms is not None or self._pos_ms < last * 1000 + wait_ms):
            return
        self._last_word_end = None
        self._stats.add("utterance_end")
        self._out.send(wire.utterance_end(last))

    def _end_segment(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        start = self._segment_ms
        assert start is not None
        self._segment_ms = None
        duration = (self._pos_ms - start) / 1000
        words = [Word(w.word, start / 1000 + w.start, start / 1000 + w.end, w.confidence)
                 for w in self._rec.finish(duration)]
        if words:
            self._last_word_end = words[-1].end
        self._stats.add("results_final")
        self._stats.add("speech_final" if speech_final else "final_not_speech_final")
        self._stats.record("finals", " ".join(w.word for w in words))
        self._send_results(words, start, duration, is_final=True, speech_final=speech_final,
                           from_finalize=from_finalize)

    def _send_results(self, words: list[Word], start_ms: int, duration: float, *,
                      is_final: bool, speech_final: bool = False,
                      from_finalize: bool = False) -> None:
        if is_final:
            self._final_ms = self._pos_ms
        self._out.send(wire.results(words=words, start=start_ms / 1000, duration=duration,
                                    is_final=is_final, speech_final=speech_final,
                                    from_finalize=from_finalize,
                                    punctuate=self._params.punctuate, req_id=self.request_id))

    # -- control messages ---------------------------------------------------------------

    def _finalize(self) -> None:
        if self._segment_ms is not None:
            self._end_segment(speech_final=False, from_finalize=True)
        elif self._pos_ms > self._final_ms:  # audio came, nothing to say: confirm empty
            self._stats.add("results_final")
            self._send_results([], self._final_ms, (self._pos_ms - self._final_ms) / 1000,
                               is_final=True, from_finalize=True)

    def _close_stream(self) -> None:
        if self._segment_ms is not None:
            self._end_segment(speech_final=False)
        self._out.send(wire.metadata(self.request_id, self._created, self._sha.hexdigest(),
                                     self._pos_ms / 1000))
        self._close(1000, "")

    def _close(self, code: int, reason: str) -> None:
        self._closed = True
        self._out.close(code, reason)


def _control_type(text: str) -> str | None:
    """Return the type of a valid control message, None for anything else."""
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("type") not in CONTROL_TYPES:
        return None
    kind: str = msg["type"]
    allowed = {"type", "channel"} if kind == "Finalize" else {"type"}
    if set(msg) - allowed:
        return None
    return kind
