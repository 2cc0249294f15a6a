"""Speech recognisers for the Deepgram stand-in: pocketsphinx (real words) or canned text.

Layer: stand-ins.

A recogniser hears one speech segment at a time: `begin()`, `feed(ulaw)` any number of
times, `partial()` for interim results, `finish(duration_s)` for the final words (times
in seconds from the segment's start). The session decides segments; this module only
turns audio into words.

pocketsphinx (BSD-2, the `pocketsphinx` wheel with its bundled en-us model) is trained
on 16 kHz wideband speech, so 8 kHz mu-law is decoded to PCM and upsampled 2x through a
32-tap half-band windowed-sinc filter (`Upsampler2x`). The phone band still lacks
4-8 kHz, so accuracy is modest (README "Local stand-ins" has the numbers); it costs
about 0.2-0.3 s of CPU per second of speech, which is why benchmarks use `Canned`.
A decoder (~100 MB with the language model) is held only while a segment is open and
returned to a shared pool, so concurrent sessions share a few decoders.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import BYTES_PER_MS, ulaw_to_pcm16

log = logging.getLogger(__name__)

HALF_TAPS = 16  # 32 odd-phase taps: >60 dB stop band with the Kaiser window below
KAISER_BETA = 8.0
SPHINX_FRAME_S = 0.01  # pocketsphinx reports word times in 10 ms frames
CANNED_WORD_S = 0.35  # how fast canned partials grow: about one word per 350 ms of audio
NON_WORDS = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
ALTERNATE = re.compile(r"\(\d+\)$")  # "to(2)": the dictionary's second pronunciation


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of its segment."""

    word: str
    start: float
    end: float
    confidence: float = 0.9


class Recognizer(Protocol):
    def begin(self) -> None: ...

    def feed(self, ulaw: bytes) -> None: ...

    def partial(self) -> str: ...

    def finish(self, duration_s: float) -> list[Word]: ...

    def close(self) -> None: ...


class Upsampler2x:
    """Streaming 8 kHz -> 16 kHz: even outputs are the input, odd ones a half-band FIR."""

    def __init__(self) -> None:
        n = np.arange(-(2 * HALF_TAPS - 1), 2 * HALF_TAPS, 2)  # the odd taps of the half band
        window = np.kaiser(4 * HALF_TAPS - 1, KAISER_BETA)[n + 2 * HALF_TAPS - 1]
        self._taps = np.sinc(n / 2.0) * window
        self._taps /= self._taps.sum()  # unity gain at DC
        self._history = np.zeros(2 * HALF_TAPS - 1)

    def process(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Return 2 * len(pcm) samples at 16 kHz (delayed by HALF_TAPS - 1 input samples)."""
        block = np.concatenate((self._history, pcm.astype(np.float64)))
        odd = np.convolve(block, self._taps, mode="valid")
        even = block[HALF_TAPS - 1 : HALF_TAPS - 1 + len(odd)]
        self._history = block[len(block) - (2 * HALF_TAPS - 1) :]
        out = np.empty(2 * len(odd))
        out[0::2] = even
        out[1::2] = odd
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


class DecoderPool:
    """pocketsphinx decoders shared by every session of one stand-in (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _idle and created
        self._idle: list[Any] = []
        self.created = 0

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
            count = self.created
        from pocketsphinx import Decoder  # imported late: loading it costs ~0.3 s and 100 MB

        log.info("pocketsphinx: loading decoder %d", count)
        return Decoder(loglevel="FATAL")

    def release(self, decoder: Any) -> None:
        with self._lock:
            self._idle.append(decoder)


class SphinxRecognizer:
    """Real transcripts from pocketsphinx over upsampled caller audio."""

    def __init__(self, pool: DecoderPool) -> None:
        self._pool = pool
        self._decoder: Any = None
        self._upsampler = Upsampler2x()

    def begin(self) -> None:
        if self._decoder is None:
            self._decoder = self._pool.acquire()
        self._upsampler = Upsampler2x()
        self._decoder.start_utt()

    def feed(self, ulaw: bytes) -> None:
        if self._decoder is not None and ulaw:
            pcm = self._upsampler.process(ulaw_to_pcm16(ulaw))
            self._decoder.process_raw(pcm.tobytes(), False, False)

    def partial(self) -> str:
        hyp = self._decoder.hyp() if self._decoder is not None else None
        return _clean(hyp.hypstr) if hyp is not None else ""

    def finish(self, duration_s: float) -> list[Word]:
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            return []
        decoder.end_utt()
        words = [Word(ALTERNATE.sub("", seg.word), seg.start_frame * SPHINX_FRAME_S,
                      (seg.end_frame + 1) * SPHINX_FRAME_S, _confidence(seg.prob))
                 for seg in decoder.seg() if not NON_WORDS.match(seg.word)]
        self._pool.release(decoder)
        return words

    def close(self) -> None:
        if self._decoder is not None:
            self.finish(0.0)


class CannedRecognizer:
    """Fixed transcripts, one per segment in turn, spread evenly over the segment."""

    def __init__(self, transcripts: Sequence[str]) -> None:
        self._transcripts = tuple(transcripts) or ("",)
        self._index = 0
        self._fed_ms = 0

    def begin(self) -> None:
        self._fed_ms = 0

    def feed(self, ulaw: bytes) -> None:
        self._fed_ms += len(ulaw) // BYTES_PER_MS

    def _words(self) -> list[str]:
        return self._transcripts[self._index % len(self._transcripts)].split()

    def partial(self) -> str:
        words = self._words()
        heard = min(len(words), int(self._fed_ms / 1000 / CANNED_WORD_S))
        return " ".join(words[:heard])

    def finish(self, duration_s: float) -> list[Word]:
        words = self._words()
        self._index += 1
        if not words or duration_s <= 0:
            return []
        step = duration_s / len(words)
        return [Word(word, round(i * step, 3), round((i + 1) * step, 3))
                for i, word in enumerate(words)]

    def close(self) -> None:
        pass


def _clean(hypothesis: str) -> str:
    return " ".join(ALTERNATE.sub("", w) for w in hypothesis.split() if not NON_WORDS.match(w))


def _confidence(log_prob: int) -> float:
    # pocketsphinx posteriors are log-base-1.0001 values <= 0; map them into (0, 1].
    return round(float(min(1.0, max(0.01, 1.0001 ** log_prob))), 3)
