"""Text to 8 kHz mu-law speech with per-character timings, for the ElevenLabs stand-in.

Layer: stand-ins.

The engine is espeak-ng (GPL-3.0-or-later) from the `espeakng-loader` wheel, which ships
`libespeak-ng.so` and its voice data; no system package is needed. mediasrv does not
link against it: the shared library is loaded at run time with ctypes from the wheel's
directory, only when the ElevenLabs stand-in renders speech (see LICENSES/ beside this
file and the README notes). Its output audio is not covered by the GPL.

espeak-ng is a process-wide singleton (global state, one synthesis at a time), so every
render holds `_ENGINE_LOCK`. Synthesis is synchronous: the callback collects 22.05 kHz
PCM and WORD events (text position + audio position in ms). Character timings are the
word onsets with each word's characters spread evenly up to the next onset: an
approximation, as ElevenLabs' own are. The audio is low-passed at 3.6 kHz (63-tap
windowed sinc), resampled to 8 kHz by linear interpolation, normalised to -3 dBFS peak
and mu-law encoded.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import SAMPLE_RATE, pcm16_to_ulaw

log = logging.getLogger(__name__)

AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: render through the callback, no device
INITIALIZE_DONT_EXIT = 0x8000  # never let the library exit() the process on an error
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_END = 0
EVENT_WORD = 1
RATE_PARAMETER = 1  # espeakRATE, words per minute
LOWPASS_TAPS = 63
LOWPASS_HZ = 3600.0  # below 4 kHz Nyquist with room for the transition band
PEAK = 0.708 * 32767  # -3 dBFS, the level of the shipped prompts

_ENGINE_LOCK = threading.Lock()  # espeak-ng is one global synthesiser per process


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Rendered:
    """Speech for a text: mu-law audio and, per character of the text, start and duration."""

    audio: bytes
    starts_ms: list[int]
    durations_ms: list[int]


class Voice(Protocol):
    def render(self, text: str) -> Rendered: ...


class _Engine:
    """The loaded library and the buffers its callback fills (used under _ENGINE_LOCK)."""

    def __init__(self) -> None:
        import espeakng_loader  # the wheel that ships libespeak-ng and espeak-ng-data

        self.lib: Any = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        data_parent = str(Path(espeakng_loader.get_data_path()).parent)
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                               data_parent.encode(), INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise (code {self.rate})")
        self.pcm: list[bytes] = []
        self.words: list[tuple[int, int]] = []  # (0-based char position, audio ms)
        self._callback = _CALLBACK(self._collect)  # kept: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)
        log.info("espeak-ng loaded from %s (%d Hz)", espeakng_loader.get_library_path(),
                 self.rate)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self.pcm.append(ctypes.string_at(wav, count * 2))
        i = 0
        while events[i].type != EVENT_LIST_END:
            if events[i].type == EVENT_WORD:
                self.words.append((events[i].text_position - 1, events[i].audio_position))
            i += 1
        return 0  # 0 = go on synthesising


_engine: _Engine | None = None


class EspeakVoice:
    """Real speech from espeak-ng (`voice` name, `wpm` words per minute)."""

    def __init__(self, voice: str = "en-us", wpm: int = 165) -> None:
        self._voice = voice.encode()
        self._wpm = wpm

    def render(self, text: str) -> Rendered:
        global _engine
        with _ENGINE_LOCK:
            if _engine is None:
                _engine = _Engine()
            engine = _engine
            engine.pcm, engine.words = [], []
            engine.lib.espeak_SetVoiceByName(self._voice)
            engine.lib.espeak_SetParameter(RATE_PARAMETER, self._wpm, 0)
            data = text.encode()
            engine.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8,
                                    None, None)
            pcm = np.frombuffer(b"".join(engine.pcm), np.int16)
            words, rate = list(engine.words), engine.rate
        audio = to_ulaw_8k(pcm, rate)
        starts, durations = char_timings(len(text), words, len(audio) // 8)
        return Rendered(audio, starts, durations)


def to_ulaw_8k(pcm: npt.NDArray[np.int16], rate: int) -> bytes:
    """Band-limit, resample to 8 kHz, normalise to -3 dBFS peak, encode mu-law."""
    if pcm.size == 0:
        return b""
    n = np.arange(LOWPASS_TAPS) - LOWPASS_TAPS // 2
    taps = np.sinc(2 * LOWPASS_HZ / rate * n) * np.hamming(LOWPASS_TAPS)
    filtered = np.convolve(pcm.astype(np.float64), taps / taps.sum(), mode="same")
    positions = np.arange(int(len(filtered) * SAMPLE_RATE / rate)) * (rate / SAMPLE_RATE)
    resampled = np.interp(positions, np.arange(len(filtered)), filtered)
    peak = float(np.max(np.abs(resampled))) or 1.0
    return pcm16_to_ulaw(np.clip(np.rint(resampled * (PEAK / peak)), -32768, 32767))


def char_timings(length: int, words: list[tuple[int, int]],
                 total_ms: int) -> tuple[list[int], list[int]]:
    """Spread each word's characters from its onset to the next one's; return starts, durations."""
    starts = [0] * length
    marks = sorted((pos, ms) for pos, ms in words if 0 <= pos < length)
    marks.append((length, total_ms))
    if marks[0][0] > 0:
        marks.insert(0, (0, marks[0][1] if len(marks) > 1 else 0))
    for (pos, ms), (next_pos, next_ms) in zip(marks, marks[1:], strict=False):
        span = max(next_pos - pos, 1)
        for i in range(pos, min(next_pos, length)):
            starts[i] = ms + (max(next_ms, ms) - ms) * (i - pos) // span
    ends = [*starts[1:], max(total_ms, starts[-1] if starts else 0)]
    return starts, [max(0, end - start) for start, end in zip(starts, ends, strict=True)]
