"""The caller's microphone: WAV files placed in time over a background, as mu-law frames.

Everything is rendered once, up front, into one mu-law byte string, so sending frame i
costs a slice. WAVs of any rate, width and channel count are mixed down to mono,
low-pass filtered when downsampling (linear interpolation alone would alias), and
resampled to 8 kHz by linear interpolation.

Echo: a real handset plays what the caller hears and its microphone picks some of it
up. `mix_echo` adds that heard audio, attenuated by the echo return loss, to an
outgoing frame; the call shell feeds it the audio the playout model actually played,
`delay` earlier, so the echo is causal. Mixing goes through a 64K table built once per
ERL with mediasrv.audio's decoder and encoder, so a frame costs one numpy lookup.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import (
    FRAME_BYTES,
    FRAME_MS,
    SAMPLE_RATE,
    ULAW_SILENCE,
    pcm16_to_ulaw,
    to_pcm16,
    ulaw_to_pcm16,
)

Float = npt.NDArray[np.float64]

FRAME_S = FRAME_MS / 1000
ONSET_DBFS = -45.0  # a 20 ms frame louder than this counts as speech (the brief's threshold)
DEFAULT_TAIL_S = 2.0  # silence after the last placement when no duration is given
_LOWPASS_TAPS = 63  # windowed-sinc FIR: ~60 dB stop band, cheap for one-off file loads


class HeardAudio(Protocol):
    def render(self, start: float, nbytes: int) -> bytes:
        """Return the mu-law the caller heard from `start`, silence where none played."""
        ...


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


@dataclass(frozen=True)
class EchoPath:
    """Speaker-to-microphone coupling: heard audio returns `delay_ms` later, `erl_db` down."""

    delay_ms: float = 160.0
    erl_db: float = 10.0


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


@lru_cache(maxsize=8)
def _echo_table(erl_db: float) -> bytes:
    codes = np.arange(256, dtype=np.uint8).tobytes()
    pcm = ulaw_to_pcm16(codes).astype(np.int32)
    gain = 10.0 ** (-erl_db / 20.0)
    mixed = pcm[:, None] + np.rint(pcm[None, :] * gain).astype(np.int32)
    return pcm16_to_ulaw(np.clip(mixed, -32768, 32767).ravel())


class CallerScript:
    """The caller's audio for one call, pre-rendered to 8 kHz mu-law."""

    def __init__(
        self,
        ulaw: bytes,
        segments: Sequence[SpeechSegment] = (),
        echo: EchoPath | None = None,
    ) -> None:
        if len(ulaw) % FRAME_BYTES:
            ulaw += bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(ulaw) % FRAME_BYTES)
        self.ulaw = ulaw
        self.segments = tuple(segments)
        self.echo = echo
        self._echo_lut = (
            np.frombuffer(_echo_table(echo.erl_db), np.uint8) if echo is not None else None
        )

    @classmethod
    def build(
        cls,
        placements: Sequence[Placement],
        *,
        duration: float | None = None,
        background: Path | str | None = None,
        background_db: float = 0.0,
        echo: EchoPath | None = None,
    ) -> CallerScript:
        """Render placed WAVs over silence or a looped noise WAV (gain in dB)."""
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
        return cls(pcm16_to_ulaw(to_pcm16(mix)), segments, echo)

    @property
    def n_frames(self) -> int:
        return len(self.ulaw) // FRAME_BYTES

    @property
    def duration(self) -> float:
        return self.n_frames * FRAME_S

    def frame(self, i: int) -> bytes:
        """Return the i-th 160-byte frame (20 ms), silence past the end."""
        if not 0 <= i < self.n_frames:
            return bytes([ULAW_SILENCE]) * FRAME_BYTES
        return self.ulaw[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]

    def frame_at(self, i: int, heard: HeardAudio, stream_t0: float) -> bytes:
        """Return frame i with the echo of what was heard `delay` before it, if any.

        Frame i covers [stream_t0 + i * 20 ms, + 20 ms) on the playout model's clock; it
        must be built once that window has passed, so the echo uses only played audio.
        """
        frame = self.frame(i)
        if self.echo is None:
            return frame
        start = stream_t0 + i * FRAME_S - self.echo.delay_ms / 1000.0
        return self.mix_echo(frame, heard.render(start, FRAME_BYTES))

    def mix_echo(self, frame: bytes, heard: bytes) -> bytes:
        """Add `heard` (same length, mu-law), attenuated by the ERL, to `frame`."""
        if self._echo_lut is None or heard.count(ULAW_SILENCE) == len(heard):
            return frame
        idx = np.frombuffer(frame, np.uint8).astype(np.uint16) << 8
        idx |= np.frombuffer(heard, np.uint8)
        return self._echo_lut[idx].tobytes()


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
