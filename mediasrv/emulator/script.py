"""The caller's microphone: WAV files placed in time over a background, frame by frame.

Layer: emulator.

Everything is rendered once, up front, into one float signal (full scale 1.0) kept as
float32, so building frame i costs a slice. WAVs of any rate, width and channel count
are mixed down to mono, low-pass filtered when downsampling (linear interpolation alone
would alias), and resampled to 8 kHz by linear interpolation.

The script is only the caller's side. What the server receives is that signal through
the call's `Line` (line.py): the echo of what Twilio actually played, loudspeaker
saturation, hiss, and one mu-law encoding at the end. Without a line, `frame(i)` is
the caller's signal mu-law encoded as is.

`keys` are the caller's key presses, (stream time, key): Twilio reports each as a
`dtmf` message on a bidirectional stream (PROTOCOLS.md 1.2); the tones themselves are
not put into the audio.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.audio import (
    FRAME_BYTES,
    FRAME_MS,
    SAMPLE_RATE,
    ULAW_DECODE,
    ULAW_SILENCE,
    pcm16_to_ulaw,
    to_pcm16,
)
from mediasrv.emulator.line import EchoPath, Line

Float = npt.NDArray[np.float64]

FRAME_S = FRAME_MS / 1000
ONSET_DBFS = -45.0  # a 20 ms frame louder than this counts as speech (the brief's threshold)
DEFAULT_TAIL_S = 2.0  # silence after the last placement when no duration is given
_LOWPASS_TAPS = 63  # windowed-sinc FIR: ~60 dB stop band, cheap for one-off file loads


@dataclass(frozen=True)
class Placement:
    """A WAV file the caller says, starting `at` seconds into the stream."""

    path: Path
    at: float


@dataclass(frozen=True)
class SpeechSegment:
    """Where a placed file sits in the stream; onset/end None if it never exceeds -45 dBFS."""

    name: str
    placed_at: float
    onset: float | None
    end: float | None


def read_wav(path: Path | str) -> tuple[Float, int]:
    """Read a PCM WAV as mono float samples in [-1, 1]; return them and the sample rate."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    return x.reshape(-1, channels).mean(axis=1), rate


def resample(x: Float, rate: int, target: int = SAMPLE_RATE) -> Float:
    """Resample by linear interpolation, low-pass filtering first when downsampling."""
    if rate == target or x.size == 0:
        return x
    if rate > target:
        x = _lowpass(x, 0.45 * target / rate)
    n_out = int(round(x.size * target / rate))
    positions = np.arange(n_out, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(x.size, dtype=np.float64), x)


def _lowpass(x: Float, cutoff: float) -> Float:
    # cutoff is a fraction of the input rate; 0.45 * 8 kHz keeps speech up to 3.6 kHz
    n = np.arange(_LOWPASS_TAPS) - (_LOWPASS_TAPS - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(_LOWPASS_TAPS)
    return np.convolve(x, taps / taps.sum(), mode="same")


def load_8k(path: Path | str) -> Float:
    """Read any PCM WAV as 8 kHz mono float samples."""
    x, rate = read_wav(path)
    return resample(x, rate)


def frame_levels_dbfs(x: Float) -> Float:
    """Return the RMS level of each whole 20 ms frame of 8 kHz float samples."""
    n = x.size // FRAME_BYTES
    frames = x[: n * FRAME_BYTES].reshape(n, FRAME_BYTES)
    power = np.mean(frames * frames, axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


class CallerScript:
    """The caller's side of one call: the microphone signal and the line it goes out on.

    Built from mu-law (`CallerScript(ulaw)`, the frames sent as they are) or from floats
    (`CallerScript.from_samples`). `line` may be a bare `EchoPath` (a line without hiss).
    """

    def __init__(
        self,
        ulaw: bytes = b"",
        segments: Sequence[SpeechSegment] = (),
        line: Line | EchoPath | None = None,
        *,
        samples: Float | None = None,
        keys: Sequence[tuple[float, str]] = (),
    ) -> None:
        if samples is None:
            if len(ulaw) % FRAME_BYTES:
                ulaw += bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(ulaw) % FRAME_BYTES)
            self.ulaw = ulaw
            self._mic = (ULAW_DECODE[np.frombuffer(ulaw, np.uint8)] / 32768.0).astype(np.float32)
        else:
            mic = np.zeros(-(-samples.size // FRAME_BYTES) * FRAME_BYTES, np.float32)
            mic[: samples.size] = samples
            self._mic = mic
            self.ulaw = pcm16_to_ulaw(to_pcm16(mic.astype(np.float64)))
        self.segments = tuple(segments)
        self.line = Line(echo=line, hiss_dbov=None) if isinstance(line, EchoPath) else line
        self.keys = tuple(sorted(keys))

    @classmethod
    def from_samples(
        cls,
        samples: Float,
        segments: Sequence[SpeechSegment] = (),
        line: Line | EchoPath | None = None,
        keys: Sequence[tuple[float, str]] = (),
    ) -> CallerScript:
        """Return a script over float samples (8 kHz, full scale 1.0)."""
        return cls(b"", segments, line, samples=np.asarray(samples, np.float64), keys=keys)

    @classmethod
    def build(
        cls,
        placements: Sequence[Placement],
        *,
        duration: float | None = None,
        background: Path | str | None = None,
        background_db: float = 0.0,
        echo: Line | EchoPath | None = None,
        keys: Sequence[tuple[float, str]] = (),
    ) -> CallerScript:
        """Render placed WAVs over silence or a looped noise WAV (gain in dB); the caller
        presses `keys` ((stream time, key)) too."""
        voices = [(p, load_8k(p.path)) for p in placements]
        if duration is None:
            ends = [p.at + v.size / SAMPLE_RATE for p, v in voices]
            duration = max(ends, default=0.0) + DEFAULT_TAIL_S
        n_frames = max(1, int(np.ceil(duration / FRAME_S - 1e-9)))
        total = n_frames * FRAME_BYTES
        mix = np.zeros(total, np.float64)
        if background is not None:
            noise = load_8k(background)
            if noise.size:
                mix += np.resize(noise, total) * 10.0 ** (background_db / 20.0)
        segments = []
        for p, v in voices:
            track = np.zeros(total, np.float64)
            lo = int(round(p.at * SAMPLE_RATE))
            hi = min(total, lo + v.size)
            if hi > lo:
                track[lo:hi] = v[: hi - lo]
            mix += track
            segments.append(_locate(p, track))
        return cls.from_samples(mix, segments, echo, keys)

    @property
    def n_frames(self) -> int:
        return self._mic.size // FRAME_BYTES

    @property
    def duration(self) -> float:
        return self.n_frames * FRAME_S

    def frame(self, i: int) -> bytes:
        """Return the i-th 160-byte frame (20 ms) of the caller alone, silence past the end."""
        if not 0 <= i < self.n_frames:
            return bytes([ULAW_SILENCE]) * FRAME_BYTES
        return self.ulaw[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]

    def mic(self, i: int) -> Float:
        """Return frame i of the caller's signal as floats (zeros past the end)."""
        if not 0 <= i < self.n_frames:
            return np.zeros(FRAME_BYTES)
        return self._mic[i * FRAME_BYTES : (i + 1) * FRAME_BYTES].astype(np.float64)


def _locate(p: Placement, track: Float) -> SpeechSegment:
    first = int(p.at / FRAME_S + 1e-9)  # the frame the placement falls in
    levels = frame_levels_dbfs(track)[first:]
    loud = np.flatnonzero(levels > ONSET_DBFS)
    name = Path(p.path).name
    if loud.size == 0:
        return SpeechSegment(name, p.at, None, None)
    onset = (first + int(loud[0])) * FRAME_S
    end = (first + int(loud[-1]) + 1) * FRAME_S
    return SpeechSegment(name, p.at, round(onset, 6), round(end, 6))
